"""neorl_industrial.offline: d3rlpy and Minari keep every trajectory, the split holds out whole
trajectories, the reference scores are what their recipe computes, a short CQL fit is evaluated in the
env as the core counts its safety, and the benchmark's plumbing (table, MLflow runs, data card)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import neorl_industrial as ni
from neorl_industrial import ConfigError, cli, datasets, offline
from neorl_industrial._reference_scores import HOW, REFERENCE_SCORES
from neorl_industrial.safety import evaluate_with_safety

with warnings.catch_warnings():  # d3rlpy imports the unmaintained gym, which warns on import
    warnings.simplefilter("ignore")
    import d3rlpy

REPO = Path(__file__).resolve().parent.parent
REACTOR = "ChemicalReactor-v0"
# Sizes that cut runs mid-episode (a timeout flags the cut), tiny ones, and whole episodes.
SIZES = [{"n_transitions": 333}, {"n_transitions": 8}, {"n_episodes": 3}]
# mlflow's SQLite store, not this package, uses a deprecated SQLAlchemy loader.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def flag_lengths(ds: dict) -> list[int]:
    """Trajectory lengths as the flags give them."""
    ends = np.flatnonzero(np.asarray(ds["terminals"]) | np.asarray(ds["timeouts"]))
    return np.diff(np.concatenate([[-1], ends])).tolist()


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_to_d3rlpy_keeps_every_trajectory(env_id: str, size: dict) -> None:
    ds = datasets.generate(env_id, "medium", num_envs=5, seed=3, progress=False, **size)
    lengths = flag_lengths(ds)
    mdp = offline.to_d3rlpy(ds)
    assert [int(e.size()) for e in mdp.episodes] == lengths
    assert offline.episode_lengths(ds).tolist() == lengths
    assert mdp.transition_count == sum(
        n - (0 if e.terminated else 1) for n, e in zip(lengths, mdp.episodes, strict=True)
    )
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal([e.terminated for e in mdp.episodes], ds["terminals"][ends])
    for key, attr in (("observations", "observations"), ("actions", "actions")):
        joined = np.concatenate([getattr(e, attr) for e in mdp.episodes])
        np.testing.assert_array_equal(joined, ds[key])
    np.testing.assert_array_equal(np.concatenate([e.rewards[:, 0] for e in mdp.episodes]), ds["rewards"])


def test_minari_keeps_every_trajectory(env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py  # noqa: F401  (the test extra installs minari[hdf5]: a broken install fails here)

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    for k, size in enumerate(SIZES):
        ds = datasets.generate(env_id, "random", num_envs=4, seed=1, progress=False, **size)
        with pytest.warns(UserWarning):  # minari notes that no env spec is attached
            m = datasets.to_minari(ds, f"neorl/{env_id.split('-')[0].lower()}-size{k}-v0")
        lengths = flag_lengths(ds)
        assert m.total_episodes == len(lengths) and m.total_steps == len(ds["rewards"])
        episodes = list(m.iterate_episodes())
        assert [len(e.actions) for e in episodes] == lengths
        assert [len(e.observations) for e in episodes] == [n + 1 for n in lengths]
        np.testing.assert_array_equal(np.concatenate([e.actions for e in episodes]), ds["actions"])


def test_unflagged_cuts_of_older_data_become_timeouts() -> None:
    """Data written before every cut was flagged: the runs are told apart by where the next
    observation stops being the following row's, and the last row ends the last trajectory."""
    ds = datasets.generate(REACTOR, "medium", n_transitions=500, num_envs=3, progress=False)
    lengths = flag_lengths(ds)
    assert ds["timeouts"].sum() > 3  # episodes that reached the horizon, and the three cut runs
    old = {**ds, "timeouts": np.zeros_like(ds["timeouts"])}
    assert [int(e.size()) for e in offline.to_d3rlpy(old).episodes] == lengths
    assert offline.episode_lengths(old).tolist() == lengths


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("timeouts"), "missing timeouts"),
        (lambda d: d.update(actions=d["actions"][:-1]), "actions has 59"),
        (lambda d: d.update({k: v[:0] for k, v in d.items() if k != "metadata"}), "no transitions"),
    ],
)
def test_to_d3rlpy_refuses_what_is_not_a_dataset(change, message: str) -> None:
    ds = datasets.generate(REACTOR, "expert", n_transitions=60, num_envs=1, progress=False)
    change(ds)
    with pytest.raises(ConfigError, match=message):
        offline.to_d3rlpy(ds)
    with pytest.raises(ConfigError, match="must be a dataset dict"):
        offline.to_d3rlpy([1, 2, 3])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- split
