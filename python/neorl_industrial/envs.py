"""Single environments: :class:`gymnasium.Env` classes over the Rust core.

Each class documents its process the way Gymnasium's classic-control environments do. The physics,
the constraint checks and the random streams all live in the core; these classes only adapt the API.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from . import _core
from ._faults import load_faults
from ._render import TrendRecorder
from ._spaces import action_space, observation_space
from .safety import SafetyStats, load_constraints, open_audit_trail

__all__ = [
    "IndustrialEnv",
    "ChemicalReactorEnv",
    "IndustrialBenchmarkEnv",
    "FourTankEnv",
    "PipelineEnv",
    "PowerGridEnv",
    "HVACEnv",
    "pipeline_normalized_score",
]


def check_reset_options(options: Any, known: tuple[str, ...] = ()) -> dict[str, Any]:
    """``reset(options=...)``: ``None`` or a mapping whose keys are all in ``known``.

    An unknown key is an error rather than ignored: a misspelt ``reset_mask`` would otherwise reset
    every env of a batch without a word.
    """
    from collections.abc import Mapping

    from .exceptions import ConfigError

    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"options: must be a mapping or None, got {type(options).__name__}")
    unknown = [k for k in options if k not in known]
    if unknown:
        takes = f"takes only {', '.join(known)}" if known else "takes no reset options"
        raise ConfigError(f"options: unknown key {unknown[0]!r}; this environment {takes}")
    return dict(options)


def check_shield(shield: Any) -> str | None:
    """``shield``: ``None`` or a name (the core checks which names exist)."""
    if shield is not None and not isinstance(shield, str):
        from .exceptions import ConfigError

        raise ConfigError(f"shield: must be None, 'clip' or 'predictive', got {type(shield).__name__}")
    return shield


def _seed_value(seed: int | None) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        from .exceptions import ConfigError

        raise ConfigError(f"seed: must be a non-negative integer or None, got {seed!r}")
    return int(seed) % (1 << 64)


# Every environment class, by id: filled by ``IndustrialEnv.__init_subclass__`` as the classes below
# are defined (the ids come from the Rust registry; ``tests/test_registry.py`` checks both agree).
ENV_CLASSES: dict[str, type[IndustrialEnv]] = {}


class IndustrialEnv(gym.Env[np.ndarray, np.ndarray]):
    """Base class: one environment of the catalogue, stepped by the Rust core.

    Subclasses set ``env_id``. Constructor keyword arguments are the environment's options (see
    each subclass); unknown or invalid options raise :class:`~neorl_industrial.ConfigError`.

    Safety arguments, common to every environment:

    - ``constraints``: override, drop, add or replace the declared constraints, or load them from
      a YAML/TOML file (see :mod:`neorl_industrial.safety`).
    - ``shield``: ``None``, ``"clip"`` (actuator ramp limits) or ``"predictive"`` (also replaces an
      action that leads to a critical breach with the env's safe fallback).
    - ``audit_log``: a path or :class:`~neorl_industrial.safety.AuditTrail` receiving incidents.
    - ``registry`` / ``metrics``: the :class:`~neorl_industrial.metrics.Registry` recording steps,
      episodes, violations and latencies (default: the process-wide one); ``metrics=False`` records
      nothing.
    - ``faults``: faults to inject on a schedule (a list of mappings, or a JSON/YAML/TOML file;
      default none, the reference behaviour): sensor bias, noise, freeze and dropout on named
      observation variables, drift of a physical parameter (``spec()["parameters"]``), a stuck
      or rate-limited actuator. Sensor faults corrupt the observation only: the safety layer
      keeps checking the process's true values, as an independent safety system with its own
      sensors does. Actuator faults act after the shield (``info["action"]`` is what the
      actuator did). See ``docs/faults.md``.

    ``info`` of every step: ``action`` (physical, after the shield), ``clipped``, ``cost``,
    ``shield`` (the shield changed the action), ``constraints`` / ``margins`` / ``violations``
    (value, distance to the limit, active alarm, by constraint name) and, on an emergency
    shutdown, ``shutdown_reason``. The step that ends an episode (terminated or truncated) also
    has ``is_success``: whether the episode met the environment's success criterion (see each
    class's "Episode End" and ``spec()["success"]``; never after an emergency shutdown), the key
    Stable-Baselines3 reads for its success rate. ``env.safety`` keeps the running counts (steps, cost, incidents,
    shutdowns, shield interventions, alarm-free steps) and the most recent closed incidents.

    Observations saturate at the observation space's bounds, as a sensor at the end of its range
    does, so every observation lies in ``observation_space``; rewards and ``info["constraints"]``
    use the process values themselves (an IndustrialBenchmark consumption of 2710 reads 1000 in
    the observation and 2710 in ``info["constraints"]["consumption_high"]``).
    """

    env_id: ClassVar[str] = ""
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Registers a subclass that names an ``env_id`` of the Rust registry."""
        super().__init_subclass__(**kwargs)
        if not cls.env_id:
            return
        if cls.env_id not in _core.env_ids():
            raise TypeError(f"{cls.__name__}.env_id {cls.env_id!r} is not in the Rust registry")
        if cls.env_id in ENV_CLASSES:
            raise TypeError(f"{cls.__name__}: {cls.env_id!r} is already {ENV_CLASSES[cls.env_id].__name__}'s")
        ENV_CLASSES[cls.env_id] = cls

    def __init__(
        self,
        render_mode: str | None = None,
        constraints: Any = None,
        shield: str | None = None,
        audit_log: Any = None,
        registry: Any = None,
        metrics: bool = True,
        faults: Any = None,
        **options: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            from .exceptions import ConfigError

            raise ConfigError(
                f"render_mode: {render_mode!r} is not supported; choose from {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        self._options = dict(options)
        self._safety_args = {
            "constraints": constraints,
            "shield": shield,
            "audit_log": audit_log,
            "metrics": metrics,
            "faults": load_faults(faults),
        }
        self.audit_trail = open_audit_trail(audit_log)
        self._core = _core.CoreVecEnv(
            self.env_id,
            1,
            "disabled",
            None,
            self._options,
            load_constraints(constraints),
            check_shield(shield),
            self.audit_trail,
            _metrics_registry(registry, metrics),
            self._safety_args["faults"],
        )
        self.core_spec: dict[str, Any] = self._core.spec()
        self.observation_space = observation_space(self.core_spec)
        self.action_space = action_space(self.core_spec)
        self.horizon: int = int(self.core_spec["horizon"])
        self.constraint_names: list[str] = list(self._core.constraint_names)
        self.safety = SafetyStats(self.core_spec["constraints"], self._core.totals())
        """Running safety counts since the env was made (see :class:`~neorl_industrial.safety.SafetyStats`)."""
        # The native single-env face: it refuses a second thread itself (ConcurrentUseError).
        self._single = self._core.single()
        self._trend = TrendRecorder(self.core_spec) if render_mode == "rgb_array" else None
        if self._trend is None:
            # Nothing to do in Python around a step: bind it straight to the native call (no Python
            # frame per step; the class method below documents it and is what render mode uses).
            self.step = self._single.step  # type: ignore[method-assign]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``seed`` fixes the env's random stream (same seed, same trajectory).

        ``options`` must be ``None`` or empty: a single env takes no reset options, and an unknown key
        raises :class:`~neorl_industrial.ConfigError`.
        """
        check_reset_options(options)
        s = _seed_value(seed)
        # Gymnasium's np_random takes Python ints only (a numpy integer seed is valid here).
        super().reset(seed=None if seed is None else int(seed))
        obs, info = self._single.reset(s)
        if self._trend is not None:
            self._trend.reset(obs, info)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies a normalised action in [-1, 1]; out-of-range finite values are clipped (``info["clipped"]``).

        ``action``: shape ``(act_dim,)``, any real dtype (floats, integers; converted to float64), any
        memory layout, or a (nested) list of numbers. bool, complex, object, string and date dtypes,
        another shape, NaN or inf raise :class:`~neorl_industrial.InvalidActionError` and leave the env
        untouched.
        """
        out = self._single.step(action)
        if self._trend is not None:
            self._trend.step(out[0], out[4])
        return out

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """With ``render_mode="rgb_array"``: a trend plot of the episode so far (variables, set-points,
        constraint limits, steps with an active alarm marked) as an RGB array."""
        if self._trend is None:
            return None
        return self._trend.render()

    def get_dataset(
        self, quality: str = "expert", n_transitions: int = 100_000, seed: int = 0, **kwargs: Any
    ) -> dict[str, Any]:
        """An offline dataset of this environment (same options) in D4RL's format; see
        :func:`neorl_industrial.datasets.generate`."""
        from .datasets import generate

        return generate(
            self.env_id, quality, n_transitions=n_transitions, seed=seed, **self._options, **kwargs
        )

    # Pickling keeps the full state: process, hidden variables, RNG stream, step count, episode
    # return, alarms (on-delay counts, open incidents) and the rendered episode's history.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "options": self._options,
            "safety": picklable_safety_args(self._safety_args),
            "render_mode": self.render_mode,
            "snapshot": self._core.snapshot(),
            "np_random": self._np_random,
            "trend": (self._trend.obs, self._trend.active) if self._trend is not None else None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(render_mode=state["render_mode"], **state["safety"], **state["options"])  # type: ignore[misc]
        restore_snapshot(self._core, state["snapshot"])
        self._np_random = state["np_random"]
        if self._trend is not None and state.get("trend") is not None:
            self._trend.obs, self._trend.active = state["trend"]


class ChemicalReactorEnv(IndustrialEnv):
    """Exothermic continuous stirred-tank reactor (CSTR): keep a concentration on its set-point.

    ## Description
    An irreversible exothermic reaction A -> B runs in a cooled, continuously fed tank (Seborg, Edgar,
    Mellichamp & Doyle, *Process Dynamics and Control*, Example 2.5; pc-gym's ``cstr`` model). The agent
    sets the coolant temperature ``Tc``. Warmer coolant speeds the reaction and lowers the
    concentration of A; above about 304 K the heat released outruns the cooling and the reactor runs
    away thermally. The episode follows a set-point schedule for ``Ca``.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``, mapped linearly to ``Tc`` in [290, 310] K:
    ``Tc = 290 + (a + 1) / 2 * 20``. Finite values outside [-1, 1] are clipped (counted in
    ``info["clipped"]``); NaN, inf or a wrong shape raise :class:`~neorl_industrial.InvalidActionError`.

    ## Observation Space
    ``Box(float32)`` of shape (3,):

    | Num | Observation  | Unit  | Min | Max |
    |-----|--------------|-------|-----|-----|
    | 0   | Ca           | mol/L | 0   | 1   |
    | 1   | T            | K     | 200 | 600 |
    | 2   | Ca set-point | mol/L | 0   | 1   |

    The set-point shown is the one the next action is scored against.

    ## Rewards
    ``-1000 * (Ca - Ca_setpoint)^2`` after each step (pc-gym's benchmark scale).

    ## Starting State
    ``[Ca, T] = [0.8 mol/L, 330 K]`` with coolant at 300 K; ``x0_spread`` perturbs it.

    ## Episode End
    - Termination: emergency shutdown when a critical constraint is violated (``T > 350 K``,
      thermal runaway); ``info["shutdown_reason"]`` names it.
    - Truncation: after ``horizon`` steps (default 60, i.e. 26 min of process time).
    - Success (``info["is_success"]`` on the ending step): Ca within 0.005 mol/L of its set-point on
      each of the last 10 steps, and no emergency shutdown (a shutdown is never a success). The PI
      baseline ends 0.003 mol/L away, the zero policy 0.007.

    ## Constraints
    ``temperature_high`` T <= 331 K (warning), ``thermal_runaway`` T <= 350 K (critical),
    ``coolant_ramp`` |dTc| <= 5 K per step (warning). Current values are in ``info["constraints"]``.

    ## Arguments
    ``gymnasium.make("neorl_industrial/ChemicalReactor-v0", horizon=60, setpoints=[0.85, 0.90, 0.87],
    x0_spread=0.0, noise=0.0)``

    - ``horizon``: steps per episode; the set-point pieces split it evenly.
    - ``setpoints``: Ca set-points in mol/L, each held for an equal share of the episode.
    - ``x0_spread``: relative spread of the initial Ca (and 5% of it on T), uniform, in [0, 0.2].
    - ``noise``: relative standard deviation of Gaussian measurement noise on Ca and T, in [0, 0.5].
    - ``faults``: see :class:`IndustrialEnv` and ``docs/faults.md``. Parameters a ``parameter_drift``
      fault can move: ``UA`` (jacket heat transfer coefficient times area, 5e4 J/(min K); fouling
      lowers it) and ``k0`` (pre-exponential factor, 7.2e10 1/min; catalyst decay lowers it), each
      within 0.1 to 2 times its nominal value.

    ## Integration
    Dormand–Prince 5(4) with per-env adaptive steps at 3e-9 tolerance: every step matches the
    1e-12 reference solution within 1e-6 relative, runaway included.

    ## Version History
    - v0: Initial version.
    """

    env_id = "ChemicalReactor-v0"


class IndustrialBenchmarkEnv(IndustrialEnv):
    """The Siemens Industrial Benchmark: a stochastic, partially observable industrial plant.

    ## Description
    A faithful port of ``industrial-benchmark-python`` 2.0 (Hein et al., "A benchmark environment
    motivated by industrial control problems", IEEE SSCI 2017): three steerings (velocity, gain,
    shift) act on hidden fatigue dynamics, a delayed operational cost and a "goldstone"
    miscalibration landscape; consumption is noisy. The step order and equations are the original's;
    the random draws come from the env's own stream.

    ## Action Space
    ``Box(-1, 1, (3,), float32)``: changes of velocity (x1), gain (x10) and shift (x ~5.75) per step.

    ## Observation Space
    ``Box(float32)`` of shape (6,):

    | Num | Observation     | Min | Max  |
    |-----|-----------------|-----|------|
    | 0   | p (set-point)   | 0   | 100  |
    | 1   | v (velocity)    | 0   | 100  |
    | 2   | g (gain)        | 0   | 100  |
    | 3   | h (shift)       | 0   | 100  |
    | 4   | f (fatigue)     | 0   | 1000 |
    | 5   | c (consumption) | 0   | 1000 |

    ## Rewards
    ``-(3 f + c)``.

    ## Starting State
    ``v = g = h = 50``, then one zero-action step, as the original's constructor does.

    ## Episode End
    - Truncation: after ``horizon`` steps (default 1000); the plant has no terminal state.
    - Success (``info["is_success"]`` on the ending step): the mean cost ``3 f + c`` over the last
      100 steps is at most 200 (at ``p = 70`` the regulator baseline ends at 182-190, the zero
      policy at 207-212).

    ## Constraints
    ``fatigue_high`` (``f <= 100``) and ``consumption_high`` (``c <= 550``), warnings, chosen so
    that at ``p = 70`` a uniform-random policy violates them in a few percent of steps and the zero
    policy practically never (1000-step episodes, counted after each step):

    | policy         | fatigue > 100                | consumption > 550            |
    |----------------|------------------------------|------------------------------|
    | uniform random | 3.8% of steps (1000 seeds)   | 3.6% of steps (1000 seeds)   |
    | zero           | 0.0% (largest ``f`` seen 46) | 0.0% (largest ``c`` seen 142) |

    The original Python gives 3.3% / 3.0% (random) and 0.0% (zero) over 100 seeds; a test re-measures
    the random and zero rates over 20 seeds. Limits, severities and on-delays are in
    ``env.core_spec["constraints"]`` and the catalogue (``neorl-industrial envs``).

    ## Arguments
    ``gymnasium.make("neorl_industrial/IndustrialBenchmark-v0", setpoint=70, stationary_setpoint=True,
    horizon=1000)``

    ## Version History
    - v0: Initial version.
    """

    env_id = "IndustrialBenchmark-v0"


def _metrics_registry(registry: Any, metrics: bool) -> Any:
    """The native registry an env records into (``None`` with ``metrics=False``)."""
    if not metrics:
        return None
    from .metrics import Registry, _core_of

    if registry is not None and not isinstance(registry, Registry):
        from .exceptions import ConfigError

        raise ConfigError(
            f"registry: must be a neorl_industrial.metrics.Registry, got {type(registry).__name__}"
        )
    return _core_of(registry)


SNAPSHOT_PARTS = 9  # the arrays of ``CoreVecEnv.snapshot``


def restore_snapshot(core: Any, snapshot: Any) -> None:
    """Restores a core's state from the tuple its ``snapshot`` returned (a pickle's); a tuple of
    another length (a pickle from another version) is a :class:`StateError`."""
    from .exceptions import StateError

    if not isinstance(snapshot, (tuple, list)) or len(snapshot) != SNAPSHOT_PARTS:
        got = f"{len(snapshot)} parts" if isinstance(snapshot, (tuple, list)) else type(snapshot).__name__
        raise StateError(
            f"saved state has {got}, expected {SNAPSHOT_PARTS} "
            f"(pickled by another version of neorl_industrial?)"
        )
    core.restore(*snapshot)


def picklable_safety_args(args: dict[str, Any]) -> dict[str, Any]:
    """Safety arguments for a pickle: an audit trail object stays with its process; a path travels."""
    log = args.get("audit_log")
    return {**args, "audit_log": log if isinstance(log, (str, os.PathLike)) else None}


class FourTankEnv(IndustrialEnv):
    """Quadruple-tank process: keep two upper tank levels on their set-points with two pumps.

    ## Description
    Four interconnected water tanks (Johansson, "The quadruple-tank process", IEEE TCST 8(3), 2000;
    pc-gym's ``four_tank`` parameters). Pump 1 sends 20% of its flow to lower tank 1 and 80% to upper
    tank 4; pump 2 sends 20% to lower tank 2 and 80% to upper tank 3. The upper tanks drain into the
    lower ones through square-root (Torricelli) outlets. The task is to track set-points on the upper
    levels h3 and h4, which change half-way through the episode.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``, mapped linearly to the pump voltages v1, v2 in [0.1, 10] V:
    ``v = 0.1 + (a + 1) / 2 * 9.9``. Before the first action both pumps run at 5.05 V.

    ## Observation Space
    ``Box(float32)`` of shape (6,):

    | Num | Observation    | Unit | Min | Max |
    |-----|----------------|------|-----|-----|
    | 0   | h1             | m    | 0   | 1   |
    | 1   | h2             | m    | 0   | 1   |
    | 2   | h3             | m    | 0   | 1   |
    | 3   | h4             | m    | 0   | 1   |
    | 4   | h3 set-point   | m    | 0   | 0.6 |
    | 5   | h4 set-point   | m    | 0   | 0.6 |

    The set-points shown are the ones the next action is scored against: (0.5, 0.2) m for the first
    half of the episode, (0.1, 0.3) m for the second.

    ## Rewards
    ``-[((h3 - sp3)/0.6)^2 + ((h4 - sp4)/0.6)^2 + 0.1 ((dv1/9.9)^2 + (dv2/9.9)^2)]`` after each step,
    where dv is the change of each pump voltage since the previous step.

    ## Starting State
    ``[h1, h2, h3, h4] = [0.141, 0.112, 0.072, 0.42] m`` (pc-gym's default); ``x0_spread`` perturbs it.

    ## Episode End
    - Termination: emergency shutdown when a tank overflows (level > 0.6 m, critical);
      ``info["shutdown_reason"]`` names the tank.
    - Truncation: after ``horizon`` steps (default 60, i.e. 1000 s of process time, 16.7 s per step).
    - Success (``info["is_success"]`` on the ending step): h3 and h4 each within 0.02 m of their
      set-points at the end of the episode, and no emergency shutdown.

    ## Constraints
    ``tank1_overflow`` ... ``tank4_overflow`` h <= 0.6 m (critical), ``tank1_low``/``tank2_low``
    h >= 0.05 m (warning), ``pump1_ramp``/``pump2_ramp`` |dv| <= 2 V per step (warning). The safe
    fallback action is both pumps at minimum.

    ## Arguments
    ``gymnasium.make("neorl_industrial/FourTank-v0", horizon=60, x0_spread=0.0, noise=0.0)``

    - ``horizon``: steps per episode; the set-points switch at ``horizon // 2``.
    - ``x0_spread``: relative uniform spread of each initial level, in [0, 0.3].
    - ``noise``: relative standard deviation of Gaussian measurement noise on the levels, in [0, 0.2].
    - ``faults``: see :class:`IndustrialEnv` and ``docs/faults.md``. Parameters a ``parameter_drift``
      fault can move: ``k1``, ``k2`` (pump gains, 8.5e-4 and 9.5e-4 m³/(s V); wear lowers them),
      within 0.1 to 2 times their nominal values.

    ## Integration
    Dormand–Prince 5(4), adaptive, rtol 1e-9 / atol 1e-12: every step matches a 1e-12 DOP853
    solution within 1e-7 relative, nearly empty tanks included.

    ## Version History
    - v0: Initial version.
    """

    env_id = "FourTank-v0"


class PipelineEnv(IndustrialEnv):
    """Water pipeline with a transport delay: steer the downstream flow onto a switching target.

    ## Description
    A port of NeoRL-2's ``Pipeline`` task. Water enters a 100 m channel through a gate and travels at
    5 m/s, so the channel holds 20 slugs and a change at the gate reaches the downstream end 19 steps
    after the step that made it. The agent changes the gate flow by at most 1 per step; the gate flow
    is clipped to [0, 200]. The downstream target is drawn from {50, 80, 110, 140}; each step a new
    target is drawn with probability 0.003 (the target changes with probability 0.00225, about twice
    per episode).

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: the change of the gate flow this step.

    ## Observation Space
    ``Box(float32)`` of shape (52,), NeoRL-2's layout:

    | Num   | Observation                                        | Min | Max |
    |-------|----------------------------------------------------|-----|-----|
    | 0     | downstream flow                                    | 0   | 200 |
    | 1     | target                                             | 0   | 200 |
    | 2-26  | downstream flow 1..25 steps ago (newest first)     | 0   | 200 |
    | 27-51 | the last 25 actions, this step's first             | -1  | 1   |

    ## Rewards
    ``((200 - |flow - target|) * 0.01)^2 - 3``: 1 on target, -2.75 at the largest possible deviation.
    :func:`pipeline_normalized_score` maps an episode return to NeoRL-2's score (0 at -296, 100 at 751).

    ## Starting State
    The whole channel at one flow drawn uniformly from [80, 120), no past actions, a random target.

    ## Episode End
    - Truncation: after ``horizon`` steps (default 1000). No termination: no constraint is critical.
    - Success (``info["is_success"]`` on the ending step): the downstream flow within 5 of its
      target at the end of the episode (a target switch in the last 20 steps cannot be met).

    ## Constraints
    ``gate_flow_min`` gate flow >= 0.1 and ``gate_flow_max`` gate flow <= 199.9 (the gate saturates,
    warning), ``flow_deviation`` |flow - target| > 60 held for 10 steps (warning, an on-delay of 9).
    A target switch of more than 60 keeps the deviation beyond 60 for at least 19 steps whatever the
    agent does. The safe fallback action holds the gate.

    ## Arguments
    ``gymnasium.make("neorl_industrial/Pipeline-v0", horizon=1000)``

    ## Version History
    - v0: Initial version.
    """

    env_id = "Pipeline-v0"


class PowerGridEnv(IndustrialEnv):
    """Two-area load-frequency control: be the AGC that restores frequency and tie-line flow after step loads.

    ## Description
    Two equal control areas, each a non-reheat steam unit with a droop governor, exchange power over one
    tie line (linearised two-area model of Kundur, *Power System Stability and Control*, 1994, §11.1;
    Bevrani, *Robust Power System Frequency Control*, 2014, ch. 2-3; the Fosha & Elgerd (1970) parameter
    set: f0 = 60 Hz, H = 5 s, D = 1/120 p.u./Hz, R = 2.4 Hz/p.u., Tg = 0.08 s, Tt = 0.3 s,
    2πT12 = 0.545 p.u./Hz). Step loads hit a random area at random seconds. Governor droop stops the
    frequency excursion but leaves an offset df = -ΣdPL/(B1 + B2), B = D + 1/R = 0.425 p.u./Hz; every
    second the agent moves both areas' set-points so each area covers its own load again
    (ACE_i = dPtie_i + B df_i -> 0).

    ## Action Space
    ``Box(-1, 1, (2,), float32)`` mapped linearly to dPref1, dPref2 in [-0.12, 0.12] p.u. (each area's
    regulating reserve).

    ## Observation Space
    ``Box(float32)`` of shape (9,):

    | Num | Observation                  | Unit | Min   | Max  |
    |-----|------------------------------|------|-------|------|
    | 0   | df1 frequency deviation      | Hz   | -3    | 3    |
    | 1   | df2                          | Hz   | -3    | 3    |
    | 2   | dPtie (area 1 -> 2)          | p.u. | -1    | 1    |
    | 3   | ACE1                         | p.u. | -1.5  | 1.5  |
    | 4   | ACE2                         | p.u. | -1.5  | 1.5  |
    | 5   | dPm1 turbine power deviation | p.u. | -1    | 1    |
    | 6   | dPm2                         | p.u. | -1    | 1    |
    | 7   | dPref1 in force              | p.u. | -0.12 | 0.12 |
    | 8   | dPref2 in force              | p.u. | -0.12 | 0.12 |

    0-6 are measurements (see ``noise``; ACE is computed from them); the loads are not observed.

    ## Rewards
    ``-(100 (ACE1² + ACE2²) + 10 (ΔdPref1² + ΔdPref2²))`` per step (true ACE, p.u.): an uncorrected
    0.1 p.u. load step costs 1 per step. An emergency shutdown costs 300 once (without it, tripping
    the grid would end the costly episode early and pay).

    ## Starting State
    The scheduled operating point: all deviations and set-points 0; loads = ``initial_load``.

    ## Episode End
    - Termination: emergency shutdown when |df1| or |df2| exceeds 0.5 Hz (``load_shedding_1/2``, critical).
    - Truncation: after ``horizon`` steps (default 300 = 5 min).
    - Success (``info["is_success"]`` on the ending step): |df1| and |df2| within 0.02 Hz at the
      end of the episode (nominal frequency restored: AGC's job, droop alone leaves an offset), and
      no emergency shutdown.

    ## Constraints
    ``frequency_1/2`` |df| <= 0.2 Hz (warning), ``load_shedding_1/2`` |df| <= 0.5 Hz (critical),
    ``tie_line`` |dPtie| <= 0.1 p.u. (warning), ``agc_ramp_1/2`` |ΔdPref| <= 0.02 p.u. per step
    (warning; ``shield="clip"`` enforces it). Safe fallback: [0, 0] (AGC suspended, droop only).

    ## Arguments
    ``gymnasium.make("neorl_industrial/PowerGrid-v0", horizon=300, load_step=0.1, disturbance_rate=0.02,
    noise=0.0, initial_load=[0.0, 0.0])``

    - ``horizon``: steps (seconds) per episode.
    - ``load_step``: new load levels are uniform in ±load_step p.u., in [0, 0.12]; 0 switches random
      disturbances off.
    - ``disturbance_rate``: probability per step that one area takes a new load level, in [0, 1].
    - ``noise``: standard deviation of Gaussian measurement noise on df (Hz), dPtie and dPm (p.u.),
      clipped at 4σ, in [0, 0.05].
    - ``initial_load``: [dPL1, dPL2] in p.u. from the start of the episode, each in [-0.12, 0.12].
    - ``faults``: see :class:`IndustrialEnv` and ``docs/faults.md``. The parameter a
      ``parameter_drift`` fault can move: ``H`` (inertia constant of both areas, 5 s; less
      synchronous generation online lowers it), within 0.5 to 10 s.

    ## Integration
    Dormand–Prince 5(4) at 1e-10 inside each 1 s step: within 3e-10 of a 1e-12 DOP853 solution over an
    episode.

    ## Version History
    - v0: Initial version.
    """

    env_id = "PowerGrid-v0"


class HVACEnv(IndustrialEnv):
    """Three-zone office floor: heat or cool each zone for comfortable occupants at the lowest energy bill.

    ## Description
    Three side-by-side 40 m² office zones (south, middle, north), each an air node and a thermal-mass
    node (the two-state model structure of Bacher & Madsen, Energy and Buildings 43(7), 2011) with
    parameters from ISO 13790:2008 (medium mass class) and the ASHRAE Handbook Fundamentals 2017,
    coupled through partitions and to a daily-sinusoid outdoor temperature, facade sun and
    office-hour internal gains. The plant heats only below 15 °C outdoors and cools only above 12 °C
    (heating limit, chiller lockout); a locked-out command delivers and costs nothing. 15-min steps,
    exact (matrix-exponential) solution with weather held over each step. Episodes start on a Monday
    at 00:00.

    ## Action Space
    ``Box(-1, 1, (3,), float32)`` mapped to heating (+) / cooling (-) power P_zone_1..3 in [-2.5, 2.5] kW.

    ## Observation Space
    ``Box(float32)`` of shape (9,):

    | Num | Observation                      | Unit    | Min              | Max              |
    |-----|----------------------------------|---------|------------------|------------------|
    | 0-2 | zone air temperatures (measured) | °C      | -2 (summer -25)  | 82 (summer 64)   |
    | 3   | outdoor temperature              | °C      | mean - amplitude | mean + amplitude |
    | 4   | solar irradiance on the facade   | kW/m²   | 0                | peak             |
    | 5   | occupied now                     | -       | 0                | 1                |
    | 6   | price of the next step           | EUR/kWh | 0.12             | 0.30             |
    | 7   | hour of day                      | h       | 0                | 24               |
    | 8   | workday (Mon-Fri)                | -       | 0                | 1                |

    Temperature bounds depend on the options (reachable extremes of the monotone system); the mass
    temperatures are hidden.

    ## Rewards
    ``-(10 × energy bill [EUR] + Σ_zones dev²)``, where the bill uses COP 3.5 (heating) / 3.0 (cooling)
    and a time-of-use tariff (0.30 EUR/kWh workdays 08:00-20:00, else 0.12), and dev is the distance
    outside 20-24 °C while occupied (K). An emergency shutdown costs 2000 once.

    ## Starting State
    All air and mass temperatures 20 °C ± ``x0_spread`` (uniform, per zone), no power applied.

    ## Episode End
    - Termination: emergency shutdown when a zone leaves 12-30 °C (``too_cold_zone_i`` /
      ``overheating_zone_i``, critical).
    - Truncation: after ``horizon`` steps (default 96 × ``days``).
    - Success (``info["is_success"]`` on the ending step): every zone within 20-24 °C widened by
      0.5 K on at least 0.9 of the occupied steps (an episode without occupied time counts as
      kept), and no emergency shutdown.

    ## Constraints
    ``comfort_zone_1..3`` comfort deviation <= 0.5 K (warning), ``overheating_zone_1..3`` T <= 30 °C and
    ``too_cold_zone_1..3`` T >= 12 °C (critical), ``site_power`` Σ|P| <= 6 kW (warning). Safe
    fallback: 0.75 kW heating per zone (+0.3) in winter, 0.75 kW cooling (-0.3) in summer.

    ## Arguments
    ``gymnasium.make("neorl_industrial/HVAC-v0", days=1, summer=False, outdoor_mean=5.0,
    outdoor_amplitude=6.0, solar_peak=0.4, internal_gains=1.0, x0_spread=1.0, noise=0.0)``

    - ``days``: episode length in days (1-366; 7 = a working week and weekend); ``horizon`` overrides
      it in steps.
    - ``summer``: summer defaults (22 ± 6 °C, sun 05-21 h at 0.5 kW/m², cooling fallback) instead of
      winter (5 ± 6 °C, 08-16 h, 0.4).
    - ``outdoor_mean``, ``outdoor_amplitude``, ``solar_peak``: override the season's climate.
    - ``internal_gains``: scale of the occupancy gains (0.6/0.9/0.6 kW), in [0, 3].
    - ``x0_spread``: initial temperature spread (K), in [0, 5]. ``noise``: measurement noise on zone
      temperatures (K, clipped at 4σ), in [0, 1].

    ## Version History
    - v0: Initial version.
    """

    env_id = "HVAC-v0"


def pipeline_normalized_score(episode_return: float) -> float:
    """NeoRL-2's normalised score of a Pipeline-v0 episode return: 0 at -296, 100 at 751."""
    return (episode_return + 296.0) / (751.0 + 296.0) * 100.0
