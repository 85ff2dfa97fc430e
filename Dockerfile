# syntax=docker/dockerfile:1
# The booking-service image: the wheel built from this repository, run by an unprivileged user.
#   docker build -t booking-service .
#   docker run -p 8000:8000 -e JWT_SECRET=... -e DATABASE_URL=mysql+asyncmy://... booking-service
# No secret is baked in: JWT_SECRET, DB_PASS and the rest come from the environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: build the project's wheel (not an editable install) and install it into a venv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of; the migrations ride inside the package (pyproject.toml).
COPY pyproject.toml README.md ./
COPY alembic ./alembic
COPY src ./src
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/dist . \
    && /opt/venv/bin/pip install /tmp/dist/booking_service-*.whl

# Stage 2: the same slim Python with only the venv: no compiler, no sources, no pip cache.
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=prod
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --create-home \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001

EXPOSE 8000
# Liveness only (no database): the slim image has no curl, Python's urllib does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# uvicorn drains in-flight requests on SIGTERM (SHUTDOWN_TIMEOUT_SECONDS at most).
STOPSIGNAL SIGTERM
# serve migrates once (replicas take turns under a database lock), then starts the workers.
CMD ["booking-service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