def test_split_holds_out_whole_trajectories() -> None:
    ds = datasets.generate(REACTOR, "mixed", n_transitions=3000, num_envs=7, seed=2, progress=False)
    ds["row"] = np.arange(len(ds["rewards"]))  # an extra per-transition column is split too
    lengths = flag_lengths(ds)
    traj_of_row = np.repeat(np.arange(len(lengths)), lengths)
    train, val = offline.train_validation_split(ds, validation=0.2, seed=5)
    assert len(set(train["row"]) & set(val["row"])) == 0
    assert sorted([*train["row"], *val["row"]]) == list(range(len(ds["rewards"])))
    for half in (train, val):
        rows = half["row"]
        assert np.all(np.diff(rows) > 0)  # the dataset's order
        whole = {t: np.flatnonzero(traj_of_row == t) for t in np.unique(traj_of_row[rows])}
        assert sum(len(r) for r in whole.values()) == len(rows)  # every trajectory it touches, whole
        assert flag_lengths(half) == [len(whole[t]) for t in sorted(whole)]
        for key in ("observations", "actions", "rewards", "next_observations", "costs", "violations"):
            np.testing.assert_array_equal(half[key], ds[key][rows])
        assert [int(e.size()) for e in offline.to_d3rlpy(half).episodes] == flag_lengths(half)
    assert len(flag_lengths(val)) == round(0.2 * len(lengths))
    meta = val["metadata"]
    assert meta["split"] == {
        "part": "validation",
        "validation": 0.2,
        "seed": 5,
        "trajectories": len(flag_lengths(val)),
        "of_trajectories": len(lengths),
        "of_transitions": len(ds["rewards"]),
    }
    assert meta["n_transitions"] == len(val["rewards"]) and meta["env_id"] == REACTOR
    assert train["metadata"]["split"]["part"] == "train" and "split" not in ds["metadata"]
    rets = [
        float(np.sum(val["rewards"][s - n : s]))
        for s, n in zip(np.cumsum(flag_lengths(val)), flag_lengths(val), strict=True)
    ]
    assert meta["mean_return"] == pytest.approx(np.mean(rets))
    again, _ = offline.train_validation_split(ds, validation=0.2, seed=5)
    other, _ = offline.train_validation_split(ds, validation=0.2, seed=6)
    np.testing.assert_array_equal(again["row"], train["row"])
    assert not np.array_equal(other["row"], train["row"])


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_split_refuses_a_bad_fraction(bad: object) -> None:
    ds = datasets.generate(REACTOR, "expert", n_episodes=4, num_envs=4, progress=False)
    with pytest.raises(ConfigError, match="validation: must be a fraction strictly between 0 and 1"):
        offline.train_validation_split(ds, validation=bad)  # type: ignore[arg-type]


def test_split_needs_two_trajectories_and_a_seed() -> None:
    ds = datasets.generate(REACTOR, "expert", n_episodes=1, num_envs=1, progress=False)
    with pytest.raises(ConfigError, match="has 1 trajectory; a split needs at least 2"):
        offline.train_validation_split(ds)
    two = datasets.generate(REACTOR, "expert", n_episodes=2, num_envs=2, progress=False)
    train, val = offline.train_validation_split(two, validation=0.01)
    assert len(flag_lengths(train)) == len(flag_lengths(val)) == 1
    with pytest.raises(ConfigError, match="seed: must be a non-negative integer"):
        offline.train_validation_split(two, seed=-1)


# --------------------------------------------------------------------------- reference scores
def test_reference_scores_are_what_their_recipe_computes(env_id: str) -> None:
    """The table is recomputed here with the episodes and seed it records (seconds for all)."""
    row = REFERENCE_SCORES[env_id]
    for policy in ("random", "expert"):
        returns = offline.reference_returns(env_id, policy, HOW["episodes"], HOW["seed"])
        assert len(returns) == HOW["episodes"]
        assert row[policy] == pytest.approx(returns.mean(), rel=1e-9, abs=1e-9)
        assert row[f"{policy}_std"] == pytest.approx(returns.std(), rel=1e-6, abs=1e-9)
        assert offline.normalized_score(env_id, returns.mean()) == pytest.approx(
            0.0 if policy == "random" else 100.0, abs=1e-9
        )
    assert row["expert"] > row["random"]
    assert set(offline.reference_scores()) == set(ni.env_ids())


