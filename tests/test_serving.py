"""Serving a trained agent: policies from files and code, model identity and health, policy errors,
hot reload with rollback, shadow mode and operator interventions (``neorl_industrial.serving``
in-process, and ``neorl-industrial serve`` as a real process scraped over HTTP)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import neorl_industrial as ni
from neorl_industrial.metrics import Registry
from neorl_industrial.serving import PolicyService, check_intervention

REACTOR = "ChemicalReactor-v0"


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small PPO models (different seeds), and a TorchScript and an ONNX MLP."""
    from stable_baselines3 import PPO

    d = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {}
    for seed in (0, 1):
        model = PPO("MlpPolicy", ni.make(REACTOR, horizon=50), n_steps=256, batch_size=64, n_epochs=2,
                    policy_kwargs={"net_arch": [16]}, seed=seed, device="cpu")  # fmt: skip
        model.learn(2048)
        out[f"ppo{seed}"] = d / f"ppo{seed}.zip"
        model.save(out[f"ppo{seed}"])
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1), torch.nn.Tanh())
    out["pt"] = d / "mlp.pt"
    torch.jit.save(torch.jit.script(mlp), str(out["pt"]), _extra_files={"version": "7"})
    out["onnx"] = d / "mlp.onnx"
    torch.onnx.export(mlp, (torch.zeros(1, 3),), str(out["onnx"]), input_names=["obs"], output_names=["act"],
                      dynamic_axes={"obs": {0: "n"}, "act": {0: "n"}}, dynamo=False)  # fmt: skip
    return out


def metric(text: str, family: str, /, **labels: str) -> float | None:
    """The value of one sample of a text exposition (labels matched as a subset), or None."""
    for line in text.splitlines():
        if not line.startswith(family) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series != family:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(value)
    return None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- loading, in-process
@pytest.mark.parametrize("kind", ["ppo0", "pt", "onnx"])
def test_a_model_file_serves_with_its_identity(models: dict[str, Path], kind: str) -> None:
    r = Registry()
    with PolicyService(REACTOR, str(models[kind]), num_envs=4, registry=r) as s:
        for _ in range(5):
            assert s.step()
        framework = {"ppo0": "sb3", "pt": "torchscript", "onnx": "onnx"}[kind]
        version = {"ppo0": sha(models[kind])[:12], "pt": "7", "onnx": sha(models[kind])[:12]}[kind]
        text = r.generate_latest().decode()
        ident = {"name": models[kind].stem, "version": version, "framework": framework, "sha256": sha(models[kind])}
        assert metric(text, "model_info", **ident) == 1.0
        assert metric(text, "inference_latency_seconds_count") == 5
        assert metric(text, "actions_computed_total") == 20
        # Known label sets exist from the start, so a first event shows in increase().
        assert [metric(text, "policy_errors_total", kind=k) for k in ("exception", "non_finite", "shape")] == [0.0] * 3
        assert metric(text, "model_reloads_total", result="failure") == 0.0
        check = r.health()["checks"]["model_loaded"]
        assert check["status"] == "pass" and {k: check[k] for k in ident} == ident
    assert metric(r.generate_latest().decode(), "model_info", **ident) is None  # closed: no longer serving


def test_the_model_acts_as_it_would_in_a_plain_loop(models: dict[str, Path]) -> None:
    from stable_baselines3 import PPO

    model = PPO.load(models["ppo0"], device="cpu")
    envs = ni.make_vec(REACTOR, num_envs=3, autoreset_mode="same_step", metrics=False)
    obs, _ = envs.reset(seed=4)
    with PolicyService(REACTOR, str(models["ppo0"]), num_envs=3, seed=4, registry=Registry()) as s:
        for _ in range(10):
            obs, *_ = envs.step(model.predict(obs, deterministic=True)[0])
            s.step()
        np.testing.assert_array_equal(s.obs, obs)


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))


