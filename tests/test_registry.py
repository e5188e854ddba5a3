"""One registry: every list of environments is derived from the Rust table (``src/envs/mod.rs``),
and each environment's documentation agrees with its spec. A new environment missing from any list
(a Python class, Gymnasium's registry, the package's exports, the README's catalogue) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import neorl_industrial as ni
from neorl_industrial import _core
from neorl_industrial.envs import ENV_CLASSES, IndustrialEnv

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_rust_env_has_one_python_class_registered_in_gymnasium_and_exported() -> None:
    ids = list(_core.env_ids())
    assert ids == ni.env_ids() and len(set(ids)) == len(ids) >= 6
    assert list(ENV_CLASSES) == ids
    for env_id, cls in ENV_CLASSES.items():
        assert issubclass(cls, IndustrialEnv) and cls.env_id == env_id
        assert getattr(ni, cls.__name__) is cls and cls.__name__ in ni.__all__
        spec = gym.spec(f"neorl_industrial/{env_id}")
        assert spec.entry_point == f"{cls.__module__}:{cls.__name__}"
        assert spec.vector_entry_point is not None
        assert type(ni.make(env_id)) is cls


def test_a_class_must_name_a_registered_id_once() -> None:
    with pytest.raises(TypeError, match="'Nope-v0' is not in the Rust registry"):
        type("NopeEnv", (IndustrialEnv,), {"env_id": "Nope-v0"})
    with pytest.raises(TypeError, match="'ChemicalReactor-v0' is already ChemicalReactorEnv's"):
        type("TwinEnv", (IndustrialEnv,), {"env_id": "ChemicalReactor-v0"})
    assert ENV_CLASSES["ChemicalReactor-v0"] is ni.ChemicalReactorEnv


def readme_catalogue() -> dict[str, list[str]]:
    """The README's environment table: id -> cells."""
    text = README.read_text()
    section = text.split("## Environments", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([^`]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split(" | ")]
    return rows


def test_the_readme_catalogue_lists_every_env_with_its_spec_sizes() -> None:
    rows = readme_catalogue()
    assert list(rows) == ni.env_ids()
    for env_id, cells in rows.items():
        sp = ni.spec(env_id)
        obs, act, horizon = cells[1], cells[2], cells[3]
        assert int(obs) == len(sp["observations"]), env_id
        assert int(act) == len(sp["actions"]), env_id
        assert horizon.split()[0] == str(sp["horizon"]), env_id


def doc_table(doc: str, section: str) -> list[list[str]]:
    """Rows of the first table under ``## <section>`` of a class docstring."""
    m = re.search(rf"## {section}\n(.*?)(?:\n\s*## |\Z)", doc, re.S)
    assert m, section
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and re.fullmatch(r"\d+(-\d+)?", cells[0]):
            rows.append(cells)
    return rows


def indices(cell: str) -> list[int]:
    lo, _, hi = cell.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


# How the docstrings write the spec's units.
UNITS = {"degC": "°C", "1": "-", "kW/m^2": "kW/m²"}


@pytest.mark.parametrize("env_id", ni.env_ids())
def test_the_observation_table_of_each_docstring_matches_the_spec(env_id: str) -> None:
    # Every row names observation indices; where a row gives a unit or numeric bounds, they are the
    # spec's (Pipeline's history rows and HVAC's option-dependent bounds say so in words instead).
    doc = ENV_CLASSES[env_id].__doc__ or ""
    obs = ni.spec(env_id)["observations"]
    rows = doc_table(doc, "Observation Space")
    covered = [i for r in rows for i in indices(r[0])]
    assert covered == sorted(covered) and covered[0] == 0, covered
    assert covered[-1] <= len(obs) - 1
    header = re.search(r"\|\s*Num\s*\|([^\n]*)\|", doc)
    assert header, "no observation table header"
    columns = [c.strip() for c in header.group(1).split("|")]
    checked = 0
    for row in rows:
        cells = dict(zip(columns, row[1:], strict=True))
        for i in indices(row[0]):
            var = obs[i]
            if "Unit" in cells:
                assert cells["Unit"] in (var["unit"], UNITS.get(var["unit"], var["unit"])), (env_id, i)
            for col, key in (("Min", "low"), ("Max", "high")):
                try:
                    value = float(cells[col])
                except (KeyError, ValueError):
                    continue
                assert value == pytest.approx(var[key]), (env_id, i, col)
                checked += 1
    assert checked > 0 or env_id == "HVAC-v0"


@pytest.mark.parametrize("env_id", ni.env_ids())
def test_spaces_follow_the_spec(env_id: str) -> None:
    env = ni.make(env_id)
    sp = ni.spec(env_id)
    low = np.array([v["low"] for v in sp["observations"]], np.float32)
    high = np.array([v["high"] for v in sp["observations"]], np.float32)
    np.testing.assert_array_equal(env.observation_space.low, low)
    np.testing.assert_array_equal(env.observation_space.high, high)
    assert env.action_space.shape == (len(sp["actions"]),)


def episode_end_success(doc: str) -> str:
    """The ``- Success`` bullet of a docstring's ``## Episode End`` section, as one line."""
    m = re.search(r"## Episode End\n(.*?)(?:\n\s*## |\Z)", doc, re.S)
    assert m, "no Episode End section"
    bullet = re.search(r"- Success (.*?)(?:\n\s*- |\Z)", m.group(1), re.S)
    assert bullet, "no Success bullet"
    return " ".join(bullet.group(1).split())


@pytest.mark.parametrize("env_id", ni.env_ids())
def test_the_success_criterion_of_each_docstring_matches_the_spec(env_id: str) -> None:
    # The spec's success entry (description, parameters with units) and the docstring's Episode End
    # bullet name the same thresholds; the bullet says where the flag is.
    success = ni.spec(env_id)["success"]
    assert success["description"] and "\n" not in success["description"]
    assert set(success["parameters"]) == set(success["units"])
    text = episode_end_success(ENV_CLASSES[env_id].__doc__ or "")
    assert 'info["is_success"]' in text
    for name, value in success["parameters"].items():
        assert f"`{name}`" in success["description"], (env_id, name)
        assert re.search(rf"(?<![\d.]){re.escape(f'{value:g}')}(?![\d])", text), (env_id, name, value)
