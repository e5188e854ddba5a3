"""MLflow tracking against a real local store (SQLite in a temporary directory), read back with
MlflowClient: params, metric histories and artifacts of training, evaluation, audit trail, datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import neorl_industrial as ni
from neorl_industrial import ConfigError, datasets
from neorl_industrial.integrations.mlflow import (
    MlflowCallback,
    log_audit_trail,
    log_dataset_metadata,
    log_env_spec,
    log_evaluation,
    spec_params,
)
from neorl_industrial.integrations.sb3 import SB3VecEnv
from neorl_industrial.safety import evaluate_with_safety

REACTOR = "ChemicalReactor-v0"
# mlflow's SQLite store, not this package, uses a deprecated SQLAlchemy loader.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    """A tracking store of its own: SQLite and an artifact directory in a temporary directory."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("neorl-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield MlflowClient(uri)
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    local = client.download_artifacts(run_id, path, str(tmp_path))
    return Path(local).read_text()


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def without_throughput(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if "throughput" not in k}


# --------------------------------------------------------------------------- training, plain form
def test_single_env_loop_matches_evaluate_with_safety(client: MlflowClient, tmp_path: Path) -> None:
    env = ni.make(REACTOR, horizon=20)
    episodes = 6

    def policy_from(seed: int) -> Any:
        rng = np.random.default_rng(seed)
        return lambda obs: rng.uniform(-1, 1, 1).astype(np.float32)

    expected = evaluate_with_safety(policy_from(0), env, n_episodes=episodes, seed=0)
    assert expected["shutdowns"] > 0 and sum(expected["violations"].values()) > expected["shutdowns"]
    policy = policy_from(0)
    with mlflow.start_run() as run:
        cb = MlflowCallback(env=env, log_every=10**9)
        step = 0
        for ep in range(episodes):
            obs, _ = env.reset(seed=ep)
            done = False
            while not done:
                obs, reward, term, trunc, info = env.step(policy(obs))
                step += 1
                cb(step, obs, reward, term, trunc, info)
                done = term or trunc
        logged = cb.flush()
    data = client.get_run(run.info.run_id).data
    assert data.metrics == logged and cb.flushes == 1
    assert data.metrics["train/episodes_total"] == episodes
    assert data.metrics["train/episode_return"] == pytest.approx(expected["mean_return"], rel=1e-12)
    assert data.metrics["train/episode_length"] == pytest.approx(expected["mean_length"])
    assert data.metrics["train/episode_cost"] == pytest.approx(expected["mean_cost"], rel=1e-12)
    for name, count in expected["violations"].items():
        assert data.metrics[f"train/violations/{name}"] * episodes == pytest.approx(count)
    assert data.metrics["train/shutdowns_total"] == expected["shutdowns"]
    assert data.metrics["train/shutdown_rate"] == pytest.approx(expected["shutdowns"] / episodes)
    assert history(client, run.info.run_id, "train/episode_return") == [
        (step, logged["train/episode_return"])
    ]
    # The env spec and constraint set as params, the full spec as an artifact.
    assert data.params["env.id"] == REACTOR and data.params["env.horizon"] == "20"
    assert data.params["constraints"] == ", ".join(env.constraint_names)
    entry = json.loads(data.params["constraint.thermal_runaway"])
    assert entry["limit"] == 350.0 and entry["severity"] == "critical"
    spec = json.loads(artifact_text(client, run.info.run_id, "env/spec.json", tmp_path))
    assert spec == json.loads(json.dumps(env.core_spec))


def bang_bang(obs: np.ndarray) -> np.ndarray:
    """Warm/cool around a per-env temperature threshold: alarms, no runaway."""
    threshold = np.array([330.5, 331.5, 332.5, 333.5])[: len(obs), None]
    return np.where(obs[:, 1:2] < threshold, 0.5, -0.5).astype(np.float32)


def run_batched(mode: str, steps: int, policy: Any = bang_bang, n: int = 4) -> tuple[dict, Any]:
    envs = ni.make_vec(REACTOR, num_envs=n, autoreset_mode=mode, horizon=10)
    cb = MlflowCallback(env=envs, log_every=10**9)
    obs, _ = envs.reset(seed=0)
    for t in range(1, steps + 1):
        obs, reward, term, trunc, info = envs.step(policy(obs))
        cb(t * n, obs, reward, term, trunc, info)
    return cb.flush(), envs


