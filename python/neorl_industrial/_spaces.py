"""Gymnasium spaces built from a core spec."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def observation_space(spec: dict[str, Any]) -> spaces.Box:
    low = np.array([v["low"] for v in spec["observations"]], dtype=np.float32)
    high = np.array([v["high"] for v in spec["observations"]], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def action_space(spec: dict[str, Any]) -> spaces.Box:
    n = len(spec["actions"])
    return spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)


def physical_action(spec: dict[str, Any], action: np.ndarray) -> np.ndarray:
    """Maps a normalised action in [-1, 1] to physical units (the mapping the core applies)."""
    low = np.array([v["low"] for v in spec["actions"]])
    high = np.array([v["high"] for v in spec["actions"]])
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return low + (a + 1.0) * 0.5 * (high - low)
