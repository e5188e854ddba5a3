"""Writes python/neorl_industrial/_reference_scores.py: the reference returns of every environment.

For each environment: the mean return of the uniform random policy and of the environment's baseline
controller without noise ("expert"), over EPISODES episodes (env ``i`` reset with SEED + i; the random
policy's generator seeded with SEED). ``neorl_industrial.offline.normalized_score`` maps them to 0 and
100, as D4RL's ``get_normalized_score`` does. tests/test_offline.py recomputes the table.

    python benches/reference_scores.py            # writes the module
    python benches/reference_scores.py --print    # prints the table only
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import neorl_industrial as ni
from neorl_industrial.offline import reference_returns

EPISODES = 1000
SEED = 0
MODULE = Path(__file__).resolve().parent.parent / "python" / "neorl_industrial" / "_reference_scores.py"

HEADER = '''"""Reference returns per environment, for :func:`neorl_industrial.offline.normalized_score`.

Written by benches/reference_scores.py (do not edit by hand): ``random`` is the mean return of the
uniform random policy, ``expert`` that of the environment's baseline controller without noise, each
over ``HOW["episodes"]`` episodes (env ``i`` reset with ``HOW["seed"] + i``; the random policy's
generator seeded with ``HOW["seed"]``), with :func:`neorl_industrial.offline.reference_returns`.
``*_std`` are the standard deviations of those returns.
"""

from __future__ import annotations

from typing import Any
'''


def compute(episodes: int = EPISODES, seed: int = SEED) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for env_id in ni.env_ids():
        row: dict[str, float] = {}
        for policy in ("random", "expert"):
            returns = reference_returns(env_id, policy, episodes, seed)
            row[policy] = float(returns.mean())
            row[f"{policy}_std"] = float(returns.std())
        table[env_id] = row
    return table


def module_text(table: dict[str, dict[str, float]], episodes: int, seed: int) -> str:
    lines = [HEADER, f'HOW: dict[str, Any] = {{"episodes": {episodes}, "seed": {seed}}}', ""]
    lines.append("REFERENCE_SCORES: dict[str, dict[str, float]] = {")
    for env_id, row in table.items():
        lines.append(f'    "{env_id}": {{')
        lines += [f'        "{k}": {v!r},' for k, v in row.items()]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--print", action="store_true", help="print the table, do not write the module")
    args = p.parse_args()
    logging.getLogger("neorl_industrial.safety").setLevel(logging.ERROR)  # random play raises many alarms
    t0 = time.perf_counter()
    table = compute()
    print(f"{'env':<24} {'random':>14} {'expert':>14}   ({EPISODES} episodes each, seed {SEED})")
    for env_id, row in table.items():
        print(f"{env_id:<24} {row['random']:>14.2f} {row['expert']:>14.2f}")
    if not args.print:
        MODULE.write_text(module_text(table, EPISODES, SEED))
        print(f"wrote {MODULE} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