POLICY_MODULE = """
import numpy as np
__version__ = "2.1"
calls = {"n": 0}

def hold(obs):
    return np.full((len(obs), 1), 0.25, np.float32)

def make_fragile():
    def act(obs):
        calls["n"] += 1
        if calls["n"] in FAIL:
            return FAIL[calls["n"]](obs)
        return np.zeros((len(obs), 1))
    return act

def boom(obs):
    raise RuntimeError("weights on fire")

FAIL = {
    3: lambda obs: np.full((len(obs), 1), np.nan),
    4: lambda obs: np.zeros((len(obs), 2)),
    5: boom,
}

class Factory:
    def __call__(self, obs):
        return np.zeros(len(obs))

def wrong_shape(obs):
    return np.zeros((len(obs), 3))

count = 3
"""


def test_module_attribute_callables_and_factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "my_policies", POLICY_MODULE)
    r = Registry()
    with PolicyService(REACTOR, "my_policies:hold", num_envs=2, registry=r) as s:
        assert (s.policy.framework, s.policy.version, s.policy.name) == ("python", "2.1", "hold")
        assert s.policy.sha256 == sha(tmp_path / "my_policies.py")
        s.step()
    with PolicyService(REACTOR, "my_policies:Factory", num_envs=2, registry=r, model_version="9") as s:
        assert s.policy.version == "9" and s.step()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.zip", "policy: no such file 'missing.zip'"),
        ("my_policies:nothing", "has no attribute 'nothing'"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("my_policies:count", "is a int, not a callable"),
        ("my_policies:wrong_shape", r"answered the probe batch wrongly: the policy returned shape \(2, 3\) for 2 observations, expected \(2, 1\)"),
        ("my_policies:boom", "failed on the probe batch: RuntimeError: weights on fire"),
        ("notes.txt", "cannot tell what 'notes.txt' holds"),
        ("corrupt.zip", "is not a Stable-Baselines3 archive"),
        ("corrupt.onnx", "cannot load corrupt.onnx as onnx"),
        ("corrupt.pt", "cannot load corrupt.pt as torchscript"),
    ],
)
def test_policies_that_cannot_serve_are_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    write_module(tmp_path, monkeypatch, "my_policies", POLICY_MODULE)
    monkeypatch.chdir(tmp_path)
    for name in ("notes.txt", "corrupt.zip", "corrupt.onnx", "corrupt.pt"):
        (tmp_path / name).write_bytes(b"not a model\n")
    r = Registry()
    with pytest.raises(ni.ConfigError, match=message):
        PolicyService(REACTOR, spec, num_envs=2, registry=r)
    assert r.health()["checks"]["model_loaded"]["status"] == "fail"  # no half-started service
    assert "model_info{" not in r.generate_latest().decode()


def test_a_model_of_other_sizes_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ni.ConfigError, match=r"takes observations \(3,\) and gives actions \(1,\); this env has \(9,\) and \(2,\)"):
        PolicyService("PowerGrid-v0", str(models["ppo0"]), num_envs=2, registry=Registry())
    with pytest.raises(ni.ConfigError, match=r"takes input of shape \['n', 3\]; this env's observations are \(batch, 9\)"):
        PolicyService("PowerGrid-v0", str(models["onnx"]), num_envs=2, registry=Registry())


def test_a_missing_framework_names_the_extra(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ni.ConfigError, match=r"needs onnxruntime .*pip install 'neorl-industrial\[onnx\]'"):
        PolicyService(REACTOR, str(models["onnx"]), num_envs=2, registry=Registry())


# --------------------------------------------------------------------------- readiness
def test_not_ready_until_the_model_answered_its_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "slow_policy", """
import threading
import numpy as np
gate = threading.Event()
def act(obs):
    gate.wait(60)
    return np.zeros((len(obs), 1))
""")  # fmt: skip
    import slow_policy  # type: ignore[import-not-found]

    from neorl_industrial.exporter import start_http_server

    r = Registry()
    server = start_http_server(0, registry=r)
    made: list[PolicyService] = []
    t = threading.Thread(target=lambda: made.append(PolicyService(REACTOR, "slow_policy:act", num_envs=2, registry=r)))
    try:
        t.start()
        with pytest.raises(urllib.error.HTTPError) as e:
            # The batch is live, but its model has not answered: not ready.
            for _ in range(100):
                urllib.request.urlopen(server.url + "health/ready", timeout=5)
                time.sleep(0.05)
        assert e.value.code == 503
        body = json.loads(e.value.read())
        assert body["checks"]["model_loaded"]["output"] == "loading slow_policy:act: not yet answered a probe batch"
        slow_policy.gate.set()
        t.join(60)
        assert urllib.request.urlopen(server.url + "health/ready", timeout=5).status == 200
    finally:
        slow_policy.gate.set()
        t.join(60)
        server.stop()
        for s in made:
            s.close()


