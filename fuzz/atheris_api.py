"""Fuzzes the Python API with atheris: make/make_vec options, constraint configurations, reset seeds
and options, and step actions of every shape, dtype and value, for every environment.

Invariants checked on every input (a violation raises, and atheris reports the input):

* every exception is a :class:`neorl_industrial.NeorlError` (never a ``TypeError``, ``OverflowError``,
  a Rust panic or anything else), and bad input raises a ``ValueError`` subclass;
* a refused ``step`` or ``reset`` leaves the env's full state (snapshot) exactly as it was;
* a step with finite actions returns finite observations and rewards.

Run (1,000,000 executions, about ten minutes on two cores)::

    python fuzz/atheris_api.py -atheris_runs=1000000

The tests run :func:`run` for a few thousand inputs (``tests/test_fuzz_api.py``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import atheris
import numpy as np

with atheris.instrument_imports(include=["neorl_industrial"]):
    import neorl_industrial as ni

IDS = ni.env_ids()
ACT_DIM = {i: len(ni.spec(i)["actions"]) for i in IDS}
SIGNALS = {i: [s["name"] for s in ni.spec(i)["signals"]] for i in IDS}
CONSTRAINTS = {i: [c["name"] for c in ni.spec(i)["constraints"]] for i in IDS}
OPTION_NAMES = ["horizon", "noise", "x0_spread", "setpoints", "setpoint", "stationary_setpoint", "days", "summer",
                "outdoor_mean", "internal_gains", "load_step", "disturbance_rate", "initial_load", "bogus"]  # fmt: skip
FIELDS = ["name", "signal", "kind", "limit", "low", "high", "terms", "b", "type", "severity", "weight", "scale",
          "penalty", "deadband", "on_delay", "defaults"]  # fmt: skip
WORDS = ["upper", "lower", "band", "abs", "rate", "linear", "info", "warning", "critical", "clip", "predictive",
         "same_step", "next_step", "disabled", "", "\ud800", "x"]  # fmt: skip
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"), 60,
           10**400, -(2**63), 2**64 + 1, True, False]  # fmt: skip
DTYPES = [np.float64, np.float32, np.float16, np.longdouble, np.int8, np.int64, np.uint8, np.uint64, np.bool_,
          np.complex128, object, ">f8", "<U3", "datetime64[s]"]  # fmt: skip


def number(fdp: atheris.FuzzedDataProvider) -> Any:
    k = fdp.ConsumeIntInRange(0, 5)
    if k == 0:
        return fdp.PickValueInList(SPECIAL)
    if k == 1:
        return fdp.ConsumeFloat()
    if k == 2:
        return fdp.ConsumeIntInRange(-10, 2000)
    if k == 3:
        return np.float32(fdp.ConsumeRegularFloat())
    if k == 4:
        return np.int64(fdp.ConsumeIntInRange(-(2**63), 2**63 - 1))
    return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 80))


def value(fdp: atheris.FuzzedDataProvider, env_id: str, depth: int = 0) -> Any:
    k = fdp.ConsumeIntInRange(0, 9 if depth < 4 else 4)
    if k == 0:
        return None
    if k in (1, 2):
        return number(fdp)
    if k == 3:
        return fdp.PickValueInList(WORDS + SIGNALS[env_id] + CONSTRAINTS[env_id])
    if k == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8))
    if k in (5, 6):
        return [value(fdp, env_id, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if k == 7:
        return {fdp.PickValueInList(FIELDS): value(fdp, env_id, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}
    keys = CONSTRAINTS[env_id] + ["defaults", "x", 1]
    return {fdp.PickValueInList(keys): value(fdp, env_id, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def options(fdp: atheris.FuzzedDataProvider, env_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        out[fdp.PickValueInList(OPTION_NAMES)] = value(fdp, env_id, 3)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        out["constraints"] = value(fdp, env_id)
    if fdp.ConsumeIntInRange(0, 5) == 0:
        out["shield"] = fdp.PickValueInList([None, "clip", "predictive", "magic", 3])
    return out


def action(fdp: atheris.FuzzedDataProvider, shape: tuple[int, ...]) -> Any:
    k = fdp.ConsumeIntInRange(0, 9)
    if k == 0:  # any shape
        shape = tuple(fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    size = int(np.prod(shape))
    if k == 1:
        return value(fdp, IDS[0], 3)
    values = np.array([fdp.ConsumeRegularFloat() / 1e300 if fdp.ConsumeBool() else number(fdp)
                       for _ in range(min(size, 64))] + [0.0] * max(0, size - 64), dtype=object)  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = values.astype(fdp.PickValueInList(DTYPES) if k in (2, 3, 4) else np.float64).reshape(shape)
    except (ValueError, TypeError, OverflowError):
        arr = np.zeros(shape)
    if k == 5:
        return arr.tolist()
    if k == 6 and arr.ndim >= 1:
        return np.repeat(arr, 2, axis=-1)[..., ::2]  # a strided view
    if k == 7:
        arr.setflags(write=False)
    return arr


def snapshot(env: Any) -> list[np.ndarray]:
    return [np.array(x, copy=True) for x in env._core.snapshot()]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


def check_error(e: BaseException) -> None:
    if not isinstance(e, ni.NeorlError):
        raise e
    if not isinstance(e, (ni.ResetNeededError, ni.ExporterError)) and not isinstance(e, ValueError):
        raise AssertionError(f"{type(e).__name__} is not a ValueError") from e
    if not str(e):
        raise AssertionError("an error without a message") from e


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    env_id = fdp.PickValueInList(IDS)
    vector = fdp.ConsumeBool()
    n = fdp.ConsumeIntInRange(1, 4)
    kwargs = options(fdp, env_id)
    kwargs["metrics"] = fdp.ConsumeIntInRange(0, 7) == 0
    try:
        if vector:
            mode = fdp.PickValueInList(["next_step", "same_step", "disabled"])
            env: Any = ni.make_vec(env_id, num_envs=n, autoreset_mode=mode, **kwargs)
        else:
            env = ni.make(env_id, **kwargs)
    except Exception as e:  # noqa: BLE001 - the invariant is the exception's type
        check_error(e)
        return
    shape = (n, ACT_DIM[env_id]) if vector else (ACT_DIM[env_id],)
    for _ in range(fdp.ConsumeIntInRange(1, 12)):
        before = snapshot(env)
        if fdp.ConsumeIntInRange(0, 5) == 0:
            seed = fdp.PickValueInList([None, 0, 7, -1, 1.5, "1", True, 2**70, [1] * n, np.int64(3)])
            opts = fdp.PickValueInList([None, {}, {"reset_mask": np.ones(n, bool)}, {"x": 1}, 5])
            try:
                env.reset(seed=seed, options=opts)
            except Exception as e:  # noqa: BLE001
                check_error(e)
                if not same(before, snapshot(env)):
                    raise AssertionError("a refused reset changed the state") from e
            continue
        a = action(fdp, shape)
        try:
            obs, reward, *_ = env.step(a)
        except Exception as e:  # noqa: BLE001
            check_error(e)
            if not same(before, snapshot(env)):
                raise AssertionError("a refused step changed the state") from e
            continue
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))):
            raise AssertionError(f"non-finite output from action {a!r}")


def run(argv: list[str]) -> None:
    # Safety events are logged at WARNING: thousands a second would only slow the fuzzer down.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warnings on cast
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    run(sys.argv)
