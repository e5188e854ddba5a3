"""The exception tree of neorl_industrial.

Every error the package raises on purpose derives from :class:`NeorlError`. Errors about bad input
also derive from :class:`ValueError`, so ``except ValueError`` keeps working for callers who do not
know this package.
"""

from __future__ import annotations

from gymnasium.error import ClosedEnvironmentError

__all__ = [
    "NeorlError",
    "InvalidActionError",
    "ConfigError",
    "UnknownEnvironmentError",
    "ResetNeededError",
    "ConcurrentUseError",
    "StateError",
    "EnvClosedError",
    "MetricError",
    "ExporterError",
]


class NeorlError(Exception):
    """Base class of every error raised by neorl_industrial."""


class InvalidActionError(NeorlError, ValueError):
    """An action was malformed: wrong shape or dtype, NaN or infinite; the message names env and element."""


class ConfigError(NeorlError, ValueError):
    """A configuration value (constructor option, constraint, CLI option, file) was rejected."""


class UnknownEnvironmentError(ConfigError):
    """No environment is registered under the requested id."""


class ResetNeededError(NeorlError, RuntimeError):
    """A call came in the wrong order: step before reset, or after the episode ended without autoreset."""


class ConcurrentUseError(NeorlError, RuntimeError):
    """An environment was stepped or reset from a second thread while a first was inside.

    One environment (single or vector) belongs to one thread at a time; give each thread its own,
    or guard a shared one with a lock. Different environments step in parallel.
    """


class StateError(NeorlError, ValueError):
    """A saved state (pickle, snapshot) does not fit the environment it is restored into."""


class EnvClosedError(NeorlError, ClosedEnvironmentError):
    """A vector env was used after ``close()``: make a new one. Also a Gymnasium
    ``ClosedEnvironmentError``, as Gymnasium's own vector envs raise."""


class MetricError(NeorlError, ValueError):
    """A metric was defined or used wrongly: invalid or clashing name, wrong labels, negative increment."""


class ExporterError(NeorlError, OSError):
    """The metrics exporter or push client failed: port in use, network error, gateway refusal.

    When the operating system gave an error number it is in ``errno`` (e.g. ``errno.EADDRINUSE``).
    """