# --------------------------------------------------------------------------- policy errors
def test_policy_errors_fall_back_to_the_safe_action_and_are_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, monkeypatch, "fragile", POLICY_MODULE)
    r = Registry()
    log = tmp_path / "audit.jsonl"
    with PolicyService(REACTOR, "fragile:make_fragile", num_envs=2, registry=r, audit_log=str(log)) as s:
        sent = []
        for _ in range(6):  # calls 2..7: 3 NaN, 4 wrong shape, 5 raises, then good again
            assert s.step()
            sent.append(s.last_actions.copy())
        text = r.generate_latest().decode()
    safe = np.full((2, 1), -1.0, np.float32)  # the reactor's safe action: full cooling
    for i, a in enumerate(sent):
        np.testing.assert_array_equal(a, safe if i in (1, 2, 3) else np.zeros((2, 1)))
    for kind in ("non_finite", "shape", "exception"):
        assert metric(text, "policy_errors_total", kind=kind) == 1.0
    # errors_total: the policy's two invalid answers and its exception; the fleet refused the two
    # invalid answers it was sent (and says why in input_refused_total).
    assert metric(text, "errors_total", component="policy", kind="invalid_action") == 2.0
    assert metric(text, "errors_total", component="policy", kind="exception") == 1.0
    assert metric(text, "errors_total", component="env", kind="refused_input") == 2.0
    for reason in ("non_finite", "shape"):
        assert metric(text, "input_refused_total", env=REACTOR, reason=reason) == 1.0
    assert metric(text, "actions_computed_total") == 2 * 3  # the probe is not served; refused answers count none
    events = [json.loads(x) for x in log.read_text().splitlines()]
    errors = [e for e in events if e["event"] == "policy_error"]
    assert [e["kind"] for e in errors] == ["non_finite", "shape", "exception"]
    assert all(e["response"] == "safe_action" and e["framework"] == "python" for e in errors)
    assert "RuntimeError: weights on fire" in errors[2]["error"]
    assert [e["failed_batches"] for e in events if e["event"] == "policy_recovered"] == [3]


def test_on_policy_error_shutdown_stops_before_acting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "fragile2", POLICY_MODULE)
    with PolicyService(REACTOR, "fragile2:make_fragile", num_envs=2, registry=Registry(), on_policy_error="shutdown") as s:
        assert s.step() and not s.step()
        assert s.batches == 1 and s.stopped.startswith("policy error (non_finite)")
        assert s.run() == s.stopped  # stays stopped
    with pytest.raises(ni.ConfigError, match="on_policy_error: must be one of fallback, shutdown, got 'ignore'"):
        PolicyService(REACTOR, "zero", on_policy_error="ignore", registry=Registry())


# --------------------------------------------------------------------------- reload
def test_reload_swaps_between_steps_and_refuses_a_bad_model(models: dict[str, Path], tmp_path: Path) -> None:
    r = Registry()
    log = tmp_path / "audit.jsonl"
    serving = tmp_path / "serving.zip"
    serving.write_bytes(models["ppo0"].read_bytes())
    with PolicyService(REACTOR, str(serving), num_envs=4, registry=r, audit_log=str(log)) as s:
        stop = threading.Event()
        runner = threading.Thread(target=lambda: s.run(should_stop=lambda: "stop" if stop.is_set() else None))
        runner.start()  # under load: the loop steps as fast as it can while models come and go
        try:
            serving.write_bytes(b"PK\x03\x04 truncated")
            bad = s.reload().result(timeout=60)
            assert bad["result"] == "failure" and "not a Stable-Baselines3 archive" in bad["reason"]
            assert s.policy.sha256 == sha(models["ppo0"])
            good = s.reload(str(models["ppo1"])).result(timeout=60)
            assert good["result"] == "success" and good["serving"]["sha256"] == sha(models["ppo1"])
        finally:
            stop.set()
            runner.join(60)
        text = r.generate_latest().decode()
        assert metric(text, "model_reloads_total", result="failure") == 1.0
        assert metric(text, "model_reloads_total", result="success") == 1.0
        assert metric(text, "errors_total", component="serving", kind="reload") == 1.0
        assert metric(text, "model_info", sha256=sha(models["ppo1"])) == 1.0
        assert metric(text, "model_info", sha256=sha(models["ppo0"])) is None
        assert s.envs.safety.steps == 4 * s.batches  # every batch stepped every env once
    reloads = [json.loads(x) for x in log.read_text().splitlines() if '"model_reload"' in x]
    assert [e["result"] for e in reloads] == ["failure", "success"]


