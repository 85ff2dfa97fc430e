"""Log lines: JSON in production, plain text in development, each tagged with its request id.

The request middleware puts the current request's id in `REQUEST_ID`; both formatters add it to
every line logged while that request runs, so an error can be matched with its request line.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Structured fields of a log line go in `extra={FIELDS: {...}}`: JSON lines carry them as keys.
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any fields.

    Every request writes a line, so this is kept cheap: one shared encoder, and the timestamp's
    date and time formatted once per second.
    """

    _encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a benign race between threads: both write the same value
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            payload["request_id"] = request_id
        fields = getattr(record, FIELDS, None)
        if fields:
            payload.update(fields)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return self._encode(payload)


class PlainFormatter(logging.Formatter):
    """`time level logger: message [request id]`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the tagged line
        return f"{first} [{request_id}]{newline}{rest}"


def logging_config(*, json_lines: bool, level: str = "info") -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping, also handed to uvicorn for every worker.

    Everything, uvicorn's own lines included, goes through one handler on the root logger.
    """
    formatter = JsonFormatter if json_lines else PlainFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True, "level": level.upper()}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            # Seven lines about Alembic's own plugins at every start say nothing to operators.
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }
