"""Pipeline-v0 against NeoRL-2's published transition rule, reimplemented here in plain Python.

The rule is ``neorl2/envs/pipline.py`` (polixir/NeoRL2): a 20-slot channel, the gate flow clipped
to [0, 200], the target redrawn from {50, 80, 110, 140} with probability 0.003 per step. The target
draw is the only randomness after the start, and the target is observed, so the reference takes the
start and the targets from the env's observations and must reproduce everything else exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import neorl_industrial as ni

ENV_ID = "Pipeline-v0"
TARGETS = (50.0, 80.0, 110.0, 140.0)


class NeoRL2Pipeline:
    """NeoRL-2's ``PipelineEnv.step`` without its random target draw (the target is given)."""

    channel_length, pipe_velocity, max_flow_rate, history = 100, 5, 200.0, 25

    def __init__(self, init_flow: float, target: float) -> None:
        slots = self.channel_length // self.pipe_velocity  # 20
        self.watergate_flow = init_flow
        self.water_flow_list = [init_flow] * slots
        self.obs_history_list = [init_flow] * (max(self.history, slots) + 1)
        self.action_history_list = [0.0] * (max(self.history, slots) + 1)
        self.target = target

    def observation(self) -> np.ndarray:
        downstream = self.water_flow_list[-1]
        obs = [downstream, self.target]
        obs += self.obs_history_list[1 : self.history + 1]
        obs += self.action_history_list[: self.history]
        return np.array(obs).astype(np.float32)

    def step(self, action: float, target: float) -> tuple[np.ndarray, float]:
        action = float(np.clip(action, -1.0, 1.0))
        self.target = target
        self.watergate_flow = float(np.clip(self.watergate_flow + action, 0.0, self.max_flow_rate))
        self.water_flow_list = [self.watergate_flow] + self.water_flow_list[:-1]
        downstream = self.water_flow_list[-1]
        self.action_history_list.insert(0, action)
        self.obs_history_list.insert(0, downstream)
        reward = ((200 - abs(downstream - target)) * 0.01) ** 2 - 3
        return self.observation(), reward


