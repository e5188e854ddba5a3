"""Fault configurations from Python values, files and the command line (the core checks them).

``faults=`` of every environment takes a list of mappings (see ``docs/faults.md``), ``None``, or the
path of a JSON, YAML or TOML file holding such a list (or a mapping whose only key is ``faults``;
in TOML, ``[[faults]]`` tables). The CLI's ``--fault`` takes one fault in a compact form,
``kind=sensor_bias,variable=T,value=5,start=100``: comma-separated ``field=value`` pairs, numbers
read as numbers, anything else as text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

_SUFFIXES = (".json", ".toml", ".yaml", ".yml")


def load_faults(source: Any) -> Any:
    """The fault list of ``faults=``: a list passes through; a path is read (JSON, YAML, TOML)."""
    if source is None or isinstance(source, (list, tuple)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"faults: must be a list of mappings or a file path, got {type(source).__name__}")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"faults: {path} must end in .json, .yaml, .yml or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"faults: cannot read {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"faults: cannot read {path}: {e}") from None
    try:
        if suffix == ".json":
            data: Any = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                raise ConfigError("faults: reading YAML needs PyYAML (pip install pyyaml)") from None
            data = yaml.safe_load(text)
    except ConfigError:
        raise
    except Exception as e:  # the parsers' own errors name line and column
        raise ConfigError(f"faults: {path} is not valid {suffix[1:].upper()}: {e}") from None
    if isinstance(data, Mapping) and set(data) == {"faults"}:
        data = data["faults"]
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