def test_batched_infos_same_step_next_step_and_sb3_agree_with_the_safety_counters(
    client: MlflowClient,
) -> None:
    with mlflow.start_run():
        same, envs = run_batched("same_step", 30)
        # next_step spends one extra step per episode end on the reset.
        nxt, _ = run_batched("next_step", 32)
        sb3_env = SB3VecEnv.from_id(REACTOR, 4, horizon=10)
        cb = MlflowCallback(log_every=10**9, log_spec=False)
        sb3_env.seed(0)
        obs = sb3_env.reset()
        for t in range(1, 31):
            obs, rewards, dones, infos = sb3_env.step(bang_bang(obs))
            cb(t * 4, obs, rewards, dones, False, infos)
        sb3 = cb.flush()
    assert same["train/episodes_total"] == 12
    assert same["train/episode_length"] == 10 and same["train/episode_return"] < 0
    for other in (nxt, sb3):
        assert set(other) == set(same)
        for key, value in without_throughput(same).items():
            assert other[key] == pytest.approx(value, rel=1e-6), key
    # Every episode ended, so the alarms raised are the Rust safety counters' incidents.
    for name, count in envs.safety.violations.items():
        assert same[f"train/violations/{name}"] * 12 == pytest.approx(count)
    assert envs.safety.violations["coolant_ramp"] > 0 and envs.safety.violations["temperature_high"] > 0
    assert same["train/throughput_steps_per_second"] > 0


def test_shutdowns_are_counted_in_every_autoreset_mode(client: MlflowClient) -> None:
    def heat_first(obs: np.ndarray) -> np.ndarray:
        a = np.zeros((len(obs), 1), dtype=np.float32)
        a[0] = 1.0  # env 0 runs away again and again
        return a

    with mlflow.start_run():
        for mode in ("same_step", "next_step"):
            logged, envs = run_batched(mode, 25, heat_first)
            downs = envs.safety.shutdowns["thermal_runaway"]
            assert downs >= 3
            assert logged["train/shutdowns_total/thermal_runaway"] == downs
            assert logged["train/shutdowns_total"] == downs
            ended = logged["train/episodes_total"]
            assert logged["train/shutdown_rate"] == pytest.approx(downs / ended)
            assert logged["train/violations/thermal_runaway"] == pytest.approx(downs / ended)


def test_flushes_once_per_window_of_log_every_steps(client: MlflowClient) -> None:
    n = 16
    with mlflow.start_run() as run:
        envs = ni.make_vec(REACTOR, num_envs=n, autoreset_mode="same_step")
        cb = MlflowCallback(log_every=640)
        rng = np.random.default_rng(0)
        obs, _ = envs.reset(seed=0)
        for t in range(1, 201):
            obs, reward, term, trunc, info = envs.step(rng.uniform(-1, 1, (n, 1)).astype(np.float32))
            cb(t * n, obs, reward, term, trunc, info)
        assert cb.flush() == {}  # nothing new since the flush at step 3200
    assert cb.flushes == 5
    run_id = run.info.run_id
    steps = [640, 1280, 1920, 2560, 3200]
    assert [s for s, _ in history(client, run_id, "train/episodes_total")] == steps
    totals = [v for _, v in history(client, run_id, "train/episodes_total")]
    assert totals == sorted(totals) and totals[-1] > totals[0] > 0
    throughput = history(client, run_id, "train/throughput_steps_per_second")
    assert [s for s, _ in throughput] == steps and all(v > 0 for _, v in throughput)
    assert len(history(client, run_id, "train/episode_return")) == 5
    assert "env.id" not in client.get_run(run_id).data.params  # no env given, no spec logged


# --------------------------------------------------------------------------- training, SB3
def train_ppo(monitor: bool, tmp_path: Path) -> tuple[MlflowCallback, str, Any]:
    torch.set_num_threads(1)
    venv: Any = SB3VecEnv.from_id(REACTOR, 16, x0_spread=0.1)
    if monitor:
        venv = VecMonitor(venv, filename=str(tmp_path / "monitor"))
    venv = VecNormalize(venv, gamma=0.95)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=64, n_epochs=2, seed=0, device="cpu")
    cb = MlflowCallback(log_every=256)
    with mlflow.start_run() as run:
        model.learn(1920, callback=cb)
    return cb, run.info.run_id, venv


