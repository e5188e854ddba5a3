"""The pytest plugin (fixtures and assertions), exercised through pytest's own ``pytester``; and the
``bench`` command."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from neorl_industrial import cli
from neorl_industrial import env_ids as all_env_ids

pytest_plugins = ["pytester"]

PLUGIN = "neorl_industrial.integrations.pytest_plugin"


def _installed_as_entry_point() -> bool:
    return any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))


# Once installed, the entry point loads the plugin; loading it again with -p would register the same
# module twice.
PLUGIN_ARGS: tuple[str, ...] = () if _installed_as_entry_point() else ("-p", PLUGIN)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)


def test_fixtures_work_in_a_generated_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        from neorl_industrial.integrations.pytest_plugin import (
            assert_metric, assert_no_critical_violations, rollout,
        )
        from neorl_industrial.metrics import Registry

        def test_single(industrial_env):
            env = industrial_env("ChemicalReactor-v0")
            steps = rollout(env, lambda obs: np.zeros(env.action_space.shape), 20, seed=0)
            assert len(steps) == 20
            obs, reward, terminated, truncated, info = steps[-1]
            assert "constraints" in info and "violations" in info
            assert_no_critical_violations(steps)

        def test_vec(industrial_vec_env, isolated_registry):
            assert isinstance(isolated_registry, Registry)
            envs = industrial_vec_env("FourTank-v0", num_envs=4)
            assert envs.num_envs == 4
            steps = rollout(envs, None, 5, seed=1)
            assert len(steps) == 5
            assert_metric(isolated_registry, "env_steps_total", {"env": "FourTank-v0"}, 20)

        def test_default_num_envs(industrial_vec_env):
            assert industrial_vec_env("HVAC-v0").num_envs == 8

        def test_server(metrics_server):
            assert metrics_server.port > 0
        """
    )
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=4)


def test_runaway_fails_naming_the_constraint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from neorl_industrial.integrations.pytest_plugin import assert_no_critical_violations, rollout

        def test_runaway(industrial_env):
            env = industrial_env("ChemicalReactor-v0")
            steps = rollout(env, 1.0, 60, seed=0)
            assert_no_critical_violations(steps)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "thermal_runaway" in out
    result.stdout.fnmatch_lines(
        [
            "*critical constraint 'thermal_runaway' active at step * value * (limit 350)*",
            "*emergency shutdown at step *shutdown_reason='thermal_runaway'*",
        ]
    )


def test_runaway_on_a_vector_env_names_the_env(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from neorl_industrial.integrations.pytest_plugin import assert_no_critical_violations, rollout

        def test_runaway(industrial_vec_env):
            envs = industrial_vec_env("ChemicalReactor-v0", num_envs=4)
            assert_no_critical_violations(rollout(envs, 1.0, 60, seed=0))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*critical constraint 'thermal_runaway' active at step * (env *)*"])


def test_assert_metric_passes_and_fails_usefully(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from neorl_industrial.integrations.pytest_plugin import assert_metric, rollout

        N, B = 4, 7

        def _step(industrial_vec_env):
            envs = industrial_vec_env("ChemicalReactor-v0", num_envs=N, autoreset_mode="same_step")
            rollout(envs, 0.0, B, seed=0)

        def test_right_value(industrial_vec_env, isolated_registry):
            _step(industrial_vec_env)
            s = assert_metric(isolated_registry, "env_steps_total", {"env": "ChemicalReactor-v0"}, N * B)
            assert s.value == N * B

        def test_wrong_value(industrial_vec_env, isolated_registry):
            _step(industrial_vec_env)
            assert_metric(isolated_registry, "env_steps_total", {"env": "ChemicalReactor-v0"}, 999)

        def test_wrong_labels(industrial_vec_env, isolated_registry):
            _step(industrial_vec_env)
            assert_metric(isolated_registry, "env_steps_total", {"env": "Nope-v0"}, 1)

        def test_unknown_name(isolated_registry):
            assert_metric(isolated_registry, "no_such_metric_total", {}, 1)
        """
    )
    result = _run(pytester, "-rf")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            '*metric env_steps_total{env="ChemicalReactor-v0"} is 28, expected 999*',
            '*metric sample env_steps_total{env="Nope-v0"} not found*',
            "*no samples named 'no_such_metric_total'*",
        ]
    )
    # The failure lists the samples of that name.
    assert 'env_steps_total{env="ChemicalReactor-v0"} 28' in result.stdout.str()


def test_metrics_server_serves_over_http(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import urllib.request

        from neorl_industrial.integrations.pytest_plugin import assert_metric, rollout

        def test_scrape(metrics_server, industrial_vec_env):
            envs = industrial_vec_env("ChemicalReactor-v0", num_envs=2, autoreset_mode="same_step")
            rollout(envs, 0.0, 3, seed=0)
            with urllib.request.urlopen(metrics_server.url.rstrip("/") + "/metrics", timeout=10) as r:
                assert r.status == 200
                text = r.read().decode()
            assert_metric(text, "env_steps_total", {"env": "ChemicalReactor-v0"}, 6)
            assert metrics_server.url.startswith("http://127.0.0.1:")
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_parse_samples_handles_escapes_and_specials() -> None:
    from neorl_industrial.integrations.pytest_plugin import parse_samples

    text = (
        "# HELP x a metric\n# TYPE x counter\n"
        'x{a="q\\"uote",b="back\\\\slash"} 3.5\n'
        "y 1e3\n"
        'z_bucket{le="+Inf"} +Inf\n'
    )
    samples = parse_samples(text)
    assert samples[0].labels == {"a": 'q"uote', "b": "back\\slash"} and samples[0].value == 3.5
    assert samples[1].name == "y" and samples[1].labels == {} and samples[1].value == 1000.0
    assert samples[2].value == float("inf")


def test_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--seconds", "0.1", "--num-envs", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["env"]: r for r in report["results"]}
    assert set(rows) == set(all_env_ids())
    for r in rows.values():
        assert r["vec_steps_per_second"] > 0
        assert r["single_step_us"] > 0
    assert cli.main(["bench", "--seconds", "0.1", "--num-envs", "16"]) == 0
    table = capsys.readouterr().out
    for env_id in all_env_ids():
        assert env_id in table
