"""One thread at a time inside an environment's step and reset.

The native step releases the GIL, so without a guard a second thread could enter the same
environment while the first is still inside: the native layer refuses it, and so does the Python
bookkeeping around it (safety counts, infos), with :class:`~neorl_industrial.ConcurrentUseError`
naming the environment instead of a borrow error.
"""

from __future__ import annotations

import functools
import threading
from typing import NoReturn

from .exceptions import ConcurrentUseError


class Exclusive:
    """A non-blocking guard: entering while another thread is inside raises.

    ``with guard:`` for most uses; a hot path (a single env's ``step``, a few microseconds) can skip the
    two Python-level calls of the ``with`` protocol::

        if not guard.try_enter():
            guard.refuse()
        try:
            ...
        finally:
            guard.leave()
    """

    __slots__ = ("_lock", "_name", "leave", "try_enter")

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._name = name
        # Bound C methods: no Python frame per call.
        self.try_enter = functools.partial(self._lock.acquire, False)
        self.leave = self._lock.release

    def refuse(self) -> NoReturn:
        raise ConcurrentUseError(
            f"{self._name}: already in step or reset on another thread; an environment belongs to "
            "one thread at a time (give each thread its own, or guard a shared one with a lock)"
        )

    def __enter__(self) -> None:
        if not self.try_enter():
            self.refuse()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