def test_sb3_callback_logs_raw_returns_with_or_without_vec_monitor(
    client: MlflowClient, tmp_path: Path
) -> None:
    cb_mon, run_mon, _ = train_ppo(True, tmp_path)
    cb_raw, run_raw, _ = train_ppo(False, tmp_path)
    assert isinstance(cb_mon, BaseCallback) and isinstance(cb_mon, MlflowCallback)
    assert cb_mon.flushes == cb_raw.flushes == 8  # every 256 steps, then at the end (1920)
    keys = ("train/episode_return", "train/episode_length", "train/episode_cost", "train/episodes_total")
    for key in keys:
        a, b = history(client, run_mon, key), history(client, run_raw, key)
        assert [s for s, _ in a] == [s for s, _ in b]
        np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-5, err_msg=key)
    steps = [s for s, _ in history(client, run_mon, "train/episodes_total")]
    assert steps == [256, 512, 768, 1024, 1280, 1536, 1792, 1920]
    # Against VecMonitor's own file: the same episodes, the same raw returns.
    rows = np.genfromtxt(tmp_path / "monitor.monitor.csv", delimiter=",", skip_header=2)
    totals = [v for _, v in history(client, run_mon, "train/episodes_total")]
    counts = np.diff([0.0, *[t for t in totals]])
    returns = [v for _, v in history(client, run_mon, "train/episode_return")]
    assert totals[-1] == len(rows)
    assert np.dot(counts[counts > 0], returns) / totals[-1] == pytest.approx(rows[:, 0].mean(), rel=1e-5)
    params = client.get_run(run_mon).data.params
    assert params["env.id"] == REACTOR and params["env.num_envs"] == "16"


# --------------------------------------------------------------------------- evaluation & artifacts
def test_log_evaluation_reads_back(client: MlflowClient, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    results = evaluate_with_safety(
        lambda obs: rng.uniform(-1, 1, 1).astype(np.float32), ni.make(REACTOR), n_episodes=4, seed=0
    )
    assert results["incidents"]
    with mlflow.start_run() as run:
        logged = log_evaluation(results, step=100)
    data = client.get_run(run.info.run_id).data
    assert data.metrics == logged
    assert history(client, run.info.run_id, "eval/mean_return") == [(100, results["mean_return"])]
    assert data.metrics["eval/min_return"] == min(results["returns"])
    assert data.metrics["eval/episodes"] == 4
    for name, count in results["violations"].items():
        assert data.metrics[f"eval/violations_total/{name}"] == count
        assert data.metrics[f"eval/violations/{name}"] == pytest.approx(count / 4)
    assert data.metrics["eval/shutdown_rate"] == pytest.approx(results["shutdowns"] / 4)
    for key in ("shutdowns", "critical_violations", "constraint_satisfaction_rate", "mean_cost"):
        assert data.metrics[f"eval/{key}"] == pytest.approx(results[key])
    saved = json.loads(artifact_text(client, run.info.run_id, "evaluation/incidents_step_100.json", tmp_path))
    assert saved == {"step": 100, "incidents": results["incidents"]}


def test_log_evaluation_rejects_other_dicts() -> None:
    with pytest.raises(ConfigError, match="missing returns, std_return.*evaluate_with_safety"):
        log_evaluation({"mean_return": 1.0})
    results = evaluate_with_safety(lambda obs: np.zeros(1, np.float32), ni.make(REACTOR), n_episodes=1)
    with pytest.raises(ConfigError, match="'violations' must map"):
        log_evaluation({**results, "violations": [1, 2]})
    with pytest.raises(ConfigError, match="'returns' is empty"):
        log_evaluation({**results, "returns": []})
    with pytest.raises(ConfigError, match="evaluate_with_safety returns, got list"):
        log_evaluation([1.0, 2.0])  # type: ignore[arg-type]


def test_audit_trail_is_logged_as_an_artifact(client: MlflowClient, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    envs = ni.make_vec(REACTOR, num_envs=4, autoreset_mode="same_step", audit_log=path)
    envs.reset(seed=0)
    for _ in range(10):
        envs.step(np.ones((4, 1), dtype=np.float32))
    with mlflow.start_run() as run:
        assert log_audit_trail(envs) == "safety/audit.jsonl"  # flushed first
        log_audit_trail(path, artifact_path="copy")
        # Through SB3's wrappers to the batch's trail.
        wrapped = VecMonitor(SB3VecEnv(ni.make_vec(REACTOR, 2, autoreset_mode="same_step", audit_log=path)))
        assert log_audit_trail(wrapped, artifact_path="wrapped") == "wrapped/audit.jsonl"
    text = artifact_text(client, run.info.run_id, "safety/audit.jsonl", tmp_path / "down")
    assert text == path.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert any(e.get("constraint") == "thermal_runaway" for e in events) and all("event" in e for e in events)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "copy")] == ["copy/audit.jsonl"]


