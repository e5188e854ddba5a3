from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neorl_industrial as ni

DATA = Path(__file__).parent / "data"
# A test that cannot run without a privilege CI may lack (mounting a tmpfs needs root) skips with a
# reason starting with this; every other missing prerequisite fails the test.
NEEDS_PRIVILEGE = "needs privilege"

# Every environment in the catalogue (the Rust registry's order).
ENV_IDS = ni.env_ids()
# Options that make an env's start stochastic, so that seeds matter (an env not listed needs none).
STOCHASTIC_OPTIONS: defaultdict[str, dict[str, Any]] = defaultdict(
    dict,
    {
        "ChemicalReactor-v0": {"x0_spread": 0.1, "noise": 0.01},
        "FourTank-v0": {"x0_spread": 0.1, "noise": 0.01},
        "PowerGrid-v0": {"noise": 0.01},
        "HVAC-v0": {"noise": 0.1},
    },
)


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def reference(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def assert_tree_equal(a: Any, b: Any, path: str = "") -> None:
    """Exact equality of nested dicts, tuples, lists, arrays (dtypes included) and scalars (types
    included); the message names the path."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (tuple, list)):
        assert type(b) is type(a) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, path
        for x, y in zip(a, b, strict=True):
            assert_tree_equal(x, y, path)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Counts and names, at the end of every run, the tests skipped for want of a privilege."""
    skipped = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(NEEDS_PRIVILEGE):
            skipped.append((report.nodeid, reason))
    if skipped:
        terminalreporter.write_sep("=", f"{NEEDS_PRIVILEGE}: {len(skipped)} test(s) skipped", yellow=True)
        for nodeid, reason in skipped:
            terminalreporter.write_line(f"{nodeid}: {reason}")
