"""The `booking-service` command."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from booking_service.config import Settings, get_settings
from booking_service.logs import logging_config

log = logging.getLogger("booking_service")

# Read by prometheus-client when a worker imports it (see booking_service.metrics).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The committed document, and the command that writes it.
EXPORT_PATH = "openapi.json"
EXPORT_COMMAND = f"booking-service openapi --output {EXPORT_PATH}"


def _load_settings() -> Settings:
    try:
        return get_settings()
    except (ValidationError, ValueError) as exc:
        print(f"booking-service: invalid configuration:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _migrate(settings: Settings) -> None:
    from booking_service import migrations

    migrations.upgrade(settings.database_url)


def cmd_migrate(_args: argparse.Namespace) -> int:
    settings = _load_settings()
    _migrate(settings)
    print("database is at the latest schema")
    return 0


@contextmanager
def _metrics_shared_by_workers(workers: int) -> Iterator[None]:
    """With several workers, each keeps its metrics in files in one fresh directory, which
    GET /metrics adds up. Set before the workers start, removed once they have all stopped."""
    if workers <= 1:
        yield
        return
    path = tempfile.mkdtemp(prefix="booking-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = path
    log.info("the %d workers share their metrics through %s", workers, path)
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_VARIABLE, None)
        shutil.rmtree(path, ignore_errors=True)


def _warn_about_per_worker_limits(settings: Settings, workers: int) -> None:
    in_memory = settings.rate_limit_storage_url.startswith("memory://")
    if workers > 1 and settings.rate_limit_enabled and in_memory:
        log.warning(
            "RATE_LIMIT_STORAGE_URL is memory:// with %d workers: each worker counts on its "
            "own, so a client can get up to %d times RATE_LIMIT. Use redis:// to share them.",
            workers,
            workers,
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _load_settings()
    log_config = logging_config(json_lines=settings.json_logs, level=args.log_level)
    logging.config.dictConfig(log_config)
    _warn_about_per_worker_limits(settings, args.workers)
    # Migrate once here, before any worker starts: workers migrating at once would race.
    _migrate(settings)
    shown_host = "localhost" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    log.info("Swagger UI at http://%s:%d/docs", shown_host, args.port)
    # After a graceful shutdown uvicorn re-raises the signal that stopped it, with the handler
    # that was there before. SIGTERM is how the service is normally stopped: end with 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    with _metrics_shared_by_workers(args.workers):
        uvicorn.run(
            "booking_service.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            # Client addresses come from the socket. X-Forwarded-For is believed only from
            # TRUSTED_PROXIES: uvicorn's default trusts 127.0.0.1, so any local client could
            # pick its own address and dodge per-address limits.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            server_header=False,
            # Our middleware writes one line per request instead (booking_service.access).
            access_log=False,
            log_config=log_config,
            log_level=args.log_level,
            # On SIGTERM: stop accepting, let in-flight requests finish (up to this long), then
            # run the lifespan's shutdown, which disposes the engine.
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        )
    return 0


def published_openapi() -> str:
    """The document of an app with default settings, as committed in `openapi.json`."""
    from booking_service.main import create_app
    from booking_service.openapi_document import published_settings, render_openapi

    return render_openapi(create_app(published_settings()).openapi())


def cmd_openapi(args: argparse.Namespace) -> int:
    # The defaults' document, whatever the environment says: the same bytes on every machine.
    document = published_openapi()
    if args.output is None:
        sys.stdout.write(document)
    else:
        args.output.write_text(document, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


BENCH_DESCRIPTION = (
    "Benchmark a running server (see README, Benchmark). Exit codes: 0 ok, 1 an invariant "
    "broke, 2 could not run, 3 the run had errors (5xx, lost or unexpected answers), 4 the "
    "bench crashed."
)


def cmd_bench(args: argparse.Namespace) -> int:
    # The load generator is imported here, by its own command only: `serve` never loads it.
    from booking_service.bench.command import configure, run

    parser = argparse.ArgumentParser(prog="booking-service bench", description=BENCH_DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(args.bench_args), _load_settings)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booking-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply pending migrations, then serve the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=_positive_int, default=1, help="worker processes")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database to the latest schema")
    migrate.set_defaults(handler=cmd_migrate)

    openapi = commands.add_parser(
        "openapi",
        help="write the OpenAPI document (of the default configuration) as JSON",
        description="Write the OpenAPI document as sorted JSON. It describes the default "
        "settings; a running server's /openapi.json shows its own limits.",
    )
    openapi.add_argument(
        "--output", type=Path, default=None, help="file to write (default: standard output)"
    )
    openapi.set_defaults(handler=cmd_openapi)

    # Its options (and --help) are read by cmd_bench, which alone imports the bench.
    bench = commands.add_parser(
        "bench",
        help="drive load at a running server, then check the database's invariants",
        description=BENCH_DESCRIPTION,
        add_help=False,
    )
    bench.set_defaults(handler=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