def test_no_step_is_lost_or_doubled_by_a_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "two_policies", POLICY_MODULE)
    with PolicyService(REACTOR, "zero", num_envs=3, seed=11, registry=Registry()) as s:
        for _ in range(7):
            s.step()
        done = s.reload("two_policies:hold")
        while not done.done():  # the swap lands between two of these steps
            s.step()
            time.sleep(0.001)
        result = done.result()
        assert result["result"] == "success", result
        swapped_at = result["batch"]
        for _ in range(5):
            s.step()
        # The same fleet stepped by hand: zero until the swap, then hold.
        envs = ni.make_vec(REACTOR, num_envs=3, autoreset_mode="same_step", metrics=False)
        obs, _ = envs.reset(seed=11)
        for b in range(s.batches):
            obs, *_ = envs.step(np.full((3, 1), 0.25 if b >= swapped_at else 0.0, np.float32))
        np.testing.assert_array_equal(obs, s.obs)


# --------------------------------------------------------------------------- shadow mode
def test_a_shadow_policy_is_measured_and_never_acts(models: dict[str, Path]) -> None:
    r = Registry()
    with PolicyService(REACTOR, "zero", num_envs=4, shadow_policy="random", seed=2, registry=r) as s:
        for _ in range(40):
            s.step()
        obs = s.obs.copy()
        assert s.shadow is not None and s.shadow.name == "random"
    text = r.generate_latest().decode()
    assert metric(text, "shadow_action_divergence_count") == 4 * 40
    assert metric(text, "shadow_inference_latency_seconds_count") == 40
    # Random coolant moves exceed the ramp limit on most steps: the shadow would raise that alarm.
    assert metric(text, "shadow_would_violate_total", constraint_type="actuator_rate", severity="warning") > 0
    envs = ni.make_vec(REACTOR, num_envs=4, autoreset_mode="same_step", metrics=False)
    o, _ = envs.reset(seed=2)
    for _ in range(40):
        o, *_ = envs.step(np.zeros((4, 1), np.float32))
    np.testing.assert_array_equal(o, obs)  # the fleet saw only the acting policy's actions


