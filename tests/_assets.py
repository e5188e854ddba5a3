"""Loaders for the shipped monitoring assets, shared by the static and the end-to-end tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from _monitoring_stack import MONITORING, ROOT, RULES
from _promql import grafana_to_promql, label_values_selector

DASHBOARDS = MONITORING / "grafana" / "dashboards"
RUNBOOKS = ROOT / "docs" / "runbooks"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [r for g in load(RULES)["groups"] for r in g["rules"] if "alert" in r]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # collapsed rows


def promql_blocks(markdown: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```promql\n(.*?)```", markdown, re.S)]


def all_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every expression of the rules, the dashboards and the runbooks."""
    out = [(f"rule {r['alert']}", r["expr"]) for r in alerts()]
    for name, dash in dashboards().items():
        for p in panels(dash):
            for t in p.get("targets", []):
                out.append((f"{name} / {p['title']} / {t['refId']}", grafana_to_promql(t["expr"])))
        for v in dash["templating"]["list"]:
            sel = label_values_selector(v["query"]["query"] if isinstance(v["query"], dict) else v["query"])
            if sel is not None:
                out.append((f"{name} / variable {v['name']}", grafana_to_promql(sel)))
    for md in sorted(RUNBOOKS.glob("*.md")):
        for i, block in enumerate(promql_blocks(md.read_text()), 1):
            out.append((f"{md.name} / promql block {i}", block))
    return out
