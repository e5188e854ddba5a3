"""Offline datasets: D4RL/NeoRL formats, qualities, determinism across batching, files, statistics."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import neorl_industrial as ni
from neorl_industrial import datasets


def test_d4rl_keys_shapes_and_consistency() -> None:
    ds = datasets.generate("ChemicalReactor-v0", "expert", n_transitions=1000, num_envs=8, progress=False)
    n = 1000
    assert ds["observations"].shape == (n, 3) and ds["next_observations"].shape == (n, 3)
    assert ds["actions"].shape == (n, 1) and ds["rewards"].shape == (n,)
    assert ds["terminals"].dtype == bool and ds["timeouts"].dtype == bool
    assert ds["violations"].shape == (n, 3) and ds["costs"].shape == (n,)
    # Within an episode, next_observations[t] is observations[t + 1], across env runs too: a run's
    # last transition carries an end flag.
    cont = ~(ds["terminals"] | ds["timeouts"])[:-1]
    np.testing.assert_array_equal(ds["next_observations"][:-1][cont], ds["observations"][1:][cont])
    # Every episode of the reactor lasts its horizon of 60 steps under the expert; each env's run of
    # 125 transitions is cut after its second episode, and the cut is a timeout too.
    assert ds["timeouts"].sum() == 8 * (125 // 60) + 8
    assert np.flatnonzero(ds["timeouts"]).tolist()[:3] == [59, 119, 124]
    m = ds["metadata"]
    assert m["env_id"] == "ChemicalReactor-v0" and m["quality"] == "expert" and m["n_transitions"] == n
    assert m["constraint_names"] == ["temperature_high", "thermal_runaway", "coolant_ramp"]


def test_qualities_are_ordered_by_return() -> None:
    returns = {
        q: datasets.generate("ChemicalReactor-v0", q, n_episodes=24, num_envs=12, progress=False)["metadata"][
            "mean_return"
        ]
        for q in datasets.QUALITIES
    }
    assert returns["expert"] > returns["medium"] > returns["mixed"] > returns["random"]


def test_same_seed_same_dataset_however_the_envs_are_batched() -> None:
    whole = datasets.generate(
        "IndustrialBenchmark-v0", "mixed", n_transitions=8 * 50, num_envs=8, progress=False
    )
    parts = [
        datasets.generate(
            "IndustrialBenchmark-v0", "mixed", n_transitions=4 * 50, num_envs=4, env_offset=o, progress=False
        )
        for o in (0, 4)
    ]
    for key in ("observations", "actions", "rewards", "next_observations", "costs"):
        np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))
    other = datasets.generate(
        "IndustrialBenchmark-v0", "mixed", n_transitions=400, num_envs=8, seed=1, progress=False
    )
    assert not np.array_equal(whole["actions"], other["actions"])


def test_whole_episodes_with_n_episodes() -> None:
    ds = datasets.generate("ChemicalReactor-v0", "random", n_episodes=10, num_envs=4, progress=False)
    ends = ds["terminals"] | ds["timeouts"]
    assert ends.sum() == 10 and ends[-1]
    assert ds["metadata"]["n_episodes"] == 10


def test_save_load_neorl_and_describe(tmp_path) -> None:
    ds = datasets.generate("ChemicalReactor-v0", "medium", n_transitions=600, num_envs=4, progress=False)
    path = datasets.save(ds, tmp_path / "d")
    assert path.suffix == ".npz"
    back = datasets.load(path)
    for k in ("observations", "actions", "rewards", "terminals", "violations"):
        np.testing.assert_array_equal(back[k], ds[k])
    assert back["metadata"]["seed"] == 0 and back["metadata"]["env_spec"]["id"] == "ChemicalReactor-v0"
    neo = datasets.to_neorl(back)
    assert set(neo) == {"obs", "next_obs", "action", "reward", "done", "index"}
    assert neo["reward"].shape == (600, 1) and neo["index"][0] == 0
    d = datasets.describe(back)
    assert d["n_transitions"] == 600 and d["anomalies"] == []
    assert {c["name"] for c in d["columns"]["observations"]} == {"Ca", "T", "Ca_setpoint"}
    # Corrupt data is reported.
    bad = dict(back)
    bad["observations"] = back["observations"].copy()
    bad["observations"][3, 1] = np.nan
    bad["actions"] = np.full_like(back["actions"], 2.0)
    found = datasets.describe(bad)["anomalies"]
    assert any("observations[T]: 1 non-finite" in a for a in found)
    assert any("actions[Tc]: constant column" in a for a in found)
    assert any("actions[Tc]: 600 values outside [-1, 1]" in a for a in found)
    with pytest.raises(ni.ConfigError, match="cannot read"):
        datasets.load(tmp_path / "missing.npz")


def test_env_get_dataset_uses_the_env_options() -> None:
    env = ni.make("ChemicalReactor-v0", horizon=20)
    ds = env.get_dataset("expert", n_transitions=400, num_envs=4, progress=False)
    assert ds["timeouts"].sum() == 4 * (100 // 20)
    assert ds["metadata"]["env_kwargs"] == {"horizon": 20}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality": "great", "n_transitions": 10}, "quality: must be one of"),
        ({"n_transitions": 10, "n_episodes": 2}, "exactly one of"),
        ({}, "exactly one of"),
        ({"n_transitions": 0}, "n_transitions: must be a positive integer"),
        ({"n_transitions": 10, "seed": -1}, "seed: must be a non-negative integer"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ni.ConfigError, match=match):
        datasets.generate("ChemicalReactor-v0", progress=False, **kwargs)


def test_cli_dataset(tmp_path) -> None:
    out = tmp_path / "reactor.npz"
    cmd = [
        sys.executable,
        "-m",
        "neorl_industrial.cli",
        "dataset",
        "ChemicalReactor-v0",
        "--quality",
        "expert",
        "--transitions",
        "2000",
        "--out",
        str(out),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stdout and "100%" in p.stderr
    meta = datasets.load(out)["metadata"]
    assert meta["n_transitions"] == 2000 and json.dumps(meta)


def test_export_to_minari(tmp_path, monkeypatch) -> None:
    import h5py  # noqa: F401  (the test extra installs minari[hdf5]: a broken install fails here)
    import minari  # noqa: F401
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = datasets.generate("ChemicalReactor-v0", "expert", n_episodes=4, num_envs=4, progress=False)
    with pytest.warns(UserWarning):  # minari notes that no env spec is attached
        m = datasets.to_minari(ds, "neorl/reactor-expert-v0")
    assert m.total_episodes == 4 and m.total_steps == 240
    episode = next(iter(m.iterate_episodes()))
    np.testing.assert_allclose(episode.actions, ds["actions"][:60])
    assert episode.observations.shape == (61, 3)


def assert_trajectories_are_whole(ds: dict) -> None:
    """Every trajectory ends with terminals or timeouts, and within one the next observation is the
    following row's observation (what episode-splitting consumers rely on)."""
    ends = np.asarray(ds["terminals"]) | np.asarray(ds["timeouts"])
    assert ends[-1], "the last transition has no end flag"
    inner = ~ends[:-1]
    np.testing.assert_array_equal(ds["next_observations"][:-1][inner], ds["observations"][1:][inner])


