"""structlog, configured per run (no global configuration): readable lines on a terminal, JSON
lines with --log-format json. Logs go to stderr; command results go to stdout."""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

LOG_FORMATS = ("console", "json")


def make_logger(log_format: str = "console", *, stream: IO[str] | None = None, level: str = "info") -> Any:
    stream = stream or sys.stderr
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    processors = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        renderer,
    ]
    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        cache_logger_on_first_use=False,
    )


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
