"""A short run of the atheris fuzzer over the Python API (``fuzz/atheris_api.py``; the long run and
its figures are in RELIABILITY.md). A violated invariant makes the fuzzer exit non-zero with the input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import atheris  # noqa: F401  (the test extra installs it: a broken install fails here)

SCRIPT = Path(__file__).parents[1] / "fuzz" / "atheris_api.py"


def test_atheris_short_run(tmp_path: Path) -> None:
    runs = 4000
    # libFuzzer's RSS limit reads the peak RSS, which a child inherits from a large parent (a pytest
    # process that has imported torch and ray): off here, the long run in RELIABILITY.md keeps it.
    p = subprocess.run(
        [sys.executable, str(SCRIPT), f"-atheris_runs={runs}", "-seed=1", "-rss_limit_mb=0",
         f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    tail = p.stderr[-3000:]
    assert p.returncode == 0, tail
    assert f"Done {runs} in" in p.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