@pytest.mark.parametrize("env_id", ni.env_ids())
@pytest.mark.parametrize("size", [{"n_transitions": 333}, {"n_transitions": 8}, {"n_episodes": 2}])
def test_every_trajectory_ends_with_a_flag(env_id: str, size: dict) -> None:
    ds = datasets.generate(env_id, "medium", num_envs=5, progress=False, **size)
    assert_trajectories_are_whole(ds)


def test_batching_keeps_trajectories_whole() -> None:
    for num_envs in (1, 3, 7):
        assert_trajectories_are_whole(
            datasets.generate("IndustrialBenchmark-v0", "random", n_transitions=250, num_envs=num_envs, progress=False)
        )


def test_generation_logs_no_line_per_violation_and_ends_with_a_summary(caplog, capsys) -> None:
    import logging

    with caplog.at_level(logging.INFO):
        ds = datasets.generate("ChemicalReactor-v0", "medium", n_transitions=3000, num_envs=16, progress=True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a warning per violation"
    err = capsys.readouterr().err
    counts = ds["metadata"]["counts"]
    total = sum(counts["violations"].values())
    assert total > 0 and counts["shutdowns"] == int(ds["terminals"].sum())
    last = err.strip().splitlines()[-1]
    assert last.startswith("ChemicalReactor-v0 medium: 3000 transitions") and f"{total} violations" in last


def test_the_metadata_is_a_data_card_that_describe_prints(capsys) -> None:
    ds = datasets.generate("ChemicalReactor-v0", "mixed", n_transitions=2000, num_envs=8, seed=3, progress=False)
    m = ds["metadata"]
    assert m["behaviour_policy"] == {
        "controller": "pid",
        "quality": "mixed",
        "blend": "envs i % 3 == 0 random, 1 medium, 2 expert",
    }
    again = datasets.generate("ChemicalReactor-v0", "expert", n_transitions=100, num_envs=2, progress=False)
    other = datasets.generate("ChemicalReactor-v0", "expert", n_transitions=100, num_envs=2, progress=False, horizon=90)
    assert m["env_spec_sha256"] == again["metadata"]["env_spec_sha256"] != other["metadata"]["env_spec_sha256"]
    assert m["package_version"] == ni.__version__ and m["seed"] == 3
    # Violations are onsets of a constraint's flag within a trajectory.
    v = ds["violations"]
    ends = ds["terminals"] | ds["timeouts"]
    for j, name in enumerate(m["constraint_names"]):
        onsets, prev = 0, False
        for t in range(len(v)):
            onsets += int(v[t, j] and not prev)
            prev = bool(v[t, j]) and not ends[t]
        assert m["counts"]["violations"][name] == onsets, name
        assert m["counts"]["transitions_in_violation"][name] == int(v[:, j].sum())
    d = datasets.describe(ds, show=True)
    out = capsys.readouterr().out
    assert d["card"] in out and "behaviour policy: pid controller, quality mixed" in out
    assert "seed 3, 8 envs" in d["card"]