def test_normalized_score_maps_the_references_and_refuses_unknowns() -> None:
    ref = offline.reference_scores(REACTOR)
    mid = (ref["random"] + ref["expert"]) / 2
    assert offline.normalized_score(REACTOR, mid) == pytest.approx(50.0)
    assert offline.normalized_score(f"neorl_industrial/{REACTOR}", ref["expert"]) == pytest.approx(100.0)
    scores = offline.normalized_score(REACTOR, [ref["random"], ref["expert"]])
    np.testing.assert_allclose(scores, [0.0, 100.0], atol=1e-9)
    for bad in ("Nope-v0", "chemicalreactor-v0", 7):
        with pytest.raises(ConfigError, match="unknown environment|env_id"):
            offline.normalized_score(bad, 0.0)  # type: ignore[arg-type]
    for bad_return in (float("nan"), float("inf"), "high"):
        with pytest.raises(ConfigError, match="episode_return"):
            offline.normalized_score(REACTOR, bad_return)
    with pytest.raises(ConfigError, match="policy: must be 'random' or 'expert'"):
        offline.reference_returns(REACTOR, "pid", 2, 0)


# --------------------------------------------------------------------------- training and evaluation
@pytest.fixture(scope="module")
def cql() -> object:
    """CQL fitted for a few tens of steps on a random-quality reactor dataset."""
    ds = datasets.generate(REACTOR, "random", n_transitions=3000, num_envs=10, seed=0, progress=False)
    train, _ = offline.train_validation_split(ds)
    d3rlpy.seed(0)
    agent = offline.make_agent("CQL", offline.reward_scale(train), batch_size=64)
    offline._fit(agent, offline.to_d3rlpy(train), 30)
    return agent


def test_a_short_cql_fit_is_evaluated_as_the_core_counts_safety(cql: object) -> None:
    """The batched evaluation (one env per episode) gives the returns, alarms and shutdowns that the
    core counts for the same episodes on a single env (evaluate_with_safety): the agent as trained,
    and pushed towards a hotter coolant until alarms repeat and some episodes end in a shutdown."""
    options = {"x0_spread": 0.2, "noise": 0.02}  # starts that differ by seed
    seen = {"shutdowns": 0, "whole": 0, "alarms": 0, "episodes": 0}
    for offset in (0.0, 0.24, 0.26, 0.3):
        # Row by row, as the single env asks: a batched forward pass may round differently.
        def one(o: np.ndarray, k: float = offset) -> np.ndarray:
            return np.clip(cql.predict(np.asarray(o, np.float32)[None]) + k, -1, 1)[0]  # type: ignore[attr-defined]

        res = offline.evaluate(
            lambda obs: np.stack([one(o) for o in obs]), REACTOR, 6, seed=40, gamma=0.9, **options
        )
        ref = evaluate_with_safety(one, ni.make(REACTOR, **options), 6, seed=40)
        np.testing.assert_allclose(res["returns"], ref["returns"], rtol=1e-6)
        for key in ("violations", "shutdowns", "critical_violations", "shield_interventions"):
            assert res[key] == ref[key], (offset, key)
        for key in ("mean_length", "mean_cost", "violations_per_episode", "constraint_satisfaction_rate"):
            assert res[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), (offset, key)
        lengths = np.asarray(res["lengths"])
        assert lengths.mean() == ref["mean_length"] and np.all((lengths >= 1) & (lengths <= 60))
        assert res["shutdown_rate"] == res["shutdowns"] / 6
        env = ni.make(REACTOR, **options)  # episode 1 again, its rewards discounted by hand
        obs, _ = env.reset(seed=41)
        rewards, done = [], False
        while not done:
            obs, r, term, trunc, _ = env.step(one(obs))
            rewards.append(r)
            done = term or trunc
        assert res["discounted_returns"][1] == pytest.approx(np.dot(0.9 ** np.arange(len(rewards)), rewards))
        assert np.isfinite(offline.normalized_score(REACTOR, res["mean_return"]))
        seen["shutdowns"] += res["shutdowns"]
        seen["whole"] += int((lengths == 60).sum())
        seen["alarms"] += sum(res["violations"].values())
        seen["episodes"] += 6
    # The comparison covered shutdowns, whole episodes and alarms raised more than once an episode.
    assert seen["shutdowns"] > 0 and seen["whole"] > 0 and seen["alarms"] > seen["episodes"], seen


