"""Loading a policy from where users keep it: a built-in name, a Stable-Baselines3 ``.zip``, a
d3rlpy model (``.d3``), a TorchScript file (``.pt``), an ONNX file (``.onnx``) or
``package.module:attribute`` (a callable, or a factory returning one).

Every loaded policy maps a batch of observations ``(num_envs, obs_dim)`` to a batch of normalised
actions; :func:`check_actions` is the one judge of what it returns (shape, finiteness).
Frameworks are imported only when a file needs them; a missing one is a
:class:`~neorl_industrial.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ConfigError
from .policies import POLICIES, make_policy

__all__ = ["LoadedPolicy", "PolicyOutputError", "as_numpy", "check_actions", "load_policy"]

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SUFFIXES = {".zip": "sb3", ".d3": "d3rlpy", ".pt": "torchscript", ".pth": "torchscript", ".onnx": "onnx"}
_INSTALL = {
    "sb3": "pip install 'neorl-industrial[sb3]'",
    "torchscript": "pip install 'neorl-industrial[torch]'",
    "onnx": "pip install 'neorl-industrial[onnx]'",
    # d3rlpy 2.8 pins Gymnasium 1.0.0 and imports gym: installed beside this package's Gymnasium.
    "d3rlpy": "pip install --no-deps d3rlpy==2.8.1 gym==0.26.2 gym-notices dataclasses-json marshmallow "
    "typing-inspect structlog colorama",
}
_MODULES = {"sb3": "stable-baselines3", "torchscript": "torch", "d3rlpy": "d3rlpy", "onnx": "onnxruntime"}


class PolicyOutputError(ValueError):
    """A policy's answer that cannot be sent to a plant: ``kind`` is ``shape`` or ``non_finite``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class LoadedPolicy:
    """A policy ready to act on batches, and what identifies it."""

    act: Callable[[np.ndarray], Any]
    """``act(obs[num_envs, obs_dim] float32) -> actions``."""
    spec: str
    """What the user asked for (a built-in name, a path or ``module:attribute``)."""
    name: str
    version: str
    framework: str
    sha256: str = ""
    episode_end: Callable[[np.ndarray], None] | None = field(default=None, repr=False)

    def identity(self) -> dict[str, str]:
        """``name``, ``version``, ``framework``, ``sha256``: the labels of ``model_info``."""
        return {
            "name": self.name,
            "version": self.version,
            "framework": self.framework,
            "sha256": self.sha256,
        }


def as_numpy(answer: Any) -> Any:
    """A torch tensor as a NumPy array (on the CPU, detached); anything else as it is."""
    if type(answer) is not np.ndarray and hasattr(answer, "detach") and hasattr(answer, "cpu"):
        return answer.detach().cpu().numpy()
    return answer


def check_actions(actions: Any, num_envs: int, act_dim: int) -> np.ndarray:
    """A policy's answer as ``(num_envs, act_dim)`` float32, or :class:`PolicyOutputError`.

    Accepted: any real array-like of that shape, or ``(num_envs,)`` when ``act_dim`` is 1 (a torch
    tensor is read through ``numpy()``). Everything else (another shape, NaN, inf, a non-numeric
    answer) is refused: nothing of it may reach an actuator.
    """
    actions = as_numpy(actions)
    if type(actions) is np.ndarray and actions.dtype == np.float32 and actions.shape == (num_envs, act_dim):
        if not np.isfinite(actions).all():  # the common case, checked in one pass
            _refuse_non_finite(actions)
        return actions
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise PolicyOutputError(
            "shape", f"the policy returned {type(actions).__name__}, not numbers: {e}"
        ) from None
    if a.shape == (num_envs,) and act_dim == 1:
        a = a.reshape(num_envs, 1)
    if a.shape != (num_envs, act_dim):
        raise PolicyOutputError(
            "shape",
            f"the policy returned shape {a.shape} for {num_envs} observations, expected ({num_envs}, {act_dim})",
        )
    if not np.isfinite(a).all():
        _refuse_non_finite(a)
    return a.astype(np.float32)


