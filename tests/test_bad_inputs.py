"""Bad input at every public entry point, for every environment.

Each case either is accepted (and then behaves exactly like its float64 equivalent) or raises the
documented exception with a message naming the problem. After every refused call the env steps on
and must equal an untouched twin: same full state (process, RNG stream, step count), same outputs.

Entry points: ``make``/``make_vec`` keyword arguments, ``reset`` seeds and options, ``step`` of the
single env, the vector env and the SB3 ``VecEnv``, constraint configurations (dicts, lists, YAML and
TOML files) and the command line.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import ENV_IDS, STOCHASTIC_OPTIONS

import neorl_industrial as ni
from neorl_industrial import cli

N = 3  # batch size of the vector entry points


def options(env_id: str) -> dict[str, Any]:
    return {**STOCHASTIC_OPTIONS[env_id], "horizon": 40}


def act_dim(env_id: str) -> int:
    return len(ni.spec(env_id)["actions"])


def fmt(shape: tuple[int, ...]) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"


# --------------------------------------------------------------------------- entry points
class Single:
    """``make(id)``: one env, actions of shape ``(act_dim,)``."""

    name = "single"

    def __init__(self, env_id: str) -> None:
        self.env = ni.make(env_id, metrics=False, **options(env_id))
        self.shape: tuple[int, ...] = (act_dim(env_id),)

    def reset(self, **kw: Any) -> Any:
        return self.env.reset(**kw)

    def step(self, a: Any) -> tuple[Any, ...]:
        obs, r, term, trunc, _ = self.env.step(a)
        return obs, r, term, trunc

    def snapshot(self) -> tuple[np.ndarray, ...]:
        """The core's full state, less what names an incident rather than describes it: its id
        (numbered by the process) and the wall time it opened at."""
        parts = list(self.env._core.snapshot())
        ints, reals = parts[7].reshape(-1, 5).copy(), parts[8].reshape(-1, 5).copy()
        ints[:, 2] = 0
        reals[:, 0] = 0.0
        return (*parts[:7], ints, reals)


class Vector(Single):
    """``make_vec(id, num_envs=3)``: actions of shape ``(3, act_dim)``."""

    name = "vector"

    def __init__(self, env_id: str) -> None:
        self.env = ni.make_vec(env_id, num_envs=N, autoreset_mode="same_step", metrics=False, **options(env_id))
        self.shape = (N, act_dim(env_id))


class SB3(Single):
    """``SB3VecEnv.from_id(id, num_envs=3)``: SB3's ``VecEnv.step``."""

    name = "sb3"

    def __init__(self, env_id: str) -> None:
        from neorl_industrial.integrations.sb3 import SB3VecEnv

        self.venv = SB3VecEnv.from_id(env_id, num_envs=N, metrics=False, **options(env_id))
        self.env = self.venv.vector_env
        self.shape = (N, act_dim(env_id))

    def reset(self, **kw: Any) -> Any:
        self.venv.seed(kw.get("seed"))
        return self.venv.reset(), {}

    def step(self, a: Any) -> tuple[Any, ...]:
        obs, r, done, _ = self.venv.step(a)
        return obs, r, done


ENTRY_POINTS = [Single, Vector, SB3]


def assert_same(a: Any, b: Any) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def twins(kind: type[Single], env_id: str) -> tuple[Single, Single]:
    env, twin = kind(env_id), kind(env_id)
    assert_same(env.reset(seed=11)[:1], twin.reset(seed=11)[:1])
    return env, twin


def step_on(env: Single, twin: Single, steps: int = 3) -> None:
    """Both step on with the same valid actions: outputs and full state stay identical."""
    rng = np.random.default_rng(3)
    for _ in range(steps):
        a = rng.uniform(-1, 1, env.shape)
        assert_same(env.step(a), twin.step(a))
    assert_same(env.snapshot(), twin.snapshot())


# --------------------------------------------------------------------------- action cases
def base(shape: tuple[int, ...]) -> np.ndarray:
    return np.linspace(-0.9, 0.7, math.prod(shape)).reshape(shape)


def ints(shape: tuple[int, ...], lo: int = -1) -> np.ndarray:
    return (np.arange(math.prod(shape)) % 2 + lo).reshape(shape)


