"""Logging: Rust events reach Python's :mod:`logging`; JSON lines for those who want them.

The Rust core logs through ``tracing`` into loggers under ``neorl_industrial.`` (``.safety``,
``.exporter``, ``.telemetry``). Safety events carry their fields (``constraint``,
``current_value``, ``limit``, ``violation_id``, ``env`` ...) as attributes of the log record.
Repeated identical events are rate-limited: by default each kind of event per env and constraint
passes 5 times per 10 s, then one "suppressed N similar events" record reports the rest.

If you do not configure logging yourself::

    import neorl_industrial.logging
    neorl_industrial.logging.configure(json=True)

gives JSON lines with structlog's field names: ``event``, ``level``, ``timestamp`` (ISO 8601),
``logger`` and the event's fields.
"""

from __future__ import annotations

import json as _json
import logging
import math
import re
import sys
from datetime import datetime, timezone
from typing import IO, Any

from . import _core

__all__ = ["RUST_LOGGERS", "JsonFormatter", "configure", "flush_suppressed", "set_rate_limit"]

RUST_LOGGERS = ("neorl_industrial.safety", "neorl_industrial.exporter", "neorl_industrial.telemetry")
"""Loggers the Rust core writes to."""

_FIELD = r'[A-Za-z_]\w*=(?:"(?:[^"\\]|\\.)*"|[^\s"]+)'
_TAIL = re.compile(rf"(?:^|\s)({_FIELD}(?:\s+{_FIELD})*)$")
_PAIR = re.compile(r"([A-Za-z_]\w*)=(\"(?:[^\"\\]|\\.)*\"|[^\s\"]+)")
_ESC = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _unescape(s: str) -> str:
    def sub(m: re.Match[str]) -> str:
        e = m.group(1)
        return chr(int(e[2:-1], 16)) if e.startswith("u{") else _ESCAPES.get(e, e)

    return _ESC.sub(sub, s)


def _value(raw: str) -> Any:
    if raw.startswith('"'):
        return _unescape(raw[1:-1])
    if raw in ("true", "false"):
        return raw == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def parse_fields(message: str) -> tuple[str, dict[str, Any]]:
    """Splits a Rust event's text ``"event k=v k2=\\"s\\""`` into the event and its fields."""
    m = _TAIL.search(message)
    if m is None:
        return message, {}
    fields = {k: _value(v) for k, v in _PAIR.findall(m.group(1))}
    return message[: m.start()].rstrip(), fields


class _RustFields(logging.Filter):
    """Lifts the fields of Rust events into record attributes (``record.constraint`` ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "event" not in record.__dict__:
            event, fields = parse_fields(record.getMessage())
            record.event = event
            record.fields = fields
            for k, v in fields.items():
                if k not in record.__dict__:
                    setattr(record, k, v)
        return True


_FILTER = _RustFields()


def _install_filters() -> None:
    for name in RUST_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``event``, ``level``, ``timestamp``, ``logger`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "event": getattr(record, "event", None) or record.getMessage(),
            "level": record.levelname.lower(),
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "logger": record.name,
        }
        for k, v in (getattr(record, "fields", None) or {}).items():
            out.setdefault(k, _jsonable(v))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _json.dumps(out, ensure_ascii=False)


_HANDLER: logging.Handler | None = None


def configure(
    json: bool = True, level: int | str = "INFO", stream: IO[str] | None = None, propagate: bool = False
) -> logging.Handler:
    """Sends the package's logs to ``stream`` (default stderr), as JSON lines if ``json``.

    Replaces the handler of an earlier call. With ``propagate=False`` (default) records stop at
    the ``neorl_industrial`` logger, so a root handler does not print them twice.

    Returns:
        The installed handler.
    """
    global _HANDLER
    logger = logging.getLogger("neorl_industrial")
    if _HANDLER is not None:
        logger.removeHandler(_HANDLER)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
    _HANDLER = handler
    return handler


def flush_suppressed() -> None:
    """Emits every pending "suppressed N similar events" summary now (e.g. at the end of a run)."""
    _core.flush_suppressed_logs()


def set_rate_limit(window_seconds: float = 10.0, burst: int = 5) -> None:
    """Each kind of event per env and constraint passes ``burst`` times per ``window_seconds``.

    Pending "suppressed" summaries are emitted first; every key then starts a fresh window.
    """
    _core.flush_suppressed_logs()
    _core.set_log_rate_limit(window_seconds, burst)


_install_filters()
