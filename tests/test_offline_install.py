"""The offline extra resolves against the package index with this package's own requirements: pip,
asked to install both at once, finds versions that agree (d3rlpy 2.8.1 pins gymnasium==1.0.0; the
extra leaves it out). Needs the package index, as scripts/test.sh does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_offline_extra_and_the_package_resolve_together(tmp_path: Path) -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["offline"])
    report = tmp_path / "report.json"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), *wanted],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    chosen = {i["metadata"]["name"].lower(): Version(i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]}
    for req in map(Requirement, wanted):
        assert chosen[req.name.lower()] in req.specifier, (req, chosen[req.name.lower()])
    assert chosen["d3rlpy"] != Version("2.8.1") and chosen["gymnasium"] >= Version("1.1")
