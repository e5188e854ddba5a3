"""Reference returns per environment, for :func:`neorl_industrial.offline.normalized_score`.

Written by benches/reference_scores.py (do not edit by hand): ``random`` is the mean return of the
uniform random policy, ``expert`` that of the environment's baseline controller without noise, each
over ``HOW["episodes"]`` episodes (env ``i`` reset with ``HOW["seed"] + i``; the random policy's
generator seeded with ``HOW["seed"]``), with :func:`neorl_industrial.offline.reference_returns`.
``*_std`` are the standard deviations of those returns.
"""

from __future__ import annotations

from typing import Any

HOW: dict[str, Any] = {"episodes": 1000, "seed": 0}

REFERENCE_SCORES: dict[str, dict[str, float]] = {
    "ChemicalReactor-v0": {
        "random": -339.24778998565444,
        "random_std": 320.4260663111147,
        "expert": -7.48693635473012,
        "expert_std": 1.7763568394002505e-15,
    },
    "IndustrialBenchmark-v0": {
        "random": -316658.86579680233,
        "random_std": 62616.76893184887,
        "expert": -186528.03433265668,
        "expert_std": 500.65862381534873,
    },
    "FourTank-v0": {
        "random": -16.49305590171727,
        "random_std": 1.7510512593721408,
        "expert": -2.4076977411041454,
        "expert_std": 4.440892098500626e-16,
    },
    "Pipeline-v0": {
        "random": -150.4226864172956,
        "random_std": 451.25431133198015,
        "expert": 794.6470568267374,
        "expert_std": 134.60528321248228,
    },
    "PowerGrid-v0": {
        "random": -691.0042664151972,
        "random_std": 128.45164237240903,
        "expert": -9.894730949457943,
        "expert_std": 8.200572602735145,
    },
    "HVAC-v0": {
        "random": -192.9749293990995,
        "random_std": 42.616029950174855,
        "expert": -16.196549631064375,
        "expert_std": 0.7761515254021614,
    },
}
