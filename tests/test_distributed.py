"""Ray: datasets split over tasks, fleets as actors scraped by a real Prometheus through file_sd and
pushed to a real Pushgateway, worker liveness on the driver's /health/detailed, RLlib PPO (new API
stack) on the Rust batch. One local Ray instance (2 CPUs) for the module."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# A local test cluster stays on the loopback interface (Ray otherwise advertises the machine's address).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402
from _monitoring_stack import PROMETHEUS, http_json, prometheus, query, wait_until  # noqa: E402
from telemetry_http import PUSHGATEWAY, pushgateway_server, request  # noqa: E402

import neorl_industrial as ni  # noqa: E402
from neorl_industrial import datasets  # noqa: E402
from neorl_industrial._fleet_worker import FleetWorker  # noqa: E402
from neorl_industrial.distributed import (  # noqa: E402
    FleetPool,
    WorkerError,
    WorkerTimeoutError,
    generate_dataset,
)
from neorl_industrial.exceptions import ConfigError  # noqa: E402
from neorl_industrial.exporter import start_http_server  # noqa: E402
from neorl_industrial.metrics import Registry  # noqa: E402

pytestmark = pytest.mark.timeout(240)

ENV = "ChemicalReactor-v0"
ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "costs", "violations")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_workers": 0}, "num_workers: must be a positive integer"),
        ({"num_workers": True}, "num_workers: must be a positive integer"),
        ({"num_workers": 9}, r"num_workers: at most num_envs \(8\)"),
        ({"timeout": 0}, "timeout: must be a positive number"),
        ({"quality": "superb"}, "quality: must be one of"),
        ({"n_episodes": 3}, "exactly one of n_transitions and n_episodes"),
        ({"seed": -1}, "seed: must be a non-negative integer"),
        ({"x0_spread": -1.0}, "x0_spread"),
    ],
)
def test_generate_dataset_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"n_transitions": 100, "num_envs": 8, "num_workers": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        generate_dataset(ENV, **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_fleets": 0}, "num_fleets: must be a positive integer"),
        ({"num_envs": -2}, "num_envs: must be a positive integer"),
        ({"policy": "clever"}, "unknown policy"),
        ({"policy": 3}, "policy: must be a baseline name or a factory"),
        ({"env_id": "Nope-v0"}, "unknown environment"),
    ],
)
def test_fleet_pool_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"env_id": ENV, "num_fleets": 2, "num_envs": 4, **kwargs}
    with pytest.raises(ConfigError, match=match):
        FleetPool(**args)


def test_fleets_that_cannot_be_placed_time_out_with_a_clear_error() -> None:
    options = {"num_cpus": 1, "resources": {"fleet_slot": 1}}  # a resource no node of this cluster has
    with pytest.raises(WorkerTimeoutError, match=r"workers \[0, 1\] did not start within 2 s: .*fleet_slot") as e:
        FleetPool(ENV, 2, 2, start_timeout=2, actor_options=options)
    assert e.value.pending == [0, 1]
    # The pending actors were removed: a pool that fits starts at once.
    with FleetPool(ENV, 2, 2, start_timeout=60) as pool:
        assert len(pool.run(1, timeout=60)) == 2


# --------------------------------------------------------------------------- datasets
@pytest.mark.parametrize(
    "quality, size, num_envs, workers",
    [
        ("mixed", {"n_transitions": 3_001}, 12, 2),
        ("medium", {"n_transitions": 2_000}, 7, 3),  # uneven split: 3 + 2 + 2 envs
        ("expert", {"n_episodes": 9}, 6, 2),
    ],
)
def test_dataset_split_over_workers_is_the_single_process_dataset(
    quality: str, size: dict[str, int], num_envs: int, workers: int
) -> None:
    kwargs = {"seed": 11, "num_envs": num_envs, "progress": False, "x0_spread": 0.05, **size}
    single = datasets.generate(ENV, quality, **kwargs)
    split = generate_dataset(ENV, quality, num_workers=workers, **kwargs)
    assert set(split) == set(single)
    for key in ARRAYS:
        assert split[key].dtype == single[key].dtype and split[key].shape == single[key].shape, key
        assert split[key].tobytes() == single[key].tobytes(), key
    assert split["metadata"] == single["metadata"]
    assert single["terminals"].any() or single["timeouts"].any()  # episodes did end: the cut was tested
    # Every env run the workers returned ends with a flag: the episodes split where they should.
    ends = split["terminals"] | split["timeouts"]
    assert ends[-1]
    inner = ~ends[:-1]
    np.testing.assert_array_equal(split["next_observations"][:-1][inner], split["observations"][1:][inner])


def test_dataset_command_splits_over_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neorl_industrial.cli import main

    out = tmp_path / "split.npz"
    args = ["dataset", ENV, "--transitions", "900", "--num-envs", "6", "--seed", "4", "--no-progress"]
    assert main([*args, "--num-workers", "3", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    single = datasets.generate(ENV, n_transitions=900, num_envs=6, seed=4, progress=False)
    split = datasets.load(out)
    assert all(split[k].tobytes() == single[k].tobytes() for k in ARRAYS)
    assert main([*args, "--num-workers", "7", "--out", str(out)]) == 2  # more workers than envs
    assert "num_workers: at most num_envs (6)" in capsys.readouterr().err


def test_dataset_gather_times_out_and_frees_the_workers() -> None:
    # 50 million transitions take far longer than 0.5 s: without a working timeout the call returns
    # a dataset instead (how soon after the 0.5 s it raises is timed by benches/bench_distributed.py).
    with pytest.raises(WorkerTimeoutError, match=r"workers \[0, 1\] did not finish within 0.5 s") as e:
        generate_dataset(ENV, n_transitions=50_000_000, num_envs=64, num_workers=2, timeout=0.5, progress=False)
    assert e.value.pending == [0, 1]
    # The cancelled tasks gave their CPUs back: a small dataset goes through at once.
    small = generate_dataset(ENV, n_transitions=200, num_envs=4, num_workers=2, timeout=60, progress=False)
    assert len(small["rewards"]) == 200


def test_pending_fleet_tasks_show_in_the_queue_depth_gauge() -> None:
    import threading

    from neorl_industrial.metrics import REGISTRY

    def depth() -> float:
        for line in REGISTRY.generate_latest().decode().splitlines():
            if line.startswith('queue_depth{queue="fleet_tasks"}'):
                return float(line.split()[-1])
        raise AssertionError("no queue_depth for fleet_tasks")

    assert depth() == 0
    errors: list[BaseException] = []

    def run() -> None:
        try:
            generate_dataset(ENV, n_transitions=50_000_000, num_envs=64, num_workers=2, timeout=4, progress=False)
        except BaseException as e:  # the timeout is the expected end
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        wait_until(lambda: depth() == 2, timeout=30, what="two pending fleet tasks")
    finally:
        t.join()
    assert [type(e) for e in errors] == [WorkerTimeoutError]
    assert depth() == 0  # the timed-out tasks are no longer counted


# --------------------------------------------------------------------------- fleets, metrics, health
def test_two_fleets_scraped_through_file_sd_by_prometheus(tmp_path: Path) -> None:
    if not PROMETHEUS:
        pytest.fail("prometheus is not installed: scripts/test.sh installs it")
    targets = tmp_path / "targets.json"
    with FleetPool(ENV, 2, 8, seed=5, file_sd=targets, metrics_addr="127.0.0.1") as pool:
        groups = json.loads(targets.read_text())
        assert [g["labels"]["worker"] for g in groups] == ["0", "1"]
        assert all(g["labels"]["node"] and len(g["targets"]) == 1 for g in groups)
        assert sorted(t for g in groups for t in g["targets"]) == sorted(pool.targets)
        horizon = ni.spec(ENV)["horizon"]
        results = pool.run(horizon // 2, timeout=120) + pool.run(horizon, timeout=120)
        counted = sum(r.env_steps for r in results)
        assert counted == (horizon // 2 + horizon) * 8 * 2
        assert [r.worker for r in results] == [0, 1, 0, 1]
        # Every env ends its first episode in the second run (at the horizon, or earlier by a shutdown).
        assert all(r.episodes >= 8 and r.mean_return is not None for r in results[2:])
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "ray-fleets",
                    "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                }
            ],
        }
        with prometheus(config, None, tmp_path / "prometheus") as prom:
            up = wait_until(
                lambda: (r := query(prom, 'up{job="ray-fleets"} == 1')) and len(r) == 2 and r,
                40,
                "both workers to be up",
            )
            assert {(s["metric"]["worker"], s["metric"]["node"]) for s in up} == {
                ("0", groups[0]["labels"]["node"]),
                ("1", groups[1]["labels"]["node"]),
            }
            total = wait_until(
                lambda: (r := query(prom, "sum(env_steps_total)")) and float(r[0]["value"][1]) == counted and r,
                20,
                "sum(env_steps_total) to reach the steps the driver counted",
            )
            assert float(total[0]["value"][1]) == counted
            per_worker = query(prom, "sum by (worker) (env_steps_total)")
            assert {s["metric"]["worker"]: float(s["value"][1]) for s in per_worker} == {
                "0": counted / 2,
                "1": counted / 2,
            }
    assert json.loads(targets.read_text()) == []  # closed: Prometheus drops the targets


@pytest.fixture()
def gateway() -> Iterator[str]:
    if shutil.which(PUSHGATEWAY) is None:
        pytest.fail("prometheus-pushgateway is not installed: scripts/test.sh installs it")
    with pushgateway_server() as url:
        yield url


def test_fleets_push_to_a_pushgateway_at_the_end_of_a_run_and_follow_one_big_batch(gateway: str) -> None:
    horizon = ni.spec(ENV)["horizon"]
    with FleetPool(ENV, 2, 4, seed=9, pushgateway=gateway, push_job="ray-batch", x0_spread=0.1) as pool:
        assert pool.targets == []  # no exporters without file_sd
        results = pool.run(horizon, timeout=120)
        counted = sum(r.env_steps for r in results)
    # Fleet k holds the envs k * 4 .. of one batch of 8: the same episodes as that batch in one process.
    whole = FleetWorker(0, ENV, 8, 0, 9, None, {"x0_spread": 0.1}, 1, False, None).run(horizon)
    assert sorted(whole["episode_returns"]) == sorted(x for r in results for x in r.episode_returns)
    assert len(whole["episode_returns"]) >= 8
    text = request(gateway + "/metrics").text
    pushed = {}
    for line in text.splitlines():
        if line.startswith("env_steps_total{") and 'job="ray-batch"' in line:
            worker = line.split('worker="')[1].split('"')[0]
            assert 'node="' in line
            pushed[worker] = float(line.rsplit(" ", 1)[1])
    assert pushed == {"0": counted / 2, "1": counted / 2}


def _health(url: str) -> dict[str, Any]:
    return dict(http_json(url + "/health/detailed", timeout=5.0))


def test_driver_health_reports_each_worker_and_a_killed_one_as_not_live() -> None:
    registry = Registry()
    with FleetPool(ENV, 2, 4) as pool, start_http_server(0, registry=registry) as server:
        url = f"http://127.0.0.1:{server.port}"
        names = pool.register_health_checks(registry, timeout=5.0, interval=0.5)
        assert names == ["ray_worker_0", "ray_worker_1"]
        checks = _health(url)["checks"]
        assert all(checks[n]["status"] == "pass" and checks[n]["output"].startswith("live") for n in names)
        # A run that outlasts its timeout raises, and the busy workers still answer pings.
        with pytest.raises(WorkerTimeoutError, match="did not finish within 0.2 s"):
            pool.run(200_000, timeout=0.2)
        assert {k: live for k, (live, _) in pool.liveness(timeout=5.0).items()} == {0: True, 1: True}
        ray.kill(pool.actors[1])
        checks = wait_until(
            lambda: (c := _health(url)["checks"]) and c["ray_worker_1"]["status"] == "fail" and c,
            20,
            "the killed worker to be reported",
        )
        assert checks["ray_worker_1"]["output"].startswith("not live: actor died")
        assert checks["ray_worker_0"]["status"] == "pass"
        live = pool.liveness(timeout=5.0)
        assert live[0][0] and not live[1][0] and "actor died" in live[1][1]
        with pytest.raises(WorkerError, match="worker 1 died"):
            pool.run(1, timeout=30)
    assert "ray_worker_0" not in _checks_of(registry)  # close() removed the checks


def _checks_of(registry: Registry) -> dict[str, Any]:
    return dict(registry.health()["checks"])


# --------------------------------------------------------------------------- RLlib
def test_rllib_envs_register_pickle_and_seed_each_runner_apart() -> None:
    from ray.rllib.env.env_context import EnvContext

    from neorl_industrial.integrations.rllib import SEED_STRIDE, register_envs

    names = register_envs()
    assert f"neorl_industrial/{ENV}" in names and len(names) == len(ni.env_ids())
    with pytest.raises(ConfigError, match="unknown environment"):
        register_envs(["Nope-v0"])
    from ray.tune.registry import ENV_CREATOR, _global_registry

    creator = _global_registry.get(ENV_CREATOR, f"neorl_industrial/{ENV}")
    creator = pickle.loads(pickle.dumps(creator))
    config = {"x0_spread": 0.1}
    # One env per runner (sync vectorization): runner w gets seed + w from RLlib, moved to its own range.
    first = [creator(EnvContext(config, worker_index=w)).reset(seed=100 + w)[0] for w in (1, 2)]
    assert not np.array_equal(first[0], first[1])
    plain = ni.make(ENV, **config)
    assert np.array_equal(first[1], plain.reset(seed=102 + 2 * SEED_STRIDE)[0])
    # A Rust batch per runner (vector_entry_point): envs (seed + w) * stride + i.
    batch = creator({**config, "num_envs": 3})
    obs, _ = batch.reset(seed=7)
    assert obs.shape == (3, 3)
    assert np.array_equal(obs[2], plain.reset(seed=7 * SEED_STRIDE + 2)[0])
    # Pickled mid-episode, an env goes on exactly as the original.
    env = creator(EnvContext(config, worker_index=1))
    env.reset(seed=3)
    env.step(np.array([0.2], np.float32))
    clone = pickle.loads(pickle.dumps(env))
    a, b = env.step(np.array([0.5], np.float32)), clone.step(np.array([0.5], np.float32))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_rllib_ppo_trains_on_the_rust_batch() -> None:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from neorl_industrial.integrations.rllib import register_envs

    register_envs([ENV])
    config = (
        PPOConfig()
        .environment(f"neorl_industrial/{ENV}", env_config={"x0_spread": 0.05})
        .env_runners(
            num_env_runners=1,
            num_envs_per_env_runner=4,
            gym_env_vectorize_mode="vector_entry_point",
            rollout_fragment_length=50,
        )
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[16]))
        .debugging(seed=0)
    )
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2  # new API stack
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    last = results[-1]
    runners = last["env_runners"]
    assert runners["num_env_steps_sampled_lifetime"] >= 2 * 200
    assert runners["num_episodes_lifetime"] > 0
    assert np.isfinite(runners["episode_return_mean"])
    assert runners["episode_len_max"] <= ni.spec(ENV)["horizon"]
    loss = last["learners"]["default_policy"]["policy_loss"]
    assert np.isfinite(loss)
