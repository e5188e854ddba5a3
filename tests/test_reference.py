"""Alignment with the public reference implementations (vectors in tests/data)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference

import neorl_industrial as ni

CSTR = reference("chemical_reactor_cstr.json")


def to_action(tc: float) -> np.ndarray:
    # Inverse of the documented mapping Tc = 290 + (a + 1) / 2 * 20.
    return np.array([(tc - 290.0) / 10.0 - 1.0])


@pytest.mark.parametrize("case", sorted(CSTR["cases"]))
def test_reactor_follows_the_reference_solution(case: str) -> None:
    data = CSTR["cases"][case]
    env = ni.make("ChemicalReactor-v0")
    env.reset(seed=0)
    for k, (tc, (ca, temp)) in enumerate(zip(data["Tc"], data["states_after_each_step"], strict=True)):
        obs, _, term, trunc, info = env.step(to_action(tc))
        assert info["action"][0] == pytest.approx(tc, rel=1e-12)
        # T to 1e-6 relative from the float64 constraint value; Ca from the float32 observation.
        assert info["constraints"]["thermal_runaway"] == pytest.approx(temp, rel=1e-6), f"step {k}"
        assert obs[0] == pytest.approx(ca, rel=1e-6), f"step {k}"
        # The critical limit ends the episode exactly when the reference crosses it.
        assert term == (temp > 350.0), f"step {k}"
        if term:
            assert info["shutdown_reason"] == "thermal_runaway"
            assert case == "runaway_306"
            break
        assert trunc == (k == 59)


def test_reactor_constants_match_the_reference() -> None:
    doc = ni.ChemicalReactorEnv.__doc__ or ""
    assert "290, 310" in doc
    sp = ni.spec("ChemicalReactor-v0")
    assert sp["dt"] == pytest.approx(CSTR["dt_min"], rel=1e-15)
    assert sp["dt_unit"] == "min"
    assert sp["horizon"] == len(CSTR["cases"]["constant_300"]["Tc"])
