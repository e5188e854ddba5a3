"""Counter-based random numbers: a value depends only on (seed, env index, step, stream).

Policies that explore draw from here so that a dataset is the same whether its envs are generated
in one batch, in several, or on several workers: env ``i`` at step ``t`` always gets the same draws.
SplitMix64 finalisation (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014) over a combined counter, vectorized in numpy's uint64 arithmetic.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, env_index: np.ndarray, step: int, width: int, stream: int = 0) -> np.ndarray:
    """Uniform draws in [0, 1) of shape ``(len(env_index), width)``."""
    idx = np.asarray(env_index, dtype=np.uint64)[:, None]
    col = np.arange(width, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed % (1 << 64)) * _GOLD + np.uint64(stream))
        z = key + idx * np.uint64(0xD1B54A32D192ED03) + np.uint64(step) * np.uint64(0x8CB92BA72F3D8DD7)
        z = _mix(z + col * _GOLD)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def normal(seed: int, env_index: np.ndarray, step: int, width: int, stream: int = 0) -> np.ndarray:
    """Standard normal draws (Box–Muller) of shape ``(len(env_index), width)``."""
    u1 = 1.0 - uniform(seed, env_index, step, width, 2 * stream + 1)
    u2 = uniform(seed, env_index, step, width, 2 * stream + 2)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
