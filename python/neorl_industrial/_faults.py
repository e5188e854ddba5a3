"""Fault configurations from Python values, files and the command line (the core checks them).

``faults=`` of every environment takes a list of mappings (see ``docs/faults.md``), ``None``, or the
path of a JSON, YAML or TOML file holding such a list (or a mapping whose only key is ``faults``;
in TOML, ``[[faults]]`` tables). The CLI's ``--fault`` takes one fault in a compact form,
``kind=sensor_bias,variable=T,value=5,start=100``: comma-separated ``field=value`` pairs, numbers
read as numbers, anything else as text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._config_file import read_config_file
from .exceptions import ConfigError

_SUFFIXES = (".json", ".toml", ".yaml", ".yml")


def load_faults(source: Any) -> Any:
    """The fault list of ``faults=``: a list passes through; a path is read (JSON, YAML, TOML)."""
    if source is None or isinstance(source, (list, tuple)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"faults: must be a list of mappings or a file path, got {type(source).__name__}")
    path = Path(source)
    data = read_config_file(path, "faults", _SUFFIXES)
    if not isinstance(data, list):
        raise ConfigError(f"faults: {path} must hold a list of faults, got {type(data).__name__}")
    return data


def is_fault_file(text: str) -> bool:
    """Whether a ``--fault`` argument names a file (by its suffix) rather than a fault."""
    return Path(text).suffix.lower() in _SUFFIXES


def _scalar(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_fault_arg(text: str) -> dict[str, Any]:
    """One ``--fault`` argument, ``kind=sensor_bias,variable=T,value=5,start=100``, as a mapping."""
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(
                f"--fault: {part.strip()!r} in {text!r} is not field=value "
                "(e.g. kind=sensor_bias,variable=T,value=5,start=100)"
            )
        if key in out:
            raise ConfigError(f"--fault: field {key!r} given twice in {text!r}")
        out[key] = _scalar(value)
    return out
