"""Logging: Rust events reach Python's :mod:`logging`; JSON lines for those who want them.

The Rust core logs through ``tracing`` into loggers under ``neorl_industrial.`` (``.safety``,
``.exporter``, ``.telemetry``). Safety events carry their fields (``constraint``,
``current_value``, ``limit``, ``violation_id``, ``env_id``, ``env_index``, ``run_id`` and, where
they apply, ``episode``, ``episode_id``, ``incident_id``) as attributes of the log record, under
the names the audit trail uses (docs/telemetry.md has the schema). Repeated identical events are
rate-limited: by default each kind of event per env and constraint passes 5 times per 10 s, then
one "suppressed N similar events" record reports the rest.

Correlation: every log line and audit event carries the process's :func:`run_id` (generated once
per process, or taken from ``NEORL_INDUSTRIAL_RUN_ID``, or set by :func:`set_run_id`).

If you do not configure logging yourself::

    import neorl_industrial.logging
    neorl_industrial.logging.configure(json=True)

gives JSON lines with structlog's field names: ``event``, ``level``, ``timestamp`` (ISO 8601),
``logger``, ``run_id`` and the event's fields (also the ``extra=`` fields of your own loggers).
With structlog, put :func:`structlog_processor` in its chains (see docs/telemetry.md).
"""

from __future__ import annotations

import json as _json
import logging
import math
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone
from typing import IO, Any

from . import _core

__all__ = [
    "FIELD_ALIASES",
    "RUN_ID_ENV",
    "RUST_LOGGERS",
    "JsonFormatter",
    "canonical_fields",
    "configure",
    "episode_id",
    "flush_suppressed",
    "incident_id",
    "run_id",
    "set_rate_limit",
    "set_run_id",
    "structlog_processor",
]

RUST_LOGGERS = ("neorl_industrial.safety", "neorl_industrial.exporter", "neorl_industrial.telemetry")
"""Loggers the Rust core writes to."""

RUN_ID_ENV = "NEORL_INDUSTRIAL_RUN_ID"
"""Environment variable naming the run id of every process that reads it before one is set."""

FIELD_ALIASES: dict[str, str] = {"max_allowed": "limit", "environment": "env_id"}
"""Other names of schema fields, accepted in your own records and renamed (``max_allowed`` is the
monitoring guide's name for the limit)."""


# --------------------------------------------------------------------------- correlation
def run_id() -> str:
    """The run id every log line and audit event carries.

    Generated once per process (32 hex digits) unless :envvar:`NEORL_INDUSTRIAL_RUN_ID` names one
    when it is first needed, or :func:`set_run_id` set one. A forked child generates its own
    unless the id was set or came from the environment.
    """
    return str(_core.run_id())


def set_run_id(run_id: str | None) -> str:
    """Sets the run id of the log lines and audit events from now on (an MLflow run id, a job id,
    ...): 1 to 128 printable ASCII characters without spaces, quotes or backslashes. ``None``
    forgets it (the next use reads ``NEORL_INDUSTRIAL_RUN_ID`` again or generates one).

    Returns:
        The run id now in effect.

    Raises:
        ConfigError: The id is not of that form.
    """
    _core.set_run_id(run_id)
    return str(_core.run_id())


def episode_id(env_index: int, episode: int) -> str:
    """The ``episode_id`` of episode ``episode`` (1 for the first) of the env at ``env_index`` of its
    batch: ``"{env_index}-{episode}"``, as in the audit trail (unique within a batch of a run)."""
    return f"{int(env_index)}-{int(episode)}"


def incident_id(number: int) -> str:
    """The ``incident_id`` of incident ``number`` (unique within the process): ``safety_000042``."""
    return f"safety_{int(number):06d}"


def canonical_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with :data:`FIELD_ALIASES` renamed to their schema names (an alias whose schema
    name is also given is kept as it is)."""
    out = dict(fields)
    _rename_aliases(out)
    return out


def _rename_aliases(fields: MutableMapping[str, Any]) -> None:
    for alias, name in FIELD_ALIASES.items():
        if alias in fields and name not in fields:
            fields[name] = fields.pop(alias)


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


# Attributes every LogRecord has: anything else on a record came with ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "event",
    "fields",
}


def record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """A record's event and fields: a Rust event's own fields, the ``extra=`` fields of any other,
    with aliases renamed (:func:`canonical_fields`) and ``run_id`` added if absent."""
    if "event" in record.__dict__ and "fields" in record.__dict__:  # lifted by the Rust loggers' filter
        event, fields = str(record.__dict__["event"]), dict(record.__dict__["fields"])
    else:
        event, fields = record.getMessage(), {}
    for k, v in record.__dict__.items():
        if k not in _RECORD_ATTRS and not k.startswith("_"):
            fields.setdefault(k, v)
    fields = canonical_fields(fields)
    fields.setdefault("run_id", run_id())
    return event, fields


def structlog_processor(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """A structlog processor: the schema for structlog's events and for the standard library's.

    In ``structlog.configure(processors=[...])`` it renames aliases and adds ``run_id``; in
    ``ProcessorFormatter(foreign_pre_chain=[...])`` it also lifts a standard record's fields (the
    Rust events' and ``extra=``) into the event dict.
    """
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord) and not event_dict.get("_from_structlog", False):
        event, fields = record_fields(record)
        event_dict["event"] = event
        for k, v in fields.items():
            event_dict.setdefault(k, v)
    _rename_aliases(event_dict)
    event_dict.setdefault("run_id", run_id())
    return event_dict


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``event``, ``level``, ``timestamp``, ``logger``, then the fields
    (``run_id``, a Rust event's fields, the ``extra=`` fields of other records; aliases renamed)."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = record_fields(record)
        out: dict[str, Any] = {
            "event": event,
            "level": record.levelname.lower(),
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "logger": record.name,
        }
        for k, v in fields.items():
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
