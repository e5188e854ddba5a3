"""Progress bars for long work (rollouts, dataset generation, fleets)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A progress bar on stderr (tqdm when installed, a plain one otherwise; silent when disabled)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar: Any = None
        self.enabled = enabled
        self.total, self.done, self.desc, self.t0 = total, 0, desc, time.perf_counter()
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="step", unit_scale=True, file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            frac = self.done / max(self.total, 1)
            bar = "#" * int(30 * frac)
            sys.stderr.write(f"\r{self.desc} [{bar:<30}] {100 * frac:5.1f}%")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")