# --------------------------------------------------------------------------- interventions
def test_interventions_are_applied_between_steps_counted_and_audited(tmp_path: Path) -> None:
    r = Registry()
    log = tmp_path / "audit.jsonl"
    with PolicyService(REACTOR, "zero", num_envs=3, registry=r, audit_log=str(log)) as s:
        s.step()
        f = s.intervene({"action": "override", "envs": [2], "value": [0.5], "reason": "valve test", "operator": "ana"})
        assert not f.done()  # applied by the loop, not by the caller
        s.step()
        assert f.result()["envs"] == [2] and s.last_actions[2, 0] == 0.5 and s.last_actions[0, 0] == 0.0
        s.intervene({"action": "pause", "reason": "inspection", "operator": "ana"})
        before = s.batches
        s.step()
        s.step()
        assert s.batches == before and s.paused == {"reason": "inspection", "operator": "ana"}
        s.intervene({"action": "resume", "reason": "inspection", "operator": "ana"})
        s.step()
        assert s.batches == before + 1
        s.intervene({"action": "shutdown", "reason": "end of trial", "operator": "bo"})
        assert not s.step() and s.stopped == "operator shutdown"
        assert [i["action"] for i in s.interventions] == ["override", "pause", "resume", "shutdown"]
        status, answer = s.handle_control("POST", "/interventions", b'{"action": "resume", "reason": "r", "operator": "o"}')
        assert (status, json.loads(answer)) == (503, {"error": "the service has stopped (operator shutdown)"})
    text = r.generate_latest().decode()
    assert metric(text, "human_interventions_total", reason="inspection") == 2.0
    events = [json.loads(x) for x in log.read_text().splitlines() if '"human_intervention"' in x]
    assert [(e["action"], e["operator"], e["envs"]) for e in events][:2] == [("override", "ana", [2]), ("pause", "ana", [0, 1, 2])]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "intervention: must be a JSON object, got list"),
        ({"action": "explode", "reason": "r", "operator": "o"}, "action: must be one of pause, resume, shutdown, override, release, got 'explode'"),
        ({"action": "pause", "reason": "", "operator": "o"}, "reason: must be a non-empty string"),
        ({"action": "pause", "reason": "r"}, "operator: must be a non-empty string"),
        ({"action": "pause", "reason": "r" * 201, "operator": "o"}, "reason: must be a non-empty string of at most 200"),
        ({"action": "override", "reason": "r", "operator": "o", "value": [0.1]}, "envs: override needs the env indices"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [3], "value": [0.1]}, r"envs: index 3 out of range 0..2"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [-1], "value": [0.1]}, r"envs: index -1 out of range"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [True], "value": [0.1]}, "envs: must be a non-empty list"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [0], "value": [2.0]}, r"value: must be 1 finite number\(s\) in \[-1, 1\]"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [0], "value": ["x"]}, "value: must be 1 number"),
        ({"action": "override", "reason": "r", "operator": "o", "envs": [0], "value": [float("nan")]}, "value: must be 1 finite"),
        ({"action": "pause", "reason": "r", "operator": "o", "value": [0.1]}, "value: only override takes a value"),
        ({"action": "pause", "reason": "r", "operator": "o", "extra": 1}, "intervention: unknown field 'extra'"),
    ],
)
def test_bad_interventions_are_refused_naming_the_field(request_: Any, message: str) -> None:
    with pytest.raises(ni.ConfigError, match=message):
        check_intervention(request_, 3, 1)


# --------------------------------------------------------------------------- the command
def serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "4", "--rate", "100", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on http" not in line:
        proc.kill()
        raise AssertionError(line + proc.communicate()[1])
    return proc, line.rsplit(" on ", 1)[1].strip()


def scrape(url: str) -> str:
    return urllib.request.urlopen(url + "metrics", timeout=10).read().decode()


def wait_for(url: str, family: str, value: float, /, **labels: str) -> str:
    deadline = time.monotonic() + 120  # only a hang runs out
    while time.monotonic() < deadline:
        text = scrape(url)
        if (metric(text, family, **labels) or 0.0) >= value:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{family}{labels} never reached {value}")


