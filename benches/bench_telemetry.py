"""Telemetry costs, as ratios (a benchmark, not a test: it prints, it asserts nothing).

    python benches/bench_telemetry.py [--quick]

1. Metrics on vs off for a ChemicalReactor batch step at N = 1024 and N = 1 (``make_vec``), and for
   the single env's ``env.step`` (``make``).
2. One scrape of the full registry (encode, and a real HTTP GET on a kept-alive connection): median.
3. Stepping at N = 1024 while another process scrapes 100 times a second: slowdown.
4. One counter increment and one histogram observation (without and with an exemplar) from Python,
   ours vs prometheus_client.

Medians over interleaved repetitions; the machine is shared, so read the ratios, not the digits.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import time
import timeit

import numpy as np

import neorl_industrial as ni
from neorl_industrial.exporter import start_http_server
from neorl_industrial.metrics import Counter, Histogram, Registry

ENV = "ChemicalReactor-v0"


def step_seconds(n: int, steps: int, **kwargs: object) -> float:
    """Seconds per batch step of ``VectorIndustrialEnv.step``."""
    env = ni.make_vec(ENV, num_envs=n, **kwargs)
    env.reset(seed=0)
    actions = np.zeros(env.action_space.shape, dtype=np.float32)
    step = env.step
    for _ in range(20):
        step(actions)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(actions)
    dt = (time.perf_counter() - t0) / steps
    env.close()
    return dt


def single_step_seconds(steps: int, metrics: bool) -> float:
    """Seconds per ``env.step`` of one ``gymnasium.Env`` (``neorl_industrial.make``)."""
    env = ni.make(ENV, metrics=metrics)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    step, reset = env.step, env.reset
    for _ in range(20):
        if any(step(action)[2:4]):
            reset()
    t0 = time.perf_counter()
    for _ in range(steps):
        if any(step(action)[2:4]):
            reset()
    dt = (time.perf_counter() - t0) / steps
    env.close()
    return dt


def bench_single_on_off(steps: int, reps: int) -> None:
    on, off = [], []
    for _ in range(reps):
        on.append(single_step_seconds(steps, True))
        off.append(single_step_seconds(steps, False))
    ratio = statistics.median(on) / statistics.median(off) - 1
    print(
        f"  single env.step (make): {statistics.median(off) * 1e6:6.2f} us off, {statistics.median(on) * 1e6:6.2f} us on -> overhead {ratio * 100:+.2f}%  (limit 3%)"
    )


def bench_on_off(n: int, steps: int, reps: int) -> None:
    on, off = [], []
    for _ in range(reps):
        on.append(step_seconds(n, steps, metrics=True))
        off.append(step_seconds(n, steps, metrics=False))
    ratio = statistics.median(on) / statistics.median(off) - 1
    print(
        f"  make_vec N={n:5d}: step {statistics.median(off) * 1e6:9.1f} us off, {statistics.median(on) * 1e6:9.1f} us on -> overhead {ratio * 100:+.2f}%  (limit 3%)"
    )


def bench_scrape(reps: int) -> None:
    reg = Registry()
    handle = reg.core.env_metrics(ENV, ["temperature"] * 3, ["warning", "critical", "info"], ["a", "b", "c"])
    handle.record_batch(1024, [1.0] * 17, 0.001, [1, 1, 1], [0, 1, 0], 3, [0.01])
    size = len(reg.generate_latest())
    enc = [timeit.timeit(reg.core.encode, number=1) for _ in range(reps)]
    with start_http_server(0, registry=reg) as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        http_t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            http_t.append(time.perf_counter() - t0)
        conn.close()
    print(f"  encode full registry ({size} bytes): median {statistics.median(enc) * 1e3:.3f} ms (limit 1 ms)")
    print(f"  HTTP GET /metrics, kept-alive:        median {statistics.median(http_t) * 1e3:.3f} ms")


# The scraping client: raw keep-alive HTTP/1.1, so the client's own CPU (it shares this machine)
# stays small next to what it measures. Commands on stdin: "go", "stop" (replies "off <count>").
SCRAPER = """
import select, socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
REQ = b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
buf = b""

def scrape():
    global buf
    sock.sendall(REQ)
    while b"\\r\\n\\r\\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\\r\\n\\r\\n", 1)
    length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
    while len(buf) < length:
        buf += sock.recv(65536)
    buf = buf[length:]

