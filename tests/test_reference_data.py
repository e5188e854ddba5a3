"""The reference vectors in tests/data are what their generator (tests/data/make_reference.py) computes from the
public reference implementations: pc-gym's CSTR ODE solved with scipy's DOP853, industrial-benchmark-python 2.0."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

GENERATOR = Path(__file__).resolve().parent / "data" / "make_reference.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mr = load_generator()


@pytest.fixture(scope="module")
def reactor() -> dict:
    return mr.build_reactor()


@pytest.fixture(scope="module")
def ib() -> dict:
    # scripts/test.sh installs industrial-benchmark-python (--no-deps); its absence fails here.
    import industrial_benchmark_python.IDS  # noqa: F401

    return mr.build_ib()


def test_reactor_file_is_what_the_generator_computes(reactor: dict) -> None:
    ds = mr.DATASETS["reactor"]
    committed = ds.committed()
    assert ds.check(reactor) == []
    assert reactor["constants"] == committed["constants"] and reactor["dt_min"] == committed["dt_min"]
    assert sorted(reactor["cases"]) == sorted(committed["cases"]) and len(committed["cases"]) == 5
    np.testing.assert_allclose(reactor["rhs_at_x0_Tc300"], committed["rhs_at_x0_Tc300"], rtol=1e-12)
    for name, case in committed["cases"].items():
        assert reactor["cases"][name]["Tc"] == case["Tc"], name
        got = np.array(reactor["cases"][name]["states_after_each_step"])
        want = np.array(case["states_after_each_step"])
        assert got.shape == want.shape == (60, 2)
        np.testing.assert_allclose(got, want, rtol=mr.REACTOR_RTOL, atol=0, err_msg=name)


def test_reactor_random_coolant_sequence_is_reproduced() -> None:
    tc = mr.cstr_coolant_sequences()["random_295_302"]
    assert tc == mr.DATASETS["reactor"].committed()["cases"]["random_295_302"]["Tc"]
    assert len(tc) == 60 and 295.0 <= min(tc) and max(tc) <= 302.0


def test_reactor_check_fails_on_a_changed_constant_or_state(reactor: dict) -> None:
    ds = mr.DATASETS["reactor"]
    # A heat-transfer coefficient 0.01 % off: the constant and the integrated states both differ.
    perturbed = mr.build_reactor({**mr.CSTR_CONSTANTS, "UA": 5.0005e4})
    diffs = ds.check(perturbed)
    assert "constants/UA" in diffs[0]
    assert any("states_after_each_step" in d and "relative" in d for d in diffs)
    # A state moved by more than the tolerance; an input changed; an int turned float (layout).
    moved = copy.deepcopy(reactor)
    moved["cases"]["runaway_306"]["states_after_each_step"][3][1] *= 1 + 10 * mr.REACTOR_RTOL
    assert [d.split(":")[0] for d in ds.check(moved)] == ["cases/runaway_306/states_after_each_step/3/1"]
    within = copy.deepcopy(reactor)
    within["cases"]["runaway_306"]["states_after_each_step"][3][1] *= 1 + mr.REACTOR_RTOL / 10
    assert ds.check(within) == []
    changed = copy.deepcopy(reactor)
    changed["cases"]["staircase"]["Tc"][20] = 300.0 + 1e-12
    assert [d.split(":")[0] for d in ds.check(changed)] == ["cases/staircase/Tc/20"]
    retyped = copy.deepcopy(reactor)
    retyped["constants"]["q"] = 100.0
    assert len(ds.check(retyped)) == 1


def test_industrial_benchmark_file_is_what_the_original_computes(ib: dict) -> None:
    ds = mr.DATASETS["ib"]
    committed = ds.committed()
    assert ds.check(ib) == []
    assert ib["deterministic_trajectory"]["actions"] == committed["deterministic_trajectory"]["actions"]
    got = ib["deterministic_trajectory"]["states_after_each_step"]
    want = committed["deterministic_trajectory"]["states_after_each_step"]
    assert len(got) == len(want) == 1000
    for field in mr.IB_FIELDS:
        np.testing.assert_allclose(
            [s[field] for s in got], [s[field] for s in want], rtol=mr.IB_RTOL, atol=0, err_msg=field
        )
    rewards = [g["reward"] for g in ib["goldstone_reward"]]
    np.testing.assert_allclose(rewards, [g["reward"] for g in committed["goldstone_reward"]], rtol=mr.IB_RTOL)
    assert len(rewards) == 13 * 9


def test_industrial_benchmark_check_fails_on_a_changed_value(ib: dict) -> None:
    ds = mr.DATASETS["ib"]
    changed = copy.deepcopy(ib)
    changed["constants"]["CRGS"] = 25.5
    changed["deterministic_trajectory"]["states_after_each_step"][500]["MC"] *= 1 + 1e-9
    changed["effective_action"][4]["p"] = 21
    assert sorted(d.split(":")[0] for d in ds.check(changed)) == [
        "constants/CRGS",
        "deterministic_trajectory/states_after_each_step/500/MC",
        "effective_action/4/p",
    ]
