"""Threads: two envs stepped in parallel, one env from two threads, the GIL around a batch step.

The speed-up of two threads is measured by ``benches/bench_concurrency.py`` (figures in
RELIABILITY.md); here only what must hold on any machine: native steps release the GIL, parallel
stepping gives the same trajectories as sequential stepping, and a second thread entering an env
that is in use gets :class:`~neorl_industrial.ConcurrentUseError`, never a wrong count.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import neorl_industrial as ni
import neorl_industrial.logging as nlog

N = 2048


def _trajectory(envs: ni.VectorIndustrialEnv, steps: int, seed: int) -> np.ndarray:
    obs, _ = envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(steps):
        obs, *_ = envs.step(rng.uniform(-1, 1, (envs.num_envs, 1)).astype(np.float32))
        out.append(obs)
    return np.stack(out)


def test_two_threads_stepping_two_envs_match_sequential_stepping() -> None:
    seq = [_trajectory(ni.make_vec("ChemicalReactor-v0", num_envs=N, num_threads=1), 30, s) for s in (1, 2)]
    par: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            par[seed] = _trajectory(ni.make_vec("ChemicalReactor-v0", num_envs=N, num_threads=1), 30, seed)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_array_equal(par[1], seq[0])
    np.testing.assert_array_equal(par[2], seq[1])


def test_a_batch_step_releases_the_gil() -> None:
    # Another Python thread must make progress *while* one long native step runs. Its ticks are
    # time-stamped and only those in the middle half of the step count: a step that held the GIL
    # throughout would leave that half empty (the other thread could run only just before the call
    # was entered and after it returned, each at most one switch interval), whatever the speed of
    # the machine.
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=400_000, num_threads=1)
    envs.reset(seed=0)
    actions = np.zeros((envs.num_envs, 1), np.float32)
    stamps: list[float] = []
    go = threading.Event()
    done = threading.Event()

    def count() -> None:
        go.wait()
        while not done.is_set():
            stamps.append(time.perf_counter())

    counter = threading.Thread(target=count)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    counter.start()
    try:
        go.set()
        while not stamps:  # the counter is running
            time.sleep(0.001)
        start = time.perf_counter()
        envs._core.step(actions)  # native only: no Python bytecode runs in this thread meanwhile
        end = time.perf_counter()
    finally:
        done.set()
        counter.join(timeout=60)
        sys.setswitchinterval(interval)
    assert not counter.is_alive()
    quarter = (end - start) / 4
    middle = [t for t in stamps if start + quarter < t < end - quarter]
    assert middle, f"no progress of another thread during the middle of a {end - start:.3f} s step"


def test_one_env_from_two_threads_is_refused_clearly_and_counts_stay_exact() -> None:
    # Same-step autoreset: every batch step is a transition of every env.
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=N, autoreset_mode="same_step")
    envs.reset(seed=0)
    actions = np.zeros((N, 1), np.float32)
    ok = [0, 0]
    refused = [0, 0]
    other: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        start.wait()
        for _ in range(150):
            try:
                envs.step(actions)
                ok[i] += 1
            except ni.ConcurrentUseError as e:
                assert "another thread" in str(e) and "ChemicalReactor-v0" in str(e)
                refused[i] += 1
            except BaseException as e:  # noqa: BLE001 - reported below
                other.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other, other
    assert sum(refused) > 0, "the two threads never collided"
    assert envs.safety.steps == sum(ok) * N
    # The env is still usable from one thread afterwards.
    envs.step(actions)
    assert envs.safety.steps == (sum(ok) + 1) * N


def test_the_native_batch_refuses_a_second_thread_without_the_python_guard() -> None:
    envs = ni.make_vec("ChemicalReactor-v0", num_envs=N)
    envs.reset(seed=0)
    core = envs._core
    actions = np.zeros((N, 1), np.float32)
    seen: list[str] = []

    def work() -> None:
        for _ in range(150):
            try:
                core.step(actions)
            except RuntimeError as e:
                seen.append(str(e))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen and all("borrow" in s.lower() for s in seen), seen[:3]


def test_a_vector_env_is_guarded_in_python_too() -> None:
    env = ni.make_vec("ChemicalReactor-v0", 4)
    guard = env._exclusive
    env.reset(seed=0)
    with guard:  # as if another thread were inside
        with pytest.raises(ni.ConcurrentUseError, match="one thread at a time"):
            env.step(env.action_space.sample())
        with pytest.raises(ni.ConcurrentUseError):
            env.reset(seed=1)
    env.step(env.action_space.sample())


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_single_env_refuses_a_thread_while_another_is_inside_its_step(wrapped: bool) -> None:
    # A real second thread inside the native step: a logging handler on the safety logger blocks
    # there (Python handlers run inside the step and can hand the GIL to another thread).
    env = gym.make("neorl_industrial/ChemicalReactor-v0") if wrapped else ni.make("ChemicalReactor-v0")
    inside, release = threading.Event(), threading.Event()

    class Block(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if threading.current_thread() is not threading.main_thread():
                inside.set()
                release.wait(10)

    logger = logging.getLogger("neorl_industrial.safety")
    handler = Block()
    logger.addHandler(handler)
    nlog.set_rate_limit()  # a fresh window: earlier tests' violations do not hold this one back
    errors: list[BaseException] = []
    try:
        env.reset(seed=0)

        def violate() -> None:
            try:
                # Full cooling then full heating: a 20 K coolant jump breaks the 5 K ramp limit.
                env.step(np.array([-1.0], np.float32))
                env.step(np.array([1.0], np.float32))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=violate)
        t.start()
        assert inside.wait(10), "the violation was not logged"
        with pytest.raises(ni.ConcurrentUseError, match="ChemicalReactor-v0: already in step") as step_err:
            env.step(np.zeros(1, np.float32))
        with pytest.raises(ni.ConcurrentUseError, match="one thread at a time"):
            env.reset(seed=1)
        release.set()
        t.join(10)
    finally:
        release.set()
        logger.removeHandler(handler)
    assert not errors, errors
    assert "another thread" in str(step_err.value)
    # The refused calls changed nothing: the env steps on from where the other thread left it.
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert env.unwrapped._core.snapshot()[2][0] == 3
    assert np.all(np.isfinite(obs))