def test_audit_trail_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has none"):
        log_audit_trail(ni.make_vec(REACTOR, 2))
    with pytest.raises(ConfigError, match="does not exist"):
        log_audit_trail(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="got int"):
        log_audit_trail(3)


def test_dataset_metadata_is_logged_as_an_artifact(client: MlflowClient, tmp_path: Path) -> None:
    ds = datasets.generate(REACTOR, "medium", n_episodes=4, num_envs=4, progress=False)
    saved = datasets.save(ds, tmp_path / "ds.npz")
    with mlflow.start_run() as run:
        meta = log_dataset_metadata(ds)
        from_file = log_dataset_metadata(saved, artifact_file="dataset/from_file.json")
    assert meta == from_file == json.loads(json.dumps(ds["metadata"]))
    run_id = run.info.run_id
    logged = json.loads(artifact_text(client, run_id, "dataset/metadata.json", tmp_path / "a"))
    assert logged == meta and logged["quality"] == "medium" and logged["n_episodes"] == 4
    assert json.loads(artifact_text(client, run_id, "dataset/from_file.json", tmp_path / "b")) == meta


def test_dataset_metadata_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no metadata"):
        log_dataset_metadata({"observations": np.zeros((2, 3))})
    with pytest.raises(ConfigError, match="cannot read"):
        log_dataset_metadata(tmp_path / "missing.npz")
    with pytest.raises(ConfigError, match="got int"):
        log_dataset_metadata(7)


# --------------------------------------------------------------------------- spec, input, imports
@pytest.mark.parametrize("env_id", ni.env_ids())
def test_spec_params_cover_every_constraint(env_id: str) -> None:
    spec = ni.spec(env_id)
    params = spec_params(spec, num_envs=8)
    assert params["env.id"] == env_id and params["env.num_envs"] == "8"
    assert params["env.horizon"] == str(spec["horizon"])
    assert params["env.observations"].count(",") == len(spec["observations"]) - 1
    for c in spec["constraints"]:
        entry = json.loads(params[f"constraint.{c['name']}"])
        assert entry["kind"] == c["kind"] and entry["severity"] == c["severity"]
    assert all(len(v) <= 6000 for v in params.values())


def test_bad_input_raises_clear_errors() -> None:
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ConfigError, match="log_every"):
            MlflowCallback(log_every=bad)
    cb = MlflowCallback(log_spec=False)
    with pytest.raises(ConfigError, match="not a neorl_industrial vector env step info"):
        cb(1, np.zeros((2, 3)), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), {"other": 1})
    with pytest.raises(ConfigError, match="info dict"):
        cb(1, np.zeros(3), 0.0, False, False, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="3 dicts for 2 rewards"):
        cb(1, np.zeros((2, 3)), np.zeros(2), np.zeros(2, bool), False, [{}, {}, {}])
    with pytest.raises(ConfigError, match="neorl_industrial env.*got object"):
        log_env_spec(object())


def test_imports_are_lazy_and_missing_extras_are_named() -> None:
    code = """
import sys
import neorl_industrial.integrations.mlflow as m
print("loaded", "mlflow" in sys.modules, "stable_baselines3" in sys.modules)
sys.modules["stable_baselines3"] = None
print("plain", type(m.MlflowCallback()).__name__)
sys.modules["mlflow"] = None
try:
    m.log_env_spec(m._spec_of({"id": "x", "constraints": []}))
except ImportError as e:
    print("error", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "loaded False False" in out.stdout, out.stderr
    assert "plain MlflowCallback" in out.stdout, out.stderr
    assert "pip install 'neorl-industrial[mlflow]'" in out.stdout, out.stderr