def _refuse_non_finite(a: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(a))[0]
    raise PolicyOutputError(
        "non_finite", f"the policy returned {a[tuple(bad)]} for env {bad[0]}, action {bad[1]}"
    )


def load_policy(
    spec: str,
    *,
    env_id: str,
    num_envs: int,
    obs_dim: int,
    act_dim: int,
    seed: int | None = 0,
    version: str | None = None,
) -> LoadedPolicy:
    """Loads ``spec`` for batches of ``num_envs`` observations of ``env_id``.

    Args:
        spec: ``pid``, ``random``, ``zero``; a path to a ``.zip`` (Stable-Baselines3), ``.d3``
            (d3rlpy), ``.pt``/``.pth`` (TorchScript) or ``.onnx`` file; or ``module:attribute``.
        version: The model's version (default: from the file's metadata, else the first 12
            digits of its SHA-256).

    Raises:
        ConfigError: a missing or unreadable file, one of another kind than its name says, a
            framework that is not installed (naming the extra), an unknown built-in.
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"policy: must be a name, a path or module:attribute, got {spec!r}")
    if spec in POLICIES:
        pol = make_policy(spec, env_id, num_envs, act_dim, seed=seed)
        from . import __version__

        return LoadedPolicy(pol, spec, spec, version or __version__, "builtin", "", pol.episode_end)
    path = Path(spec)
    if not path.exists() and _CALLABLE.match(spec):
        return _python(spec, version)
    if not path.is_file():
        raise ConfigError(f"policy: no such file {spec!r} (and not a built-in: {', '.join(POLICIES)})")
    framework = _SUFFIXES.get(path.suffix.lower())
    if framework is None:
        raise ConfigError(
            f"policy: cannot tell what {spec!r} holds from its name; expected .zip (Stable-Baselines3), "
            ".d3 (d3rlpy), .pt or .pth (TorchScript) or .onnx"
        )
    digest = _sha256(path)
    try:
        act, meta_version = _LOADERS[framework](path, obs_dim, act_dim)
    except ImportError as e:
        raise ConfigError(
            f"policy: {spec} needs {_MODULES[framework]} ({e}); install it with {_INSTALL[framework]}"
        ) from None
    except ConfigError:
        raise
    except Exception as e:  # corrupt or foreign files fail in many framework-specific ways
        raise ConfigError(f"policy: cannot load {spec} as {framework}: {type(e).__name__}: {e}") from None
    return LoadedPolicy(act, spec, path.stem, version or meta_version or digest[:12], framework, digest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sizes(what: str, obs_shape: Any, act_shape: Any, obs_dim: int, act_dim: int) -> None:
    if tuple(obs_shape) != (obs_dim,) or tuple(act_shape) != (act_dim,):
        raise ConfigError(
            f"policy: {what} takes observations {tuple(obs_shape)} and gives actions {tuple(act_shape)}; "
            f"this env has ({obs_dim},) and ({act_dim},)"
        )


# --------------------------------------------------------------------------- Stable-Baselines3
def _sb3_algorithm(path: Path) -> str:
    """The algorithm that saved an SB3 archive, from its ``data`` member."""
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ConfigError(f"policy: {path} is not a Stable-Baselines3 archive ({e})") from None
    module = str(data.get("policy_class", {}).get("__module__", ""))
    for algo in ("ppo", "sac", "td3", "ddpg", "a2c", "dqn"):
        if f".{algo}." in module:
            return algo.upper()
    if module.endswith("common.policies"):  # PPO and A2C share the actor-critic policies
        return "PPO" if "clip_range" in data else "A2C"
    raise ConfigError(f"policy: {path}: unknown Stable-Baselines3 policy class module {module!r}")


def _sb3(path: Path, obs_dim: int, act_dim: int) -> tuple[Callable[[np.ndarray], Any], str]:
    algo = _sb3_algorithm(path)
    import stable_baselines3

    model = getattr(stable_baselines3, algo).load(str(path), device="cpu")
    _check_sizes(
        f"the {algo} model", model.observation_space.shape, model.action_space.shape or (), obs_dim, act_dim
    )

    def act(obs: np.ndarray) -> Any:
        return model.predict(obs, deterministic=True)[0]

    return act, ""


# --------------------------------------------------------------------------- torch and d3rlpy
def _torchscript(path: Path, obs_dim: int, act_dim: int) -> tuple[Callable[[np.ndarray], Any], str]:
    import torch

    extra = {"version": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    module.eval()

    def act(obs: np.ndarray) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)))

    version = extra["version"]
    return act, version.decode() if isinstance(version, bytes) else str(version)


def _d3rlpy(path: Path, obs_dim: int, act_dim: int) -> tuple[Callable[[np.ndarray], Any], str]:
    import d3rlpy

    algo = d3rlpy.load_learnable(str(path), device=False)
    _check_sizes("the d3rlpy model", algo.observation_shape, (algo.action_size,), obs_dim, act_dim)
    return algo.predict, ""


# --------------------------------------------------------------------------- ONNX
def _onnx(path: Path, obs_dim: int, act_dim: int) -> tuple[Callable[[np.ndarray], Any], str]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the batch's env threads are busy; inference of a small MLP is not
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ConfigError(f"policy: {path} takes {len(inputs)} inputs; a policy takes one (the observations)")
    shape = inputs[0].shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != obs_dim):
        raise ConfigError(
            f"policy: {path} takes input of shape {shape}; this env's observations are (batch, {obs_dim})"
        )
    name = inputs[0].name
    meta = session.get_modelmeta()
    # model_version is an int64 that exporters leave at 0, read back as 0 or int64's maximum.
    unset = meta.version in (0, 2**63 - 1)
    version = meta.custom_metadata_map.get("version") or ("" if unset else str(meta.version))

    def act(obs: np.ndarray) -> Any:
        return session.run(None, {name: np.ascontiguousarray(obs, dtype=np.float32)})[0]

    return act, version


_LOADERS: dict[str, Callable[[Path, int, int], tuple[Callable[[np.ndarray], Any], str]]] = {
    "sb3": _sb3,
    "torchscript": _torchscript,
    "d3rlpy": _d3rlpy,
    "onnx": _onnx,
}


# --------------------------------------------------------------------------- Python callables
def _python(spec: str, version: str | None) -> LoadedPolicy:
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # as `python -m` does: modules next to the user's files
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"policy: cannot import {module_name!r} for {spec}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"policy: {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ConfigError(f"policy: {spec} is a {type(obj).__name__}, not a callable or a factory")
    if _takes_no_argument(obj):  # a factory (a class or a function of no argument)
        try:
            obj = obj()
        except Exception as e:
            raise ConfigError(f"policy: the factory {spec} raised {type(e).__name__}: {e}") from None
        if not callable(obj):
            raise ConfigError(f"policy: the factory {spec} returned {type(obj).__name__}, not a callable")
    source = getattr(module, "__file__", None)
    digest = _sha256(Path(source)) if source and Path(source).is_file() else ""
    meta_version = str(getattr(obj, "version", "") or getattr(module, "__version__", "") or "")
    return LoadedPolicy(
        obj,
        spec,
        attr.rsplit(".", 1)[-1],
        version or meta_version or digest[:12] or "unversioned",
        "python",
        digest,
        getattr(obj, "episode_end", None),
    )


def _takes_no_argument(obj: Any) -> bool:
    """A class, or a function without positional parameters: a factory, called once to get the
    policy. Anything taking a positional argument is the policy itself."""
    if inspect.isclass(obj):
        return True
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: called as policies
        return False
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return not any(p.kind in positional for p in params)