def test_serve_a_trained_model_reload_it_on_sighup_and_shadow_it(models: dict[str, Path], tmp_path: Path) -> None:
    served = tmp_path / "model.zip"
    served.write_bytes(models["ppo0"].read_bytes())
    log = tmp_path / "audit.jsonl"
    proc, url = serve("--policy", str(served), "--shadow-policy", "zero", "--model-version", "1.0", "--audit-log", str(log))
    try:
        text = wait_for(url, "inference_latency_seconds_count", 10)
        assert metric(text, "model_info", name="model", version="1.0", framework="sb3", sha256=sha(models["ppo0"])) == 1.0
        assert (metric(text, "shadow_action_divergence_count") or 0) > 0
        assert urllib.request.urlopen(url + "health/ready", timeout=5).status == 200
        check = json.loads(urllib.request.urlopen(url + "health/detailed", timeout=5).read())["checks"]["model_loaded"]
        assert (check["framework"], check["version"], check["sha256"]) == ("sb3", "1.0", sha(models["ppo0"]))
        served.write_bytes(b"garbage")
        proc.send_signal(signal.SIGHUP)
        text = wait_for(url, "model_reloads_total", 1, result="failure")
        assert metric(text, "model_info", sha256=sha(models["ppo0"])) == 1.0  # the old model keeps serving
        served.write_bytes(models["ppo1"].read_bytes())
        proc.send_signal(signal.SIGHUP)
        text = wait_for(url, "model_reloads_total", 1, result="success")
        assert metric(text, "model_info", sha256=sha(models["ppo1"])) == 1.0
        assert metric(text, "model_info", sha256=sha(models["ppo0"])) is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e["result"] for e in events if e["event"] == "model_reload"] == ["failure", "success"]
    assert [e["sha256"] for e in events if e["event"] == "model_loaded"] == [sha(models["ppo0"]), sha(models["ppo1"])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "nowhere.onnx"], "policy: no such file 'nowhere.onnx'"),
        (["--policy", "zero", "--shadow-policy", "nowhere.pt"], "policy: no such file 'nowhere.pt'"),
    ],
)
def test_serve_refuses_a_model_it_cannot_load_with_exit_2(args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--num-envs", "2", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert "serving" not in p.stdout


# --------------------------------------------------------------------------- HTTP control endpoints
def http(url: str, method: str = "GET", body: bytes | None = None, auth: str | None = "u:pw") -> tuple[int, Any, Any]:
    """(status, JSON answer, headers) of one request."""
    import base64

    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text.decode()
        return e.code, answer, e.headers


@pytest.fixture
def web_config(tmp_path: Path) -> Path:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  u: {hashed}\n")
    return path


def test_control_endpoints_over_http(models: dict[str, Path], tmp_path: Path, web_config: Path) -> None:
    from neorl_industrial.exporter import start_http_server

    r = Registry()
    server = start_http_server(0, registry=r, web_config_file=web_config, control=True)
    base = server.url
    pause = json.dumps({"action": "pause", "reason": "inspection", "operator": "ana"}).encode()
    try:
        status, answer, _ = http(base + "interventions", "POST", pause)
        assert (status, answer) == (503, {"error": "the service is starting: no policy is serving yet"})
        served = tmp_path / "m.zip"
        served.write_bytes(models["ppo0"].read_bytes())
        with PolicyService(REACTOR, str(served), num_envs=2, registry=r, audit_log=str(tmp_path / "a.jsonl")) as s:
            server.attach_control(s.handle_control)
            stop = threading.Event()
            runner = threading.Thread(target=lambda: s.run(rate=200, should_stop=lambda: "x" if stop.is_set() else None))
            runner.start()
            try:
                assert http(base + "interventions", "POST", pause, auth=None)[0] == 401
                assert http(base + "interventions", "POST", pause, auth="u:wrong")[0] == 401
                status, answer, _ = http(base + "interventions", "POST", pause)
                assert status == 200 and answer["applied"]["action"] == "pause" and answer["applied"]["envs"] == [0, 1]
                assert s.paused == {"reason": "inspection", "operator": "ana"}
                status, answer, _ = http(base + "interventions")
                assert status == 200 and [i["action"] for i in answer["interventions"]] == ["pause"]
                for body, code, message in [
                    (b"{not json", 400, "invalid JSON: key must be a string at line 1 column 2"),
                    (b'{"action": "explode", "reason": "r", "operator": "o"}', 400, "action: must be one of"),
                    (b'{"action": "override", "reason": "r", "operator": "o", "envs": [2], "value": [0]}', 400, "envs: index 2 out of range 0..1"),
                    (b"[1, 2]", 400, "intervention: must be a JSON object, got list"),
                    (b'{"x": "' + b"a" * 70_000 + b'"}', 413, "the body exceeds 65536 bytes"),
                ]:
                    status, answer, _ = http(base + "interventions", "POST", body)
                    assert status == code and answer["error"].startswith(message), (status, answer)
                assert len(s.interventions) == 1  # nothing refused was applied
                status, answer, headers = http(base + "interventions", "PUT", pause)
                assert status == 405 and headers["Allow"] == "GET, POST"
                status, _, headers = http(base + "admin/reload")
                assert status == 405 and headers["Allow"] == "POST"
                status, answer, _ = http(base + "admin/reload", "POST", json.dumps({"path": str(tmp_path / "none.zip")}).encode())
                assert status == 422 and "no such file" in answer["reason"] and answer["serving"]["sha256"] == sha(models["ppo0"])
                status, answer, _ = http(base + "admin/reload", "POST", b'{"path": 3}')
                assert (status, answer["error"]) == (400, "path: must be a non-empty string, got 3")
                status, answer, _ = http(base + "admin/reload", "POST", json.dumps({"path": str(models["ppo1"]), "version": "2"}).encode())
                assert status == 200 and answer["serving"]["version"] == "2"
                assert http(base + "interventions", "POST", json.dumps({"action": "resume", "reason": "done", "operator": "ana"}).encode())[0] == 200
                text = r.generate_latest().decode()
                assert metric(text, "model_info", version="2", sha256=sha(models["ppo1"])) == 1.0
                assert metric(text, "human_interventions_total", reason="inspection") == 1.0
            finally:
                stop.set()
                runner.join(60)
                server.attach_control(None)
        assert http(base + "interventions")[0] == 503
    finally:
        server.stop()


def test_control_endpoints_are_off_unless_enabled_and_need_auth_beyond_loopback(web_config: Path) -> None:
    from neorl_industrial.exporter import start_http_server

    with start_http_server(0, registry=Registry()) as server:
        assert http(server.url + "interventions")[0] == 404
        assert http(server.url + "interventions", "POST", b"{}")[0] == 405  # only GET and HEAD exist
        with pytest.raises(ni.ConfigError, match=r"without control endpoints \(control=True\)"):
            server.attach_control(lambda *a: (200, "{}"))
    with pytest.raises(ni.ConfigError, match=r"admin: the admin and intervention endpoints listen on 0\.0\.0\.0:\d+, beyond loopback, only with authentication"):
        start_http_server(0, "0.0.0.0", registry=Registry(), control=True)
    with start_http_server(0, "0.0.0.0", registry=Registry(), control=True, web_config_file=web_config) as server:
        assert server.running
    p = subprocess.run([sys.executable, "-m", "neorl_industrial.cli", "serve", "--port", "0", "--host", "0.0.0.0", "--admin"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "beyond loopback, only with authentication" in p.stderr


def test_the_intervene_command_talks_to_serve(tmp_path: Path, web_config: Path) -> None:
    log = tmp_path / "audit.jsonl"
    secret = tmp_path / "pw.txt"
    secret.write_text("pw\n")
    proc, url = serve("--policy", "zero", "--admin", "--web-config", str(web_config), "--audit-log", str(log))
    auth = ["--user", "u", "--password-file", str(secret)]

    def intervene(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "neorl_industrial.cli", "intervene", url, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    try:
        p = intervene("override", "--envs", "1,3", "--value", "0.5", "--reason", "valve test", "--operator", "ana", *auth)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["applied"]["envs"] == [1, 3]
        p = intervene("pause", "--reason", "inspection", "--operator", "ana")  # no credentials
        assert p.returncode == 1 and "refused (401)" in p.stderr
        p = intervene("override", "--envs", "9", "--value", "0.5", "--reason", "r", *auth)
        assert p.returncode == 1 and "refused (400): envs: index 9 out of range 0..3" in p.stderr
        p = intervene("pause", *auth)
        assert p.returncode == 2 and "--reason: pause needs a reason" in p.stderr
        p = intervene("list", *auth)
        assert p.returncode == 0 and [i["operator"] for i in json.loads(p.stdout)["interventions"]] == ["ana"]
        p = intervene("shutdown", "--reason", "end of trial", "--operator", "bo", *auth)
        assert p.returncode == 0, p.stderr
        out, err = proc.communicate(timeout=60)  # the operator's shutdown ends the process
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "on operator shutdown" in out
    events = [json.loads(x) for x in log.read_text().splitlines() if '"human_intervention"' in x]
    assert [(e["action"], e["operator"], e["reason"]) for e in events] == [
        ("override", "ana", "valve test"), ("shutdown", "bo", "end of trial")]  # fmt: skip
    p = subprocess.run([sys.executable, "-m", "neorl_industrial.cli", "intervene", url, "list"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "cannot reach" in p.stderr


def test_the_docs_example_runs(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    block, drift = re.findall(r"```python\n(.*?)```", doc, re.S)
    # A free port and a short run; the rest as written.
    code = block.replace("start_http_server(8000)", "start_http_server(0)").replace("duration=60.0", "duration=0.3")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ppo.zip").write_bytes(models["ppo0"].read_bytes())
    exec(compile(code, "docs/serving.md", "exec"), {})
    events = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "model_loaded" and events[0]["framework"] == "sb3"
    scope: dict[str, Any] = {}
    exec(compile(drift, "docs/serving.md (drift)", "exec"), scope)
    levels = {f["feature"]: f["level"] for f in scope["monitor"].report()}
    assert levels["Tc"] == "significant"  # random actions are far from the expert's