active, n, nxt = False, 0, time.monotonic()
while True:
    wait = max(0.0, nxt - time.monotonic()) if active else None
    if select.select([sys.stdin], [], [], wait)[0]:
        cmd = sys.stdin.readline().strip()
        if not cmd:
            break
        if cmd != "go":
            print("off", n, flush=True)
        active, n, nxt = cmd == "go", 0, time.monotonic()
        continue
    scrape()
    n += 1
    if n == 1:
        print("on", flush=True)
    nxt += 0.01
"""


def thread_cpu_seconds(name: str) -> float:
    """CPU time of this process' threads called ``name`` (Linux)."""
    total = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def bench_scrape_load(steps: int, pairs: int, threads: int | None) -> None:
    env = ni.make_vec(ENV, num_envs=1024, num_threads=threads)
    env.reset(seed=0)
    actions = np.zeros(env.action_space.shape, dtype=np.float32)

    def segment() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        return time.perf_counter() - t0

    segment()
    with start_http_server(0) as s:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, str(s.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        ratios, rates = [], []
        cpu = loaded_total = 0.0
        for k in range(pairs):
            quiet_first = k % 2 == 0
            if quiet_first:
                quiet = segment()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            proc.stdout.readline()
            c0 = thread_cpu_seconds("neorl-exporter")
            loaded = segment()
            cpu += thread_cpu_seconds("neorl-exporter") - c0
            loaded_total += loaded
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            rates.append(int(proc.stdout.readline().split()[1]) / loaded)
            if not quiet_first:
                quiet = segment()
            ratios.append(loaded / quiet)
        proc.stdin.close()
        proc.wait(timeout=30)
    env.close()
    where = f"{threads} stepping thread(s)" if threads else "stepping on every core"
    print(
        f"  N=1024, {where}, {pairs} alternating pairs of {steps} steps: slowdown while scraped at ~{statistics.median(rates):.0f}/s "
        f"{(statistics.median(ratios) - 1) * 100:+.2f}% (median of pairs; limit 5%)"
    )
    print(
        f"  exporter thread CPU while scraped: {cpu / loaded_total * 100:.2f}% of one core "
        "(the scraping client runs on this machine too and takes its own share)"
    )


def bench_python_api(number: int) -> None:
    import prometheus_client as pc

    ours_reg, theirs_reg = Registry(), pc.CollectorRegistry()
    oc, tc = Counter("c_total", "c", registry=ours_reg), pc.Counter("c_total", "c", registry=theirs_reg)
    oh, th = Histogram("h", "h", registry=ours_reg), pc.Histogram("h", "h", registry=theirs_reg)
    olc = Counter("lc_total", "c", ["a"], registry=ours_reg).labels("x")
    tlc = pc.Counter("lc_total", "c", ["a"], registry=theirs_reg).labels("x")
    ex = {"run_id": "52d24f01e1f51fd86e458fe051bcfa86", "episode_id": "3-7"}

    def best(f) -> float:  # noqa: ANN001
        return min(timeit.repeat(f, number=number, repeat=5)) / number

    rows = [
        ("counter.inc()", best(oc.inc), best(tc.inc)),
        ("counter.labels(x).inc()", best(lambda: olc.inc()), best(lambda: tlc.inc())),
        ("histogram.observe(0.3)", best(lambda: oh.observe(0.3)), best(lambda: th.observe(0.3))),
        (
            "observe(0.3, exemplar=...)",
            best(lambda: oh.observe(0.3, exemplar=ex)),
            best(lambda: th.observe(0.3, exemplar=ex)),
        ),
    ]
    for name, ours, theirs in rows:
        print(
            f"  {name:26s} ours {ours * 1e9:6.0f} ns   prometheus_client {theirs * 1e9:6.0f} ns   ratio {ours / theirs:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    a = ap.parse_args()
    reps = 3 if a.quick else 7
    print("1. metrics on vs off, ChemicalReactor batch step")
    bench_on_off(1024, 100 if a.quick else 300, reps)
    bench_on_off(1, 2000 if a.quick else 10000, reps)
    bench_single_on_off(2000 if a.quick else 10000, reps)
    print("2. scrape of the full registry")
    bench_scrape(200 if a.quick else 1000)
    print("3. stepping while scraped 100 times a second")
    # With every core stepping, the scraping client (on this machine too) preempts a stepping thread
    # and the batch waits for it; with one core left free the cost is the exporter's own.
    for threads in (None, 1):
        bench_scrape_load(200 if a.quick else 500, 6 if a.quick else 16, threads)
    print("4. Python API, one call")
    bench_python_api(100_000 if a.quick else 300_000)


if __name__ == "__main__":
    main()
