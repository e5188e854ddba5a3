"""Reading a configuration file (JSON, YAML or TOML) given where a Python value would go
(``constraints=``, ``faults=``): one reader, errors that name the option, the file and what is wrong."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .exceptions import ConfigError


def read_config_file(source: str | os.PathLike[str], what: str, suffixes: tuple[str, ...]) -> Any:
    """The value the file ``source`` holds, for the option ``what``; a mapping whose only key is
    ``what`` stands for its value. ``suffixes`` are the formats accepted (``.json``, ``.toml``,
    ``.yaml``, ``.yml``).

    Raises:
        ConfigError: another suffix, an unreadable or non-UTF-8 file, invalid syntax (the parser's
            message names line and column), YAML without PyYAML installed.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        names = [s for s in (".json", ".yaml", ".yml", ".toml") if s in suffixes]
        raise ConfigError(f"{what}: {path} must end in {', '.join(names[:-1])} or {names[-1]}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what}: {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise ConfigError(f"{what}: cannot read {path!r}: {e}") from None
    try:
        if suffix == ".json":
            import json

            data: Any = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{what}: reading YAML needs PyYAML (pip install pyyaml)") from None
            data = yaml.safe_load(text)
    except ConfigError:
        raise
    except Exception as e:  # the parsers' own errors name line and column
        raise ConfigError(f"{what}: {path} is not valid {suffix[1:].upper()}: {e}") from None
    if isinstance(data, Mapping) and set(data) == {what}:
        data = data[what]
    return data