def actions(n: int, seed: int = 0) -> np.ndarray:
    """Random steps, long pushes to both limits and out-of-box values the core clips."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.2, 1.2, n)
    a[100:330] = 1.0  # drive the gate to 200
    a[400:700] = -1.0  # and down to 0
    return a.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transition_matches_neorl2_rule_step_by_step(seed: int) -> None:
    env = ni.make(ENV_ID)
    obs, info = env.reset(seed=seed)
    # The start: a full channel at one flow in [80, 120) (read at full precision from the gate
    # flow signal), no past actions.
    init_flow = info["constraints"]["gate_flow_max"]
    assert 80.0 <= init_flow < 120.0 and obs[1] in TARGETS
    ref = NeoRL2Pipeline(init_flow, float(obs[1]))
    np.testing.assert_array_equal(obs, ref.observation())
    saturated = {"gate_flow_min": 0, "gate_flow_max": 0}
    for k, a in enumerate(actions(1000, seed)):
        obs, r, term, trunc, info = env.step(np.array([a]))
        applied = float(info["action"][0])
        assert applied == pytest.approx(np.clip(a, -1, 1), abs=1e-7)
        want_obs, want_r = ref.step(applied, float(obs[1]))
        np.testing.assert_array_equal(obs, want_obs, err_msg=f"step {k}")
        assert r == pytest.approx(want_r, rel=1e-12, abs=1e-12), f"step {k}"
        assert info["constraints"]["flow_deviation"] == pytest.approx(abs(obs[0] - obs[1]), abs=1e-4)
        assert info["constraints"]["gate_flow_max"] == pytest.approx(ref.watergate_flow, abs=1e-9)
        for name in saturated:
            saturated[name] += info["violations"][name]
        assert not term
        assert trunc == (k == 999)
    assert saturated["gate_flow_min"] > 0 and saturated["gate_flow_max"] > 0


def test_a_gate_change_reaches_downstream_after_nineteen_steps() -> None:
    env = ni.make(ENV_ID)
    obs, _ = env.reset(seed=5)
    start = obs[0]
    flows = []
    for k in range(25):
        obs, *_ = env.step(np.array([1.0 if k == 0 else 0.0], dtype=np.float32))
        flows.append(obs[0])
    # Applied in step 0, seen downstream in step 19 (the gate flow is the newest of 20 slots).
    assert flows[:19] == [start] * 19
    assert flows[19:] == pytest.approx([start + 1.0] * 6)


def test_targets_are_redrawn_at_neorl2s_rate() -> None:
    # A redraw happens with probability 0.003 per step and picks one of four targets, the current
    # one included, so the target changes with probability 0.003 * 3 / 4 = 0.00225 per step.
    n, steps = 200, 999
    envs = ni.make_vec(ENV_ID, num_envs=n)
    obs, _ = envs.reset(seed=123)
    first = obs[:, 1].copy()
    assert set(np.unique(first)) <= set(TARGETS) and len(np.unique(first)) == 4
    changes = 0
    prev = first
    for _ in range(steps):
        obs, *_ = envs.step(np.zeros((n, 1), dtype=np.float32))
        changes += int(np.sum(obs[:, 1] != prev))
        prev = obs[:, 1].copy()
        assert set(np.unique(prev)) <= set(TARGETS)
    expected = 0.00225 * n * steps  # ~450, standard deviation ~21
    assert abs(changes - expected) < 0.25 * expected, changes
    envs.close()


def test_spec_and_normalised_score() -> None:
    sp = ni.spec(ENV_ID)
    assert len(sp["observations"]) == 52 and sp["horizon"] == 1000
    assert [(v["name"], v["low"], v["high"]) for v in sp["actions"]] == [("dq", -1.0, 1.0)]
    assert sp["observations"][0]["high"] == 200.0 and sp["observations"][-1]["low"] == -1.0
    assert sp["safe_action"] == [0.0]
    cons = {c["name"]: c for c in sp["constraints"]}
    assert (cons["gate_flow_min"]["kind"], cons["gate_flow_min"]["limit"]) == ("lower", 0.1)
    assert (cons["gate_flow_max"]["kind"], cons["gate_flow_max"]["limit"]) == ("upper", 199.9)
    assert (cons["flow_deviation"]["kind"], cons["flow_deviation"]["limit"]) == ("abs", 60.0)
    assert all(c["severity"] == "warning" for c in cons.values())


class PipelineSmith:
    """The documented baseline: act on the target minus the flow already on its way downstream."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        in_transit = obs[:, 0] + obs[:, 27:46].sum(axis=1)  # the gate flow: downstream in 19 steps
        return np.clip(obs[:, 1] - in_transit, -1.0, 1.0)[:, None].astype(np.float32)


def test_smith_predictor_baseline_beats_zero_and_random() -> None:
    def mean_return(policy: Callable[[np.ndarray], np.ndarray], episodes: int = 20) -> float:
        envs = ni.make_vec(ENV_ID, num_envs=episodes)
        obs, _ = envs.reset(seed=7)
        total = np.zeros(episodes)
        for _ in range(1000):
            obs, r, *_ = envs.step(policy(obs))
            total += r
        envs.close()
        return float(total.mean())

    rng = np.random.default_rng(0)
    smith = mean_return(PipelineSmith())
    zero = mean_return(lambda o: np.zeros((len(o), 1), np.float32))
    random = mean_return(lambda o: rng.uniform(-1, 1, (len(o), 1)).astype(np.float32))
    # Measured over 100 episodes: Smith 796, zero -116, random -197 (NeoRL-2's score range: -296..751).
    assert smith > 600 and smith > zero + 500 and smith > random + 500
