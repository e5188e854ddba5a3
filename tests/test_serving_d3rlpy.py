"""Serving a d3rlpy model: trained offline on a generated dataset, saved as a ``.d3`` (its full
learnable) and exported as a TorchScript policy, both served with their identity and acting as
d3rlpy's own ``predict`` does."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from neorl_industrial import datasets, make_vec
from neorl_industrial.metrics import Registry
from neorl_industrial.serving import PolicyService

with warnings.catch_warnings():  # d3rlpy imports the unmaintained gym, which warns on import
    warnings.simplefilter("ignore")
    import d3rlpy

REACTOR = "ChemicalReactor-v0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, Path]]:
    ds = datasets.generate(REACTOR, "expert", n_transitions=2000, seed=0, num_envs=4, progress=False)
    mdp = d3rlpy.dataset.MDPDataset(
        observations=ds["observations"],
        actions=ds["actions"],
        rewards=ds["rewards"],
        terminals=ds["terminals"],
        timeouts=ds["timeouts"],
    )
    algo = d3rlpy.algos.BCConfig(batch_size=64).create(device="cpu:0")
    algo.fit(mdp, n_steps=100, n_steps_per_epoch=100, show_progress=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip
    d = tmp_path_factory.mktemp("d3rlpy")
    files = {"d3rlpy": d / "bc.d3", "torchscript": d / "bc_policy.pt"}
    algo.save(str(files["d3rlpy"]))
    algo.save_policy(str(files["torchscript"]))
    return algo, files


@pytest.mark.parametrize("framework", ["d3rlpy", "torchscript"])
def test_a_d3rlpy_model_serves_as_it_predicts(trained: tuple[object, dict[str, Path]], framework: str) -> None:
    algo, files = trained
    envs = make_vec(REACTOR, num_envs=3, autoreset_mode="same_step", metrics=False)
    obs, _ = envs.reset(seed=5)
    r = Registry()
    with PolicyService(REACTOR, str(files[framework]), num_envs=3, seed=5, registry=r) as s:
        assert (s.policy.framework, s.policy.name) == (framework, files[framework].stem)
        for _ in range(8):
            expected = algo.predict(obs)  # type: ignore[attr-defined]
            s.step()
            np.testing.assert_allclose(np.asarray(s.last_actions, np.float32), expected, rtol=1e-5, atol=1e-6)
            obs, *_ = envs.step(expected)
        assert r.health()["checks"]["model_loaded"]["framework"] == framework


def test_a_d3rlpy_model_of_other_sizes_is_refused(trained: tuple[object, dict[str, Path]]) -> None:
    from neorl_industrial import ConfigError

    _, files = trained
    with pytest.raises(ConfigError, match=r"the d3rlpy model takes observations \(3,\) and gives actions \(1,\)"):
        PolicyService("PowerGrid-v0", str(files["d3rlpy"]), num_envs=2, registry=Registry())
