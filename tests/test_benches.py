"""The benchmark runner's summary over several runs (``python benches/run_all.py --runs N``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

BENCHES = Path(__file__).resolve().parent.parent / "benches"


@pytest.fixture
def run_all(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCHES))
    import run_all

    return run_all


def _rows(run_all: Any, ours: float, peer: float, single_us: float) -> list[Any]:
    from _common import Row

    return [
        Row("vec vs peer", ours, peer, "steps/s", "Peer", ">= 500x", target_ratio=500.0),
        Row(
            "single",
            single_us,
            10.0,
            "us/step",
            "CartPole",
            "ours <= 5 us",
            higher_is_better=False,
            target_max_ours=5.0,
        ),
        Row("  (info) context", ours, peer, "steps/s", "Peer"),
        Row("skipped peer", ours, None, "steps/s", "Peer", ">= 1000x", target_ratio=1000.0),
    ]


def test_summary_gives_ranges_median_and_met_counts(run_all: Any) -> None:
    runs = [
        _rows(run_all, 6.0e6, 10_000.0, 4.0),  # 600x, 4 us: both met
        _rows(run_all, 4.5e6, 10_000.0, 5.5),  # 450x, 5.5 us: both missed
        _rows(run_all, 5.5e6, 10_000.0, 4.5),  # 550x: met; 4.5 us: met
    ]
    lines = {line[0]: line for line in run_all.summarize(runs)}
    assert list(lines) == ["vec vs peer", "single", "(info) context", "skipped peer"]

    name, ours, peer, median, span, target = lines["vec vs peer"]
    assert ours == "4.50-6.00 M steps/s"
    assert peer == "10.0 k steps/s"
    assert median == "550x"
    assert span == "450x-600x"
    # Printed bounds round outwards: a run at 499.5x must not read as 500x.
    assert run_all._ratio_span([499.5, 692.9]) == "499x-693x"
    assert run_all._ratio_span([37.64, 53.21]) == "37.6x-53.3x"
    assert run_all._ratio_span([37.6, 53.2]) == "37.6x-53.2x"
    assert target == ">= 500x: met in 2 of 3 runs"

    assert lines["single"][1] == "4.00-5.50 us/step"
    assert lines["single"][5] == "ours <= 5 us: met in 2 of 3 runs"
    # Lower is better: the ratio is the peer's time over ours (10 / 4.5).
    assert lines["single"][3] == "2.2x"

    assert lines["(info) context"][5] == ""
    assert lines["skipped peer"][2:5] == ["n/a", "n/a", "n/a"]
    assert lines["skipped peer"][5] == ">= 1000x: not measured"


def test_runs_must_be_positive(run_all: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_all.main(["--runs", "0"])
    assert exc.value.code == 2
    assert "--runs must be at least 1, got 0" in capsys.readouterr().err


def test_the_serving_bench_runs_its_tiny_configuration() -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, str(BENCHES / "bench_serving.py"), "--tiny"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith(("torchscript", "onnx"))]
    assert [r[0] for r in rows] == ["torchscript", "onnx"] and all(r[-1] in ("met", "MISSED") for r in rows)
    assert any(line.strip().startswith("paused by an operator:") for line in lines)


def test_the_quality_bench_runs_its_quick_configuration() -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, str(BENCHES / "bench_quality.py"), "--quick"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    modes = [line.strip().split("  ")[0] for line in p.stdout.splitlines() if "us/step" in line]
    assert modes == ["quality off", "quality on", "drift, 64 envs per step", "drift, all envs"]
    assert "KiB resident per feature" in p.stdout
