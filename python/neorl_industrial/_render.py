"""The ``rgb_array`` trend plot shared by every environment.

One panel per observed process variable (set-points drawn in the panel of the variable they target),
the constraint limits on that variable as dashed lines, and the steps where one of its constraints
was active marked in red: what a control-room trend display shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_PANELS = 6


class TrendRecorder:
    """Keeps the current episode's observations and constraint readings for rendering."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.obs: list[np.ndarray] = []
        self.active: list[dict[str, bool]] = []

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.obs = [np.array(obs, dtype=np.float64)]
        self.active = [dict(info.get("violations", {}))]

    def step(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.obs.append(np.array(obs, dtype=np.float64))
        self.active.append(dict(info.get("violations", {})))

    def panels(self) -> list[tuple[int, list[int]]]:
        """``(variable index, [set-point indices])`` for the panels to draw."""
        names = [v["name"] for v in self.spec["observations"]]
        setpoints = {i for i, n in enumerate(names) if n.endswith("_setpoint") or n == "target"}
        out = []
        for i, n in enumerate(names):
            if i in setpoints or "_lag" in n:  # histories (Pipeline's past flows) add no panel
                continue
            sps = [
                j for j in setpoints if names[j] in (f"{n}_setpoint",) or (names[j] == "target" and i == 0)
            ]
            out.append((i, sps))
        return out[:MAX_PANELS]

    def render(self, width: int = 640, height_per_panel: int = 150) -> np.ndarray:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the installation
            from .exceptions import ConfigError

            raise ConfigError("render_mode='rgb_array' needs matplotlib (pip install matplotlib)") from e
        panels = self.panels()
        data = np.array(self.obs) if self.obs else np.zeros((0, len(self.spec["observations"])))
        t = np.arange(len(data))
        dpi = 100
        fig, axes = plt.subplots(
            len(panels),
            1,
            figsize=(width / dpi, max(1, len(panels)) * height_per_panel / dpi),
            dpi=dpi,
            sharex=True,
            squeeze=False,
        )
        variables = self.spec["observations"]
        for ax, (i, sps) in zip(axes[:, 0], panels, strict=True):
            var = variables[i]
            ax.plot(t, data[:, i] if len(data) else [], color="tab:blue", lw=1.5, label=var["name"])
            for j in sps:
                ax.plot(t, data[:, j], color="tab:green", lw=1.0, ls="--", label="set-point")
            for c in self.spec["constraints"]:
                if c.get("signal") != var["name"] or c["kind"] == "rate":
                    continue
                color = "tab:red" if c["severity"] == "critical" else "tab:orange"
                limits = [c["low"], c["high"]] if c["kind"] == "band" else [c["limit"]]
                if c["kind"] == "abs":
                    limits = [c["limit"], -c["limit"]]
                for lim in limits:
                    ax.axhline(lim, color=color, ls=":", lw=1.0)
                hits = [k for k, a in enumerate(self.active) if a.get(c["name"])]
                if hits:
                    ax.scatter(hits, data[hits, i], color=color, marker="x", s=18, zorder=3)
            ax.set_ylabel(f"{var['name']} [{var['unit']}]", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel("step", fontsize=8)
        fig.suptitle(self.spec["id"], fontsize=9)
        fig.tight_layout()
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        plt.close(fig)
        return np.ascontiguousarray(rgba[..., :3])
