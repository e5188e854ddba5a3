"""``kill -9`` against a process writing an audit trail, and the check of what it left.

The child steps a fleet whose safety events reach the trail in large batches, records a numbered
``tick`` event between steps, and prints after each step what it has handed to the trail so far,
with the time. After the kill, every line must be complete JSON, and

* timed runs (``benches/bench_faults.py``): everything handed over more than
  :data:`FLUSH_PROMISE` seconds before the kill must be in the file (the writer's documented
  promise: an event reaches the operating system well within one second);
* counted runs (``tests/test_faults.py``, with ``flush_every``): the child calls
  ``AuditTrail.flush()`` every ``flush_every`` ticks and is killed after a number of ticks, not
  seconds; everything handed over before the last ``flush()`` that returned must be in the file.
  Nothing in this check depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

FLUSH_PROMISE = 1.0
# A counted run that has not reached its tick by then is hung, not slow.
HANG_SECONDS = 240.0

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import neorl_industrial as ni
    from neorl_industrial.safety import AuditTrail
    n, flush_every = int(sys.argv[2]), int(sys.argv[4])
    trail = AuditTrail(sys.argv[1])
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=n, audit_log=trail, horizon=5)
    envs.reset(seed=int(sys.argv[3]))
    rng = np.random.default_rng(int(sys.argv[3]))
    tick = 0
    while True:
        envs.step(rng.uniform(-1.0, 1.0, (n, 1)))
        tick += 1
        trail.record("tick", seq=tick, note="x" * (tick % 700))
        flushed = bool(flush_every) and tick % flush_every == 0
        if flushed:
            trail.flush()
        print(time.monotonic(), envs.safety.events, tick, int(flushed), flush=True)
    """
)


@dataclass
class KillOutcome:
    lines: int
    env_events_in_file: int
    env_events_promised: int
    ticks_in_file: int
    ticks_promised: int
    torn: bool
    file_bytes: int
    lost_in_file: int = 0
    broken_inside: int = 0
    env_events_flushed: int = 0
    ticks_flushed: int = 0

    @property
    def whole(self) -> bool:
        """Every line whole JSON, the last included, and no loss recorded."""
        return not self.torn and self.broken_inside == 0 and self.lost_in_file == 0

    @property
    def held(self) -> bool:
        """Whole, and everything older than :data:`FLUSH_PROMISE` at the kill is in the file."""
        return (
            self.whole
            and self.env_events_in_file >= self.env_events_promised
            and self.ticks_in_file >= self.ticks_promised
        )

    @property
    def held_flushed(self) -> bool:
        """Whole, and everything handed over before the last completed ``flush()`` is in the file."""
        return (
            self.whole
            and self.env_events_in_file >= self.env_events_flushed
            and self.ticks_in_file >= self.ticks_flushed
        )


Report = tuple[float, int, int, bool]


def kill_once(
    path: Path,
    seconds: float | None = None,
    num_envs: int = 1024,
    seed: int = 0,
    *,
    ticks: int | None = None,
    flush_every: int = 0,
) -> KillOutcome:
    """Runs the child until ``seconds`` after its first step or until its tick ``ticks`` (one of
    the two), kills it with SIGKILL, checks the file."""
    if (seconds is None) == (ticks is None):
        raise ValueError("give seconds or ticks")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(num_envs), str(seed), str(flush_every)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the child's rate-limited safety warnings
        text=True,
    )
    reports: list[Report] = []
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + (60 if ticks is None else HANG_SECONDS)
        while True:
            if time.monotonic() > deadline:
                if ticks is None:
                    break
                raise RuntimeError(f"the child hung: {len(reports)} of {ticks} ticks in {HANG_SECONDS:.0f} s")
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"the child died before the kill (status {child.poll()})")
            t, n, k, f = line.split()
            reports.append((float(t), int(n), int(k), f == "1"))
            if seconds is not None and reports[-1][0] - reports[0][0] >= seconds:
                break
            if ticks is not None and reports[-1][2] >= ticks:
                break
        kill_time = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    return check(path, reports, kill_time)


def check(path: Path, reports: list[Report], kill_time: float) -> KillOutcome:
    data = path.read_bytes()
    # A torn last line: the kill landed inside the write of a line (see RELIABILITY.md, Faults).
    torn = bool(data) and not data.endswith(b"\n")
    complete = data.split(b"\n")[:-1]
    env_events = ticks = lines = lost = broken = 0
    for raw in complete:
        try:
            event = json.loads(raw)
        except ValueError:
            broken += 1
            continue
        lines += 1
        if event["event"] == "tick":
            ticks += 1
        elif event["event"] == "audit_events_lost":
            lost += event["count"]
        else:
            env_events += 1
    before = [r for r in reports if r[0] <= kill_time - FLUSH_PROMISE]
    flushed = [r for r in reports if r[3]]
    return KillOutcome(
        lines,
        env_events,
        max((r[1] for r in before), default=0),
        ticks,
        max((r[2] for r in before), default=0),
        torn,
        len(data),
        lost,
        broken,
        max((r[1] for r in flushed), default=0),
        max((r[2] for r in flushed), default=0),
    )


def kill_many(
    directory: Path, kills: int, num_envs: int = 1024, seed: int = 0, flush_every: int = 0
) -> list[KillOutcome]:
    """``kills`` runs (a fresh file each). Timed (``flush_every`` 0): each killed after 1.1 to 3 s
    of stepping. Counted: the child flushes every ``flush_every`` ticks and is killed at a tick
    between its second and sixth flush."""
    rng = random.Random(seed)
    out = []
    for i in range(kills):
        path = directory / f"trail-{i}.jsonl"
        if flush_every:
            at = rng.randint(2 * flush_every + 1, 6 * flush_every - 1)
            out.append(kill_once(path, None, num_envs, seed + i, ticks=at, flush_every=flush_every))
        else:
            out.append(kill_once(path, rng.uniform(1.1, 3.0), num_envs, seed + i))
        path.unlink()
    return out