def with_last(shape: tuple[int, ...], value: Any, dtype: Any = np.float64) -> np.ndarray:
    a = base(shape).astype(dtype)
    a.reshape(-1)[-1] = value
    return a


def last_element(shape: tuple[int, ...]) -> str:
    return f"action of env {shape[0] - 1 if len(shape) == 2 else 0}, element {shape[-1] - 1}"


class ArrayLike:
    """An object with ``__array__`` (what a CPU tensor offers)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)


class OnTheGpu:
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise RuntimeError("tensor is on the GPU")


def recursive_list() -> list[Any]:
    x: list[Any] = [0.0]
    x.append(x)
    return x


def view(shape: tuple[int, ...], how: str) -> np.ndarray:
    a = base(shape)
    if how == "strided":
        return np.stack([a, np.zeros_like(a)], axis=-1)[..., 0]
    if how == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "readonly":
        a.setflags(write=False)
        return a
    raise AssertionError(how)


@dataclass
class Case:
    """``build(shape)`` gives the object passed to step; accepted cases give the float64 action it
    must behave like, refused cases the exception and the message fragment (given the shape)."""

    name: str
    build: Callable[[tuple[int, ...]], Any]
    same_as: Callable[[tuple[int, ...]], np.ndarray] | None = None
    error: type[Exception] = ni.InvalidActionError
    message: Callable[[tuple[int, ...]], str] = lambda s: ""


def accepted(name: str, build: Callable, same_as: Callable | None = None) -> Case:
    return Case(name, build, same_as or (lambda s: np.asarray(build(s), dtype=np.float64)))


def refused(name: str, build: Callable, message: str | Callable[[tuple[int, ...]], str]) -> Case:
    msg = message if callable(message) else (lambda s, m=message: m)
    return Case(name, build, None, ni.InvalidActionError, msg)


def wrong_shape(name: str, shape_of: Callable[[tuple[int, ...]], tuple[int, ...]]) -> Case:
    return refused(
        name,
        lambda s: np.zeros(shape_of(s)),
        lambda s: f"expected shape {fmt(s)}, got {fmt(shape_of(s)) if shape_of(s) else '()'}",
    )


ACTION_CASES = [
    # Accepted: real numbers of any dtype, layout, byte order, writeability.
    accepted("float64", base),
    accepted("float32", lambda s: base(s).astype(np.float32)),
    accepted("float16", lambda s: base(s).astype(np.float16)),
    accepted("longdouble", lambda s: base(s).astype(np.longdouble)),
    *[accepted(t.__name__, lambda s, t=t: ints(s).astype(t)) for t in (np.int8, np.int16, np.int32, np.int64)],
    *[accepted(t.__name__, lambda s, t=t: ints(s, 0).astype(t)) for t in (np.uint8, np.uint16, np.uint32, np.uint64)],
    accepted("big-endian float64", lambda s: base(s).astype(">f8")),
    accepted("big-endian int32", lambda s: ints(s).astype(">i4")),
    *[accepted(how, lambda s, how=how: view(s, how)) for how in ("strided", "reversed", "fortran", "readonly")],
    accepted("broadcast zero strides", lambda s: np.broadcast_to(np.float64(0.3), s)),
    accepted("nested list", lambda s: base(s).tolist()),
    accepted("nested tuple", lambda s: tuple(map(tuple, base(s))) if len(s) == 2 else tuple(base(s))),
    accepted("list of ints", lambda s: ints(s).tolist()),
    accepted("list of numpy float32", lambda s: list(base(s).astype(np.float32)) if len(s) == 1 else
             [list(r) for r in base(s).astype(np.float32)]),  # fmt: skip
    accepted("masked array", lambda s: np.ma.masked_array(base(s), mask=False)),
    accepted("masked array, no mask", lambda s: np.ma.array(base(s))),
    accepted("__array__ object", lambda s: ArrayLike(base(s))),
    # Huge finite values are clipped to [-1, 1] like any out-of-range action.
    accepted("1e308", lambda s: np.full(s, 1e308), lambda s: np.ones(s)),
    accepted("-1e308", lambda s: np.full(s, -1e308), lambda s: -np.ones(s)),
    accepted("float32 max", lambda s: np.full(s, np.finfo(np.float32).max, np.float32), lambda s: np.ones(s)),
    accepted("int64 min", lambda s: np.full(s, np.iinfo(np.int64).min), lambda s: -np.ones(s)),
    accepted("uint64 max", lambda s: np.full(s, np.iinfo(np.uint64).max), lambda s: np.ones(s)),
    accepted("2**63 in a list", lambda s: np.full(s, 2**63, np.uint64).tolist(), lambda s: np.ones(s)),
    accepted("subnormal", lambda s: np.full(s, 5e-324)),
    # Refused dtypes.
    refused("bool", lambda s: np.ones(s, bool), "dtype bool is not supported"),
    refused("complex64", lambda s: base(s).astype(np.complex64), "dtype complex64 is not supported"),
    refused("complex128", lambda s: base(s).astype(np.complex128), "dtype complex128 is not supported"),
    refused("object", lambda s: base(s).astype(object), "dtype object is not supported"),
    refused("str array", lambda s: np.full(s, "0.5"), "dtype <U3 is not supported"),
    refused("bytes array", lambda s: np.full(s, b"0.5"), "dtype |S3 is not supported"),
    refused("datetime64", lambda s: np.zeros(s, "datetime64[s]"), "dtype datetime64[s] is not supported"),
    refused("timedelta64", lambda s: np.zeros(s, "timedelta64[s]"), "dtype timedelta64[s] is not supported"),
    refused("structured", lambda s: np.zeros(s, [("a", "f8")]), "is not supported"),
    refused("masked elements", lambda s: np.ma.masked_greater(np.full(s, 0.5), 0.0), "has masked elements"),
    refused("list of masked rows", lambda s: list(np.ma.masked_greater(np.full(s, 0.5), 0.0)),
            "the list holds a masked array with masked elements"),  # fmt: skip
    refused("list of bools", lambda s: np.ones(s, bool).tolist(), "dtype bool is not supported (the list holds"),
    refused("list with None", lambda s: np.full(s, None).tolist(), "dtype object is not supported (the list holds"),
    refused("list of str", lambda s: np.full(s, "0.5").tolist(), "the list holds something other than real numbers"),
    refused("list of complex", lambda s: base(s).astype(complex).tolist(), "dtype complex128 is not supported"),
    refused("ragged list", lambda s: [[0.0], [0.0, 0.0]], "could not read the action as an array of numbers"),
    refused("recursive list", lambda s: recursive_list(), "could not read the action as an array of numbers"),
    refused("__array__ raising", lambda s: OnTheGpu(), "could not read the action as an array of numbers: tensor is on the GPU"),
    *[refused(f"{type(x).__name__} object", lambda s, x=x: x, f"got {type(x).__name__}")
      for x in (None, "0.5", b"0.5", {"a": 0.5}, {0.5})],  # fmt: skip
    refused("generator", lambda s: (x for x in base(s).ravel()), "got generator"),
    # Wrong shapes.
    wrong_shape("0-d array", lambda s: ()),
    refused("python float", lambda s: 0.5, lambda s: f"expected shape {fmt(s)}, got ()"),
    refused("numpy float32 scalar", lambda s: np.float32(0.5), lambda s: f"expected shape {fmt(s)}, got ()"),
    wrong_shape("empty", lambda s: (0,)),
    wrong_shape("one element too many", lambda s: (*s[:-1], s[-1] + 1)),
    wrong_shape("extra leading axis", lambda s: (1, *s)),
    wrong_shape("extra trailing axis", lambda s: (*s, 1)),
    wrong_shape("transposed", lambda s: (s[-1], *s[:-1], 2)),
    wrong_shape("huge shape", lambda s: (10**6, *s)),
    # Not finite: named by env and element.
    refused("NaN", lambda s: with_last(s, np.nan), lambda s: f"{last_element(s)}: must be finite, got NaN"),
    refused("NaN float32", lambda s: with_last(s, np.nan, np.float32), lambda s: f"{last_element(s)}: must be finite"),
    refused("NaN float16", lambda s: with_last(s, np.nan, np.float16), lambda s: f"{last_element(s)}: must be finite"),
    refused("+inf", lambda s: with_last(s, np.inf), lambda s: f"{last_element(s)}: must be finite, got inf"),
    refused("-inf", lambda s: with_last(s, -np.inf), lambda s: f"{last_element(s)}: must be finite, got -inf"),
    refused("NaN in a list", lambda s: with_last(s, np.nan).tolist(), lambda s: f"{last_element(s)}: must be finite"),
    refused("longdouble beyond float64", lambda s: with_last(s, np.longdouble("1e4000"), np.longdouble),
            lambda s: f"{last_element(s)}: must be finite, got inf"),  # fmt: skip
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # longdouble -> float64 overflow
@pytest.mark.parametrize("kind", ENTRY_POINTS, ids=lambda k: k.name)
@pytest.mark.parametrize("case", ACTION_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_actions(env_id: str, case: Case, kind: type[Single]) -> None:
    env, twin = twins(kind, env_id)
    action = case.build(env.shape)
    if case.same_as is None:
        before = env.snapshot()
        with pytest.raises(case.error) as e:
            env.step(action)
        assert isinstance(e.value, ValueError) and isinstance(e.value, ni.NeorlError)
        assert case.message(env.shape) in str(e.value), str(e.value)
        assert_same(env.snapshot(), before)
    else:
        assert_same(env.step(action), twin.step(case.same_as(env.shape)))
    step_on(env, twin)


def test_flat_batch_of_one_dimensional_actions_is_the_one_alternative_shape() -> None:
    envs = Vector("ChemicalReactor-v0")
    twin = Vector("ChemicalReactor-v0")
    envs.reset(seed=2)
    twin.reset(seed=2)
    assert_same(envs.step(np.full(N, 0.2, np.float16)), twin.step(np.full((N, 1), 0.2, np.float16)))
    envs4 = Vector("IndustrialBenchmark-v0")
    envs4.reset(seed=0)
    with pytest.raises(ni.InvalidActionError, match=re.escape("expected shape (3, 3), got (9,)")):
        envs4.step(np.zeros(9))


# --------------------------------------------------------------------------- make / make_vec kwargs
KWARG_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("unknown option", {"nope": 1}, ni.ConfigError, "nope: is not an option of {env_id}"),
    ("horizon str", {"horizon": "10"}, ni.ConfigError, "horizon: must be a bool, a number or a list of numbers, got str"),
    ("horizon None", {"horizon": None}, ni.ConfigError, "horizon: must be a bool, a number or a list of numbers, got NoneType"),
    ("horizon bool", {"horizon": True}, ni.ConfigError, "horizon: must be a number, got true"),
    ("horizon list", {"horizon": [1, 2]}, ni.ConfigError, "horizon: must be a number, got [1.0, 2.0]"),
    ("horizon 0", {"horizon": 0}, ni.ConfigError, "horizon: must be a finite number in [1, "),
    ("horizon negative", {"horizon": -5}, ni.ConfigError, "horizon: must be a finite number in [1, "),
    ("horizon fraction", {"horizon": 2.5}, ni.ConfigError, "horizon: must be a whole number, got 2.5"),
    ("horizon NaN", {"horizon": float("nan")}, ni.ConfigError, "horizon: must be a finite number in [1, "),
    ("horizon inf", {"horizon": float("inf")}, ni.ConfigError, "horizon: must be a finite number in [1, "),
    ("horizon 1e300", {"horizon": 1e300}, ni.ConfigError, "horizon: must be a finite number in [1, "),
    ("horizon 10**400", {"horizon": 10**400}, ni.ConfigError, "horizon: not representable as a float"),
    ("horizon complex", {"horizon": 1j}, ni.ConfigError, "horizon: must be a bool, a number or a list of numbers, got complex"),
    ("surrogate name", {"\ud800": 1}, ni.ConfigError, "options: must be valid Unicode"),
    ("render_mode", {"render_mode": "human"}, ni.ConfigError, "render_mode"),
    ("constraints int", {"constraints": 42}, ni.ConfigError, "constraints: must be a mapping, a list or a file path, got int"),
    ("shield", {"shield": "magic"}, ni.ConfigError, "shield: must be None, 'clip' or 'predictive', got \"magic\""),
    ("shield int", {"shield": 3}, ni.ConfigError, "shield: must be None, 'clip' or 'predictive', got int"),
    ("audit_log", {"audit_log": 42}, ni.ConfigError, "audit_log: must be a path or an AuditTrail, got int"),
    ("registry", {"registry": "x"}, ni.ConfigError, "registry: must be a neorl_industrial.metrics.Registry, got str"),
]  # fmt: skip
VEC_KWARG_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    *[(f"num_envs {v!r}", {"num_envs": v}, ni.ConfigError, "num_envs: must be a positive integer")
      for v in (0, -1, 1.5, "2", True, None)],
    *[(f"num_threads {v!r}", {"num_threads": v}, ni.ConfigError, "num_threads: must be a positive integer or None")
      for v in (0, -1, 1.5, "2", True)],
    ("num_threads 10**6", {"num_threads": 10**6}, ni.ConfigError, "num_threads: must be at most 1024, got 1000000"),
    *[(f"num_envs {v!r}", {"num_envs": v}, ni.ConfigError, f"num_envs: must be at most 16777216, got {v}")
      for v in (2**24 + 1, 10**12, 10**30)],  # a typo's size is refused, not a process abort
    ("autoreset_mode", {"autoreset_mode": "sometimes"}, ni.ConfigError, "autoreset_mode: must be one of"),
    ("autoreset_mode int", {"autoreset_mode": 5}, ni.ConfigError, "autoreset_mode: must be one of"),
    ("vector render_mode", {"render_mode": "rgb_array"}, ni.ConfigError, "render_mode: vector envs do not render"),
]  # fmt: skip


def _bystander() -> tuple[Single, Single]:
    env, twin = Single("FourTank-v0"), Single("FourTank-v0")
    env.reset(seed=1)
    twin.reset(seed=1)
    return env, twin


@pytest.mark.parametrize(("name", "kwargs", "error", "message"), KWARG_CASES, ids=[c[0] for c in KWARG_CASES])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_and_make_vec_kwargs(env_id: str, name: str, kwargs: dict, error: type, message: str) -> None:
    env, twin = _bystander()  # a live env elsewhere in the process is not disturbed
    message = message.format(env_id=env_id)
    for build in (ni.make, lambda i, **kw: ni.make_vec(i, num_envs=2, **kw)):
        if name == "render_mode" and build is not ni.make:
            continue
        with pytest.raises(error) as e:
            build(env_id, **kwargs)
        assert message in str(e.value), str(e.value)
        env.step(np.zeros(env.shape))
        twin.step(np.zeros(env.shape))
    step_on(env, twin)


@pytest.mark.parametrize(("name", "kwargs", "error", "message"), VEC_KWARG_CASES, ids=[c[0] for c in VEC_KWARG_CASES])
def test_make_vec_only_kwargs(name: str, kwargs: dict, error: type, message: str) -> None:
    kwargs = {"num_envs": 2, **kwargs}
    with pytest.raises(error) as e:
        ni.make_vec("PowerGrid-v0", **kwargs)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("env_id", [5, None, "", "Nope-v0", "neorl_industrial/Nope-v0", "chemicalreactor-v0"])
def test_unknown_env_ids(env_id: Any) -> None:
    for call in (ni.make, ni.make_vec, ni.spec):
        with pytest.raises(ni.UnknownEnvironmentError) as e:
            call(env_id)
        assert isinstance(e.value, ni.ConfigError)
        assert "env_id: must be a string" in str(e.value) or f"unknown environment {env_id!r}" in str(e.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_numpy_scalars_are_numbers_in_options(env_id: str) -> None:
    a = ni.make(env_id, horizon=np.int64(20), metrics=False)
    b = ni.make(env_id, horizon=20, metrics=False)
    assert a.horizon == b.horizon == 20
    assert ni.make_vec(env_id, num_envs=np.int32(2), num_threads=np.uint8(2), metrics=False).num_envs == 2


# --------------------------------------------------------------------------- reset seeds and options
RESET_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("seed -1", {"seed": -1}, "seed: must be"),
    ("seed float", {"seed": 1.5}, "seed: must be"),
    ("seed str", {"seed": "1"}, "seed: must be"),
    ("seed bool", {"seed": True}, "seed: must be"),
    ("seed numpy bool", {"seed": np.bool_(True)}, "seed: must be"),
    ("options int", {"options": 5}, "options: must be a mapping or None, got int"),
    ("options list", {"options": ["reset_mask"]}, "options: must be a mapping or None, got list"),
    ("options unknown key", {"options": {"reset_msk": np.ones(N, bool)}}, "options: unknown key 'reset_msk'"),
]
VECTOR_RESET_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("seed list too short", {"seed": [1, 2]}, "seed: a list of seeds needs one per env (3), got 2"),
    ("seed list negative", {"seed": [1, -2, 3]}, "seed: each seed must be a non-negative integer or None, got -2"),
    ("seed list float", {"seed": [1, 2.5, 3]}, "seed: each seed must be a non-negative integer or None, got 2.5"),
    ("seed 2-D array", {"seed": np.zeros((3, 1), int)}, "seed: must be a non-negative integer, a list of them"),
    ("reset_mask list", {"options": {"reset_mask": [True] * N}}, "reset_mask: must be a numpy array, got list"),
    ("reset_mask shape", {"options": {"reset_mask": np.ones(N + 1, bool)}}, "reset_mask: must have shape (3,), got (4,)"),
    ("reset_mask 2-D", {"options": {"reset_mask": np.ones((N, 1), bool)}}, "reset_mask: must have shape (3,), got (3, 1)"),
    ("reset_mask None", {"options": {"reset_mask": None}}, "reset_mask: must be a numpy array, got NoneType"),
    ("reset_mask dtype", {"options": {"reset_mask": np.ones(N, int)}}, "reset_mask: must have dtype bool, got int64"),
    ("reset_mask empty", {"options": {"reset_mask": np.zeros(N, bool)}}, "reset_mask: must select at least one env"),
]  # fmt: skip


RESET_MATRIX = [(Single, *c) for c in RESET_CASES] + [(Vector, *c) for c in RESET_CASES + VECTOR_RESET_CASES]


@pytest.mark.parametrize(("kind", "name", "kwargs", "message"), RESET_MATRIX,
                         ids=[f"{c[0].name}-{c[1]}" for c in RESET_MATRIX])  # fmt: skip
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_arguments(env_id: str, kind: type[Single], name: str, kwargs: dict, message: str) -> None:
    if kind is Single and name == "options unknown key":
        message = "options: unknown key 'reset_msk'; this environment takes no reset options"
    env, twin = twins(kind, env_id)
    env.step(np.zeros(env.shape))
    twin.step(np.zeros(env.shape))
    before = env.snapshot()
    with pytest.raises(ni.ConfigError) as e:
        env.reset(**kwargs)
    assert message in str(e.value), str(e.value)
    assert_same(env.snapshot(), before)
    step_on(env, twin)


@pytest.mark.parametrize("kind", [Single, Vector], ids=lambda k: k.name)
def test_accepted_reset_arguments_equal_their_plain_forms(kind: type[Single]) -> None:
    for odd, plain in (
        ({"seed": np.int64(7)}, {"seed": 7}),
        ({"seed": 2**64 + 7}, {"seed": 7}),
        ({"seed": 7, "options": {}}, {"seed": 7, "options": None}),
    ):
        a, b = kind("HVAC-v0"), kind("HVAC-v0")
        assert_same(a.reset(**odd)[:1], b.reset(**plain)[:1])
        step_on(a, b)


def test_sb3_reset_options_are_checked_too() -> None:
    env, twin = twins(SB3, "PowerGrid-v0")
    env.venv.set_options({"reset_msk": np.ones(N, bool)})
    with pytest.raises(ni.ConfigError, match="options: unknown key 'reset_msk'"):
        env.venv.reset()
    step_on(env, twin)


# --------------------------------------------------------------------------- constraint configurations
def deep(levels: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(levels):
        d = {"a": d}
    return d


def recursive_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["a"] = d
    return d


def constraint_cases(env_id: str) -> list[tuple[str, Any, str]]:
    sp = ni.spec(env_id)
    c0, s0 = sp["constraints"][0]["name"], sp["signals"][0]["name"]
    new = {"kind": "upper", "signal": s0, "limit": 1.0}
    return [
        ("not a number", {c0: {"weight": "hot"}}, f'constraints.{c0}.weight: must be a finite number, got "hot"'),
        ("NaN", {c0: {"weight": float("nan")}}, f"constraints.{c0}.weight: must be a finite number, got NaN"),
        ("inf", {c0: {"weight": float("inf")}}, f"constraints.{c0}.weight: must be a finite number, got inf"),
        ("10**400", {c0: {"weight": 10**400}}, f"constraints.{c0}.weight: not representable as a float"),
        ("negative weight", {c0: {"weight": -1.0}}, f"constraints.{c0}.weight: must be >= 0"),
        ("unknown field", {c0: {"nope": 1}}, f"constraints.{c0}.nope: is not a constraint field"),
        ("drop unknown", {"nope": None}, "constraints.nope: no such constraint to drop"),
        ("unknown signal", {"x": {**new, "signal": "NOPE"}}, 'constraints.x.signal: unknown signal "NOPE"'),
        ("severity", {"x": {**new, "severity": "fatal"}}, "constraints.x.severity: must be info, warning or critical"),
        ("on_delay", {"x": {**new, "on_delay": 1.5}}, "constraints.x.on_delay: must be a whole number"),
        ("entry not a mapping", {c0: 5}, f"constraints.{c0}: must be a mapping or None, got 5"),
        ("list entry unnamed", [{"kind": "upper"}], "constraints[0].name: must be a string"),
        ("list entry not a mapping", [5], "constraints[0]: must be a mapping, got 5"),
        ("duplicate names", [{**new, "name": "x"}, {**new, "name": "x"}], 'duplicate constraint name "x"'),
        ("defaults", {"defaults": "no"}, "constraints.defaults: must be true or false"),
        ("key not a string", {1: {}}, "constraints: keys must be strings, got int"),
        ("surrogate", {c0: {"type": "\ud800"}}, f"constraints.{c0}.type: must be valid Unicode"),
        ("set value", {c0: {"weight": {1.0}}}, f"constraints.{c0}.weight: unsupported value of type set"),
        ("nested 10,000 deep", {c0: deep(10_000)}, "nested more than 32 levels deep"),
        ("recursive", {c0: recursive_dict()}, "nested more than 32 levels deep"),
        ("200,000 values", {c0: {"terms": list(range(200_000))}}, "holds more than 100000 values"),
        ("not a container", 42, "constraints: must be a mapping, a list or a file path, got int"),
    ]


READ_ERRORS = {"10**400", "key not a string", "surrogate", "set value", "nested 10,000 deep", "recursive",
               "200,000 values"}  # fmt: skip


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_constraint_configs(env_id: str) -> None:
    env, twin = _bystander()
    for name, cfg, message in constraint_cases(env_id):
        for build in (ni.make, lambda i, **kw: ni.make_vec(i, num_envs=2, **kw)):
            with pytest.raises(ni.ConfigError) as e:
                build(env_id, constraints=cfg, metrics=False)
            assert message in str(e.value), (name, str(e.value))
        if name in READ_ERRORS:  # the standalone checker reads configurations the same way
            with pytest.raises(ni.ConfigError) as e:
                ni.safety.SafetyChecker(cfg, signals=[s["name"] for s in ni.spec(env_id)["signals"]])
            assert message in str(e.value), (name, str(e.value))
    step_on(env, twin)
    c0 = ni.spec(env_id)["constraints"][0]["name"]
    a = ni.make(env_id, constraints={c0: {"weight": np.float32(2.0)}}, metrics=False).core_spec
    b = ni.make(env_id, constraints={c0: {"weight": 2.0}}, metrics=False).core_spec
    assert a["constraints"] == b["constraints"]


# --------------------------------------------------------------------------- YAML and TOML files
FILE_CASES: list[tuple[str, str, bytes, str]] = [
    ("bad YAML", "c.yaml", b"a: [", "is not valid YAML"),
    ("bad TOML", "c.toml", b"a = ", "is not valid TOML"),
    ("not UTF-8", "c.yaml", b"\xff\xfe\x00garbage", "is not UTF-8 text"),
    ("YAML scalar", "c.yml", b"42\n", "must hold a mapping or a list, got int"),
    ("empty YAML", "c.yaml", b"", "must hold a mapping or a list, got NoneType"),
    ("python tag", "c.yaml", b"!!python/object/apply:os.system ['true']\n", "is not valid YAML"),
    ("billion laughs", "c.yaml",
     b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", "holds more than 100000 values"),
    ("YAML nested 50 deep", "c.yaml", b"x: " + b"[" * 50 + b"]" * 50, "nested more than 32 levels deep"),
    ("YAML nested 100,000 deep", "c.yaml", b"x: " + b"[" * 100_000, "is not valid YAML"),
    ("TOML nested 100,000 deep", "c.toml", b"x = " + b"[" * 100_000 + b"]" * 100_000, "is not valid TOML"),
    ("bad field in TOML", "c.toml", b"[x]\nkind = 'upper'\nlimit = 1\n", "constraints.x.signal: is required"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "filename", "text", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_constraint_files(tmp_path, name: str, filename: str, text: bytes, message: str) -> None:
    path = tmp_path / filename
    path.write_bytes(text)
    for build in (ni.make, lambda i, **kw: ni.make_vec(i, num_envs=2, **kw)):
        with pytest.raises(ni.ConfigError) as e:
            build("ChemicalReactor-v0", constraints=path, metrics=False)
        assert message in str(e.value), str(e.value)


def test_constraint_paths(tmp_path) -> None:
    for path, message in (
        (tmp_path / "missing.toml", "cannot read"),
        (tmp_path, "must end in .yaml, .yml or .toml"),
        (tmp_path / "x.json", "must end in .yaml, .yml or .toml"),
        (str(tmp_path / "a\0b.yaml"), "cannot read"),
    ):
        with pytest.raises(ni.ConfigError, match=re.escape(message)):
            ni.make("ChemicalReactor-v0", constraints=path)
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(ni.ConfigError, match="cannot read"):
        ni.make("ChemicalReactor-v0", constraints=d)


# --------------------------------------------------------------------------- command line
def run_cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse's own errors
            code = int(e.code or 0)
    return code, err.getvalue()


CLI_CASES: list[tuple[list[str], str]] = [
    (["run", "--num-envs", "0"], "argument --num-envs: expected a positive integer, got 0"),
    (["run", "--num-envs", "abc"], "argument --num-envs: expected a positive integer, got 'abc'"),
    (["run", "--steps", "-5"], "argument --steps: expected a positive integer, got -5"),
    (["run", "--seed", "abc"], "argument --seed: expected a non-negative integer, got 'abc'"),
    (["run", "--seed", "-1"], "argument --seed: expected a non-negative integer, got -1"),
    (["dataset", "Pipeline-v0", "--seed", "-1", "--out", "x.npz"], "argument --seed: expected a non-negative integer"),
    (["run", "--shield", "magic"], "argument --shield: invalid choice"),
    (["run", "--policy", "ppo"], "argument --policy: invalid choice"),
    (["run", "--env", "Nope-v0"], "unknown environment 'Nope-v0'"),
    (["run", "--metrics-port", "70000"], "argument --metrics-port: expected a port number (0-65535), got 70000"),
    (["run", "--metrics-port", "-1"], "argument --metrics-port: expected a port number (0-65535), got -1"),
    (["serve", "--port", "65536"], "argument --port: expected a port number (0-65535), got 65536"),
    (["serve", "--safety-port", "x"], "argument --safety-port: expected a port number (0-65535), got 'x'"),
    (["serve", "--rate", "nan"], "argument --rate: expected a finite, non-negative number, got 'nan'"),
    (["serve", "--rate", "-1"], "argument --rate: expected a finite, non-negative number, got '-1'"),
    (["serve", "--duration", "inf"], "argument --duration: expected a finite, non-negative number, got 'inf'"),
    (["bench", "--seconds", "inf"], "argument --seconds: expected a finite, non-negative number, got 'inf'"),
    (["bench", "--seconds", "0"], "--seconds: must be positive, got 0.0"),
    (["dataset", "ChemicalReactor-v0", "--transitions", "0", "--out", "x.npz"], "expected a positive integer"),
    (["dataset", "ChemicalReactor-v0", "--quality", "great", "--out", "x.npz"], "argument --quality: invalid choice"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_options(args: list[str], message: str) -> None:
    code, err = run_cli(*args)
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err


def test_cli_constraint_files(tmp_path) -> None:
    for name, text, message in (
        ("bad.yaml", b"a: [", "is not valid YAML"),
        ("bin.toml", b"\xff\xfe", "is not UTF-8 text"),
        ("deep.yaml", b"x: " + b"[" * 40 + b"]" * 40, "nested more than 32 levels deep"),
        ("field.toml", b"[temperature_high]\nlimit = 'hot'\n", "constraints.temperature_high.limit"),
    ):
        (tmp_path / name).write_bytes(text)
        code, err = run_cli("run", "--steps", "64", "--no-progress", "--constraints", str(tmp_path / name))
        assert code == 2 and message in err, err
