"""What serving under monitoring costs (a benchmark, not a test: it prints, it asserts nothing).

    python benches/bench_serving.py [--quick | --tiny]

1. Loop overhead: ``PolicyService.step`` against the plain loop ``envs.step(policy(obs))`` it
   replaces, at N = 64 ChemicalReactor envs with a small MLP policy (3-64-64-1, TorchScript and
   ONNX), interleaved repetitions, median time per batch step. Target: at most 5% more.
2. Idle cost: CPU time of a ``neorl-industrial serve`` process over a window, at its default rate
   (10 batch steps per second, N = 64, pid) and paused by an operator, as a share of one core.
   Target: under 1% paused.

The machine is shared: read the ratios, not the digits.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

import neorl_industrial as ni
from neorl_industrial.metrics import Registry
from neorl_industrial.serving import PolicyService

ENV = "ChemicalReactor-v0"
N = 64


def export_mlp(folder: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1), torch.nn.Tanh()
    )
    out = {"torchscript": folder / "mlp.pt", "onnx": folder / "mlp.onnx"}
    torch.jit.save(torch.jit.script(mlp), str(out["torchscript"]))
    torch.onnx.export(mlp, (torch.zeros(1, 3),), str(out["onnx"]), input_names=["obs"], output_names=["act"],
                      dynamic_axes={"obs": {0: "n"}, "act": {0: "n"}}, dynamo=False)  # fmt: skip
    return out


def per_step(fn: object, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - t0) / steps


def loop_overhead(path: Path, steps: int, rounds: int) -> tuple[float, float]:
    """(plain, served) median seconds per batch step."""
    service = PolicyService(ENV, str(path), num_envs=N, registry=Registry())
    act = service.policy.act
    envs = ni.make_vec(ENV, num_envs=N, autoreset_mode="same_step", metrics=True)
    state = {"obs": envs.reset(seed=0)[0]}

    def plain() -> None:
        state["obs"] = envs.step(np.asarray(act(state["obs"])))[0]

    plain_t, served_t = [], []
    per_step(plain, steps // 4)
    per_step(service.step, steps // 4)
    for _ in range(rounds):
        plain_t.append(per_step(plain, steps))
        served_t.append(per_step(service.step, steps))
    service.close()
    envs.close()
    return statistics.median(plain_t), statistics.median(served_t)


def cpu_share(args: list[str], window: float, pause: bool, folder: Path) -> float:
    """Share of one core a serve process uses over ``window`` seconds (after start-up)."""
    import bcrypt

    web = folder / "web.yml"
    web.write_text(f"basic_auth_users:\n  u: {bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4)).decode()}\n")
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--admin", "--web-config", str(web), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" on ", 1)[1].strip()
        if pause:
            body = json.dumps({"action": "pause", "reason": "bench", "operator": "bench"}).encode()
            auth = "Basic " + base64.b64encode(b"u:pw").decode()
            req = urllib.request.Request(url + "interventions", body, {"Authorization": auth}, method="POST")
            urllib.request.urlopen(req, timeout=30).read()
        time.sleep(2.0)

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        c0, t0 = cpu(), time.monotonic()
        time.sleep(window)
        return (cpu() - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tiny", action="store_true", help="a run that only shows the script works")
    a = p.parse_args()
    steps, rounds, window = (20, 1, 0.5) if a.tiny else (200, 3, 3.0) if a.quick else (2000, 9, 20.0)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        files = export_mlp(folder)
        print(f"serving loop overhead, {ENV} x{N}, MLP 3-64-64-1 ({rounds} interleaved rounds of {steps} steps)")
        print(f"{'policy':<12} {'plain loop':>12} {'PolicyService':>14} {'overhead':>9}  target <= 5%")
        for kind, path in files.items():
            plain, served = loop_overhead(path, steps, rounds)
            extra = served / plain - 1.0
            verdict = "met" if extra <= 0.05 else "MISSED"
            print(f"{kind:<12} {plain * 1e6:>10.1f}us {served * 1e6:>12.1f}us {extra * 100:>8.1f}%  {verdict}")
        print(f"\nidle cost of `neorl-industrial serve` (N = {N}, pid), share of one core over {window:g} s")
        running = cpu_share(["--num-envs", str(N)], window, False, folder)
        paused = cpu_share(["--num-envs", str(N)], window, True, folder)
        print(f"  stepping at the default 10 batch steps/s: {running * 100:.2f}%")
        print(f"  paused by an operator:                   {paused * 100:.2f}%  target < 1%: {'met' if paused < 0.01 else 'MISSED'}")


if __name__ == "__main__":
    main()
