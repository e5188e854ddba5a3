"""Reference profiles for drift monitoring (``datasets.profile``, ``save_profile``, ``load_profile``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neorl_industrial as ni
from neorl_industrial import datasets
from neorl_industrial._profile import check_profile

REACTOR = "ChemicalReactor-v0"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return datasets.generate(REACTOR, "medium", n_transitions=3000, seed=1, num_envs=4, progress=False)


def test_a_profile_has_quantile_bins_per_feature_in_spec_order(data: dict[str, Any]) -> None:
    prof = datasets.profile(data, bins=8)
    assert (prof["env_id"], prof["bins"]) == (REACTOR, 8)
    assert [(f["source"], f["name"]) for f in prof["features"]] == [
        ("observation", "Ca"), ("observation", "T"), ("observation", "Ca_setpoint"), ("action", "Tc"), ("reward", "reward")]  # fmt: skip
    temp = prof["features"][1]
    t = data["observations"][:, 1]
    assert temp["edges"][0] == t.min() and temp["edges"][-1] == t.max() and len(temp["edges"]) == 9
    assert temp["edges"] == sorted(temp["edges"])
    np.testing.assert_allclose(temp["edges"][4], np.median(t))
    # Shares are the data's own: counted by the inner edges, a value on an edge in the bin above.
    counts = np.bincount(np.searchsorted(temp["edges"][1:-1], t, side="right"), minlength=8)
    assert temp["shares"] == [c / len(t) for c in counts] and abs(sum(temp["shares"]) - 1.0) < 1e-12
    # A continuous variable splits evenly; the reward column is the data's rewards.
    assert max(temp["shares"]) - min(temp["shares"]) < 0.01
    assert prof["features"][-1]["edges"][0] == float(np.min(data["rewards"]))
    check_profile(prof, ni.spec(REACTOR))


def test_profiles_round_trip_through_json(data: dict[str, Any], tmp_path: Path) -> None:
    prof = datasets.profile(data)
    path = datasets.save_profile(prof, tmp_path / "ref.json")
    assert datasets.load_profile(path) == prof


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(format="x"), "profile: not a neorl-industrial drift profile"),
        (lambda p: p.update(version=2), "profile: version 2, this package reads 1"),
        (lambda p: p.update(features=[]), "profile: has no features"),
        (lambda p: p["features"][0].update(edges=[1.0, 0.0]), "feature 'Ca' has malformed edges or shares"),
        (lambda p: p["features"][0].update(shares=[0.5]), "feature 'Ca' has malformed edges or shares"),
        (lambda p: p["features"][1]["edges"].__setitem__(0, float("nan")), "feature 'T' has malformed"),
    ],
)
def test_malformed_profiles_are_refused(data: dict[str, Any], tmp_path: Path, edit: Any, message: str) -> None:
    prof = json.loads(json.dumps(datasets.profile(data)))
    edit(prof)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(prof))
    with pytest.raises(ni.ConfigError, match=message):
        datasets.load_profile(path)


def test_a_profile_of_another_env_or_shape_is_refused(data: dict[str, Any]) -> None:
    prof = datasets.profile(data)
    with pytest.raises(ni.ConfigError, match="profile: describes ChemicalReactor-v0 features .* not FourTank-v0's"):
        check_profile(prof, ni.spec("FourTank-v0"))
    prof["features"] = prof["features"][:-1]
    with pytest.raises(ni.ConfigError, match="not ChemicalReactor-v0's"):
        check_profile(prof, ni.spec(REACTOR))


def test_bad_arguments_and_files(data: dict[str, Any], tmp_path: Path) -> None:
    for bins in (1, 1001, 2.5, True):
        with pytest.raises(ni.ConfigError, match="bins: must be an integer from 2 to 1000"):
            datasets.profile(data, bins=bins)  # type: ignore[arg-type]
    with pytest.raises(ni.ConfigError, match="needs its metadata"):
        datasets.profile({k: v for k, v in data.items() if k != "metadata"})
    broken = dict(data, observations=data["observations"].copy())
    broken["observations"][5, 1] = np.nan
    with pytest.raises(ni.ConfigError, match="observation 'T' holds NaN or inf"):
        datasets.profile(broken)
    with pytest.raises(ni.ConfigError, match="cannot read .*missing.json: No such file or directory"):
        datasets.load_profile(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ni.ConfigError, match="is not JSON"):
        datasets.load_profile(tmp_path / "x.json")
