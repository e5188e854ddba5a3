from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

# Every environment in the catalogue, with options that make its start stochastic (so seeds matter).
ENV_IDS = [
    "ChemicalReactor-v0",
    "IndustrialBenchmark-v0",
    "FourTank-v0",
    "Pipeline-v0",
    "PowerGrid-v0",
    "HVAC-v0",
]
STOCHASTIC_OPTIONS = {
    "ChemicalReactor-v0": {"x0_spread": 0.1, "noise": 0.01},
    "IndustrialBenchmark-v0": {},
    "FourTank-v0": {"x0_spread": 0.1, "noise": 0.01},
    "Pipeline-v0": {},
    "PowerGrid-v0": {"noise": 0.01},
    "HVAC-v0": {"noise": 0.1},
}


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def reference(name: str) -> dict:
    return json.loads((DATA / name).read_text())