def test_evaluation_counts_shutdowns_and_alarms_as_the_core() -> None:
    """A policy that overheats the reactor: every episode ends in an emergency shutdown."""
    hot = lambda obs: np.ones((len(obs), 1), dtype=np.float32)  # noqa: E731
    res = offline.evaluate(hot, REACTOR, n_episodes=3, seed=0)
    ref = evaluate_with_safety(lambda o: np.ones(1, dtype=np.float32), ni.make(REACTOR), 3, seed=0)
    assert res["shutdowns"] == ref["shutdowns"] == 3 and res["shutdown_rate"] == 1.0
    assert res["violations"] == ref["violations"] and res["critical_violations"] == 3
    assert res["returns"] == pytest.approx(ref["returns"])
    with pytest.raises(ConfigError, match="n_episodes"):
        offline.evaluate(hot, REACTOR, n_episodes=0)
    with pytest.raises(ConfigError, match="policy: needs a callable"):
        offline.evaluate(42, REACTOR)


def test_fqe_estimates_a_finite_value(cql: object) -> None:
    ds = datasets.generate(REACTOR, "random", n_transitions=600, num_envs=10, seed=9, progress=False)
    estimate = offline.fqe_estimate(cql, ds, n_steps=20, reward_multiplier=offline.reward_scale(ds))
    assert np.isfinite(estimate)


def test_make_agent_refuses_an_unknown_algorithm() -> None:
    with pytest.raises(ConfigError, match="algorithm: must be one of BC, CQL, IQL, TD3\\+BC, got 'SAC'"):
        offline.make_agent("SAC")


def test_spearman() -> None:
    assert offline.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert offline.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert offline.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert np.isnan(offline.spearman([1, 1], [1, 2])) and np.isnan(offline.spearman([1], [1]))


# --------------------------------------------------------------------------- the benchmark
def test_benchmark_quick_writes_the_table_and_one_mlflow_run_per_cell(tmp_path: Path) -> None:
    out, db = tmp_path / "table.md", tmp_path / "mlruns" / "mlflow.db"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "offline_rl.py"), "--quick", "--out", str(out),
         "--mlflow-uri", f"sqlite:///{db}"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = [(q, a) for q in offline.QUICK.qualities for a in offline.ALGORITHMS]
    assert proc.stdout.count("] ChemicalReactor-v0 ") == len(cells) * len(offline.QUICK.seeds)
    text = out.read_text()
    assert "Smoke run (`--quick`)" in text and "**10 gradient steps**" in text
    for q, a in cells:
        assert f"| {REACTOR} | {q} | {a} | " in text
    assert text.count(f"| {REACTOR} | ") == len(cells) + 2 * len(offline.QUICK.qualities)
    assert "Spearman ρ" in text and "FQE ranks the agents" in text

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("neorl-industrial-offline-benchmark")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert sorted((r.data.params["quality"], r.data.params["algorithm"]) for r in runs) == sorted(cells)
    run = next(
        r for r in runs if r.data.params["algorithm"] == "CQL" and r.data.params["quality"] == "expert"
    )
    assert run.data.params["steps"] == "10" and run.data.params["env_id"] == REACTOR
    history = client.get_metric_history(run.info.run_id, "seed/normalized_score")
    assert sorted(m.step for m in history) == [0, 1]
    assert run.data.metrics["normalized_score_mean"] == pytest.approx(np.mean([m.value for m in history]))
    assert "eval/violations_per_episode" in run.data.metrics and "eval/shutdown_rate" in run.data.metrics
    card = json.loads(
        Path(client.download_artifacts(run.info.run_id, "dataset/metadata.json", str(tmp_path))).read_text()
    )
    expected = datasets.generate(REACTOR, "expert", n_transitions=2000, num_envs=100, progress=False)[
        "metadata"
    ]
    assert card["env_id"] == REACTOR and card["quality"] == "expert"
    assert card["n_transitions"] == expected["n_transitions"] and card["mean_return"] == pytest.approx(
        expected["mean_return"]
    )


