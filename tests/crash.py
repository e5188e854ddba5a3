"""``kill -9`` against a process writing an audit trail, and the check of what it left.

The child steps a fleet whose safety events reach the trail in large batches, records a numbered
``tick`` event between steps, and prints after each step what it has handed to the trail so far,
with the time. After the kill, every line must be complete JSON, and everything handed over more
than :data:`FLUSH_PROMISE` seconds before the kill must be in the file (the writer's documented
promise: an event reaches the operating system well within one second). Used by
``tests/test_faults.py`` and ``benches/bench_faults.py``.
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

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import neorl_industrial as ni
    from neorl_industrial.safety import AuditTrail
    n = int(sys.argv[2])
    trail = AuditTrail(sys.argv[1])
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=n, audit_log=trail, horizon=5)
    envs.reset(seed=int(sys.argv[3]))
    rng = np.random.default_rng(int(sys.argv[3]))
    tick = 0
    while True:
        envs.step(rng.uniform(-1.0, 1.0, (n, 1)))
        tick += 1
        trail.record("tick", seq=tick, note="x" * (tick % 700))
        print(time.monotonic(), envs.safety.events, tick, flush=True)
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

    @property
    def held(self) -> bool:
        return (
            not self.torn
            and self.broken_inside == 0
            and self.lost_in_file == 0
            and self.env_events_in_file >= self.env_events_promised
            and self.ticks_in_file >= self.ticks_promised
        )


def kill_once(path: Path, seconds: float, num_envs: int = 1024, seed: int = 0) -> KillOutcome:
    """Runs the child for about ``seconds`` after its first step, kills it with SIGKILL, checks."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(num_envs), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the child's rate-limited safety warnings
        text=True,
    )
    reports: list[tuple[float, int, int]] = []
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"the child died before the kill (status {child.poll()})")
            t, n, k = line.split()
            reports.append((float(t), int(n), int(k)))
            if reports[-1][0] - reports[0][0] >= seconds:
                break
        kill_time = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    return check(path, reports, kill_time)


def check(path: Path, reports: list[tuple[float, int, int]], kill_time: float) -> KillOutcome:
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
    return KillOutcome(
        lines,
        env_events,
        max((n for _, n, _ in before), default=0),
        ticks,
        max((k for _, _, k in before), default=0),
        torn,
        len(data),
        lost,
        broken,
    )


def kill_many(directory: Path, kills: int, num_envs: int = 1024, seed: int = 0) -> list[KillOutcome]:
    """``kills`` runs, each killed after 1.1 to 3 s of stepping (a fresh file each)."""
    rng = random.Random(seed)
    out = []
    for i in range(kills):
        path = directory / f"trail-{i}.jsonl"
        out.append(kill_once(path, rng.uniform(1.1, 3.0), num_envs, seed + i))
        path.unlink()
    return out