def test_offline_bench_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli._parser()
    args = parser.parse_args(["offline-bench", "--quick"])
    assert offline.config_from_args(args) == offline.QUICK
    args = parser.parse_args(["offline-bench", "--seeds", "3", "4", "5", "--steps", "77", "--algos", "BC"])
    cfg = offline.config_from_args(args)
    assert (cfg.seeds, cfg.steps, cfg.algorithms, cfg.envs) == (
        (3, 4, 5),
        77,
        ("BC",),
        offline.BenchmarkConfig().envs,
    )
    out = str(tmp_path / "t.md")
    for bad, message in (
        (["--algos", "SAC"], "algorithms: 'SAC' is not one of"),
        (["--steps", "0"], "steps: must be a positive integer"),
        (["--envs", "Nope-v0"], "unknown environment 'Nope-v0'"),
        (["--qualities", "great"], "qualities: 'great' is not one of"),
    ):
        assert cli.main(["offline-bench", "--quick", "--no-mlflow", "--out", out, *bad]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["offline-bench", "--quick", "--out", str(tmp_path / "no" / "t.md")]) == 2
    assert "out: directory" in capsys.readouterr().err
    assert not Path(out).exists()


# --------------------------------------------------------------------------- docs/offline.md
DOC = REPO / "docs" / "offline.md"


def test_the_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    for long, short in (
        ("n_transitions=100_000", "n_transitions=3_000"),
        ("n_steps=5000", "n_steps=20"),
        ("n_steps_per_epoch=1000", "n_steps_per_epoch=20"),
        ("n_steps=1000", "n_steps=10"),
        ("n_episodes=10", "n_episodes=2"),
    ):
        assert code.count(long) == 1, long
        code = code.replace(long, short)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    assert len(scope["result"]["returns"]) == 2 and np.isfinite(scope["fqe"])
    assert len(scope["train"]["rewards"]) + len(scope["validation"]["rewards"]) == 3000
    printed = capsys.readouterr().out
    assert "normalized score" in printed and "FQE estimate" in printed


def test_the_docs_reference_table_is_the_module_s() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in REFERENCE_SCORES:
            rows[cells[0]] = (cells[1], cells[2])
    assert rows == {e: (f"{r['random']:,.1f}", f"{r['expert']:,.1f}") for e, r in REFERENCE_SCORES.items()}
    assert f"mean over {HOW['episodes']:,} episodes" in DOC.read_text()


def test_the_table_counts_a_diverged_seed_and_ranks_the_rest() -> None:
    """An agent whose actions turned NaN has no numbers for that seed: the table says so, and FQE's
    ranking is over the agents that have them."""
    nan = float("nan")

    def run(score: float, fqe: float, true: float) -> dict:
        keys = {"normalized_score": score, "fqe_estimate": fqe, "true_discounted_return": true}
        return {**keys, "violations_per_episode": 0.5, "shutdown_rate": 0.0, "fit_seconds": 1.0}

    cells = [
        offline.CellResult(REACTOR, "medium", "BC", [0, 1], [run(80.0, -5.0, -50.0), run(nan, nan, nan)]),
        offline.CellResult(
            REACTOR, "medium", "CQL", [0, 1], [run(90.0, -4.0, -40.0), run(70.0, -6.0, -60.0)]
        ),
    ]
    card = {"env_id": REACTOR, "quality": "medium", "transitions": 10, "train_trajectories": 2}
    result = {
        "config": offline.BenchmarkConfig(envs=(REACTOR,), qualities=("medium",), algorithms=("BC", "CQL")),
        "cells": cells,
        "datasets": [{**card, "validation_trajectories": 1, "behaviour_score": nan}],
        "seconds": 60.0,
        "versions": {"neorl_industrial": "x", "d3rlpy": "x", "torch": "x", "python": "x"},
    }
    text = offline.render_table(result, "cmd")
    assert (
        f"| {REACTOR} | medium | BC | 80.0 ± 0.0 (1 of 2 diverged) | 0.50 ± 0.00 | 0.00 | -5 | -50 |" in text
    )
    assert f"| {REACTOR} | medium | CQL | 80.0 ± 10.0 | 0.50 ± 0.00 | 0.00 | -5 | -50 |" in text
    assert f"| {REACTOR} | medium | 3 | 1.00 | CQL (seed 0) | 90.0 | 90.0 |" in text
    assert f"| {REACTOR} | medium | 10 | 2 / 1 | n/a |" in text
    assert "its pick was the best agent in 1 of 1 datasets" in text
