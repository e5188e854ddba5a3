"""Static checks of the monitoring and deployment assets: monitoring/, deploy/, docs/.

promtool and amtool (Debian packages prometheus and prometheus-alertmanager, installed by
scripts/test.sh) validate the Prometheus config, the rules and their unit tests, and the Alertmanager
config and routing. Every PromQL expression of the rules, dashboards and runbooks is parsed by
promtool and checked against the metric contract of docs/metrics.md (tests/_promql.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from _assets import DASHBOARDS, RUNBOOKS, alerts, all_expressions, dashboards, load, panels, promql_blocks
from _monitoring_stack import ALERTMANAGER_YML, MONITORING, PROMETHEUS_YML, ROOT, RULES
from _promql import (
    EXTRA_EXPORTED,
    GRAFANA_BUILTINS,
    METRICS,
    TARGET_LABELS,
    calls,
    exposition_names,
    grafana_to_promql,
    grafana_variables,
    grouping_labels,
    metric_names,
    samples,
    selectors,
    series_catalogue,
)

RULE_TESTS = sorted((MONITORING / "rules" / "tests").glob("*.yml"))
PROVISIONING = MONITORING / "grafana" / "provisioning"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

ALERT_GROUPS = {
    "safety_alerts": {"SafetyViolationRate", "EmergencyShutdown", "CriticalConstraintViolation"},
    "performance_alerts": {"HighInferenceLatency", "LowThroughput", "HighStepLatency"},
    "system_alerts": {
        "HighMemoryUsage",
        "ServiceDown",
        "MetricCardinalityOverflow",
        "AuditEventsDropped",
        "HighErrorRate",
        "QueueSaturation",
    },
    "data_quality_alerts": {"ObservationSaturation", "FaultInjectionActive"},
    "serving_alerts": {"PolicyErrors", "ModelReloadFailed", "ShadowWouldViolate", "ModelDrift"},
    "meta_alerts": {
        "Watchdog",
        "AlertmanagerNotificationsFailing",
        "PrometheusRuleEvaluationFailures",
        "ScrapeTargetMissing",
    },
}
# Always firing (vector(1)), severity none, routed only to the dead man's switch.
WATCHDOG = "Watchdog"
RUNBOOK_FILES = [
    "safety-violation-response.md",
    "emergency-shutdown.md",
    "performance-degradation.md",
    "service-down.md",
    "model-serving.md",
    "errors-and-queues.md",
    "data-quality.md",
    "watching-the-watchers.md",
]
SERVE_ARGS = ["--env", "ChemicalReactor-v0", "--num-envs", "64", "--policy", "pid",
              "--host", "0.0.0.0", "--port", "8000", "--safety-port", "8001", "--insecure"]  # fmt: skip


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: scripts/test.sh installs it (apt-get install prometheus prometheus-alertmanager)"
        )
    return path


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)


def seconds(duration: str) -> float:
    """A Prometheus duration ("1m30s", "90s", "2m") in seconds."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?", str(duration).strip())
    assert m and any(m.groups()), f"not a duration: {duration!r}"
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


# --------------------------------------------------------------------------- every PromQL expression
EXPRESSIONS = all_expressions()
CATALOGUE = series_catalogue()


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = tool("promtool")
    groups = [
        {"name": f"expr{i}", "rules": [{"record": f"check:expr{i}", "expr": expr}]}
        for i, (_, expr) in enumerate(EXPRESSIONS)
    ]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    res = run(promtool, "check", "rules", str(path))
    if res.returncode != 0:
        bad = [w for i, (w, _) in enumerate(EXPRESSIONS) if f'"expr{i}"' in res.stdout + res.stderr]
        pytest.fail(f"promtool rejects {bad or 'some expressions'}:\n{res.stdout}{res.stderr}")
    assert f"SUCCESS: {len(EXPRESSIONS)} rules found" in res.stdout


def test_promtool_parse_check_rejects_a_broken_expression(tmp_path: Path) -> None:
    # The check above can fail: an unbalanced expression makes promtool exit non-zero.
    path = tmp_path / "bad.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": "sum(rate(x[5m])"}]}]})
    )
    res = run(tool("promtool"), "check", "rules", str(path))
    assert res.returncode != 0 and "unclosed left parenthesis" in res.stdout + res.stderr, res


def test_expressions_cover_rules_dashboards_and_runbooks() -> None:
    where = [w for w, _ in EXPRESSIONS]
    assert sum(w.startswith("rule ") for w in where) == 22
    assert sum(".json / " in w for w in where) >= 40
    assert sum(".md / " in w for w in where) >= 20


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_expression_uses_only_exported_metrics_and_their_labels(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names or (where == f"rule {WATCHDOG}" and expr.strip() == "vector(1)"), (
        f"{where}: selects no metric"
    )
    unknown = names - CATALOGUE.keys()
    assert not unknown, (
        f"{where}: {sorted(unknown)} are not exported (docs/metrics.md); a histogram is queried as _bucket/_sum/_count"
    )
    for sel in selectors(expr):
        if sel.name is None:
            continue
        allowed = CATALOGUE[sel.name].labels | TARGET_LABELS | {"__name__"}
        bad = {label for label, _, _ in sel.matchers} - allowed
        assert not bad, f"{where}: {sel.name} has no label {sorted(bad)}"
    labels = set().union(*(CATALOGUE[n].labels for n in names)) | TARGET_LABELS | {"__name__"}
    bad = grouping_labels(expr) - labels
    assert not bad, f"{where}: groups by {sorted(bad)}, which none of {sorted(names)} carries"
    for fn in ("rate", "irate", "increase"):
        for arg in calls(expr, fn):
            gauges = {n for n in metric_names(arg) if not CATALOGUE[n].counter_like}
            assert not gauges, f"{where}: {fn}() of the gauge(s) {sorted(gauges)}"
    for arg in calls(expr, "histogram_quantile"):
        assert all(n.endswith("_bucket") for n in metric_names(arg)), (
            f"{where}: histogram_quantile needs _bucket series"
        )
        for m in re.finditer(r"\bby\s*\(([^)]*)\)", arg):
            assert "le" in {x.strip() for x in m.group(1).split(",")}, f"{where}: aggregation drops le"


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("histogram_quantile(0.95, inference_latency_seconds)", "not exported"),  # the guide's form
        ('sum(rate(safety_violations_total{env="x"}[1m]))', "has no label"),
        ("sum by (constraint) (rate(safety_violations_total[1m]))", "groups by"),
        ("rate(active_environments[5m])", "gauge"),
        ("histogram_quantile(0.95, sum by (job) (rate(inference_latency_seconds_bucket[5m])))", "drops le"),
        ("node_cpu_seconds_total", "not exported"),
    ],
)
def test_expression_checks_catch_mistakes(expr: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        test_expression_uses_only_exported_metrics_and_their_labels("probe", expr)


def test_promql_helper_finds_names_and_labels() -> None:
    expr = (
        'sum by (service) (rate(a_total{job=~"x"}[5m] offset 1m)) / on (service) group_left (version) '
        'b_info > bool 1 or count by (__name__) ({__name__=~"c|d"}) and label_replace(e, "x", "$1", "y", "(.*)")'
    )
    assert metric_names(expr) == {"a_total", "b_info", "c", "d", "e"}
    assert grouping_labels(expr) == {"service", "version", "__name__"}
    assert [s.matchers for s in selectors(expr)][0] == (("job", "=~", "x"),)
    text = '# TYPE h histogram\nh_bucket{le="+Inf"} 1\n# TYPE c_total counter\nc_total 3\nuntyped 1\n'
    assert exposition_names(text) == {"h_bucket", "c_total", "untyped"}
    openmetrics = '# TYPE c counter\n# TYPE b info\nb_info{version="1"} 1\n# TYPE r histogram\nr_bucket{le="+Inf"} 0\n# EOF\n'
    assert exposition_names(openmetrics) == {"c_total", "b_info", "r_bucket"}
    assert exposition_names("# TYPE e histogram\n") == {"e_bucket", "e_sum", "e_count"}  # no label set yet
    assert samples('a{x="1",y="q\\"z"} 2.5\n# c\nb 1\n') == [
        ("a", {"x": "1", "y": 'q"z'}, 2.5),
        ("b", {}, 1.0),
    ]


# --------------------------------------------------------------------------- Prometheus
def test_prometheus_config_is_valid() -> None:
    res = run(tool("promtool"), "check", "config", str(PROMETHEUS_YML))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 1 rule files found" in res.stdout


def scrape_jobs(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["job_name"]: j for j in cfg["scrape_configs"]}


def test_prometheus_scrapes_app_safety_node_exporter_and_alertmanager() -> None:
    cfg = load(PROMETHEUS_YML)
    jobs = scrape_jobs(cfg)
    assert jobs["neorl-industrial"]["metrics_path"] == "/metrics"
    assert seconds(jobs["neorl-industrial"]["scrape_interval"]) == 5
    assert jobs["safety-monitor"]["metrics_path"] == "/safety/metrics"
    assert seconds(jobs["safety-monitor"]["scrape_interval"]) == 1
    assert "node-exporter" in jobs
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert [(PROMETHEUS_YML.parent / f).resolve() for f in cfg["rule_files"]] == [RULES.resolve()]
    for job in jobs.values():
        for static in job["static_configs"]:
            assert static.get("labels", {}).get("service"), f"{job['job_name']}: no service label"


def test_app_and_safety_targets_share_service_and_instance() -> None:
    # The rules count the safety families once per (service, instance): both endpoints of the process
    # must land on the same pair after relabelling (promtool applies the relabelling here).
    promtool = tool("promtool")
    seen = {}
    for job in ("neorl-industrial", "safety-monitor"):
        res = run(promtool, "check", "service-discovery", "--timeout=500ms", str(PROMETHEUS_YML), job)
        assert res.returncode == 0, res.stderr
        (target,) = json.loads(res.stdout)
        seen[job] = (target["labels"]["service"], target["labels"]["instance"])
    assert seen["neorl-industrial"] == seen["safety-monitor"] == ("neorl-industrial", "app")


# --------------------------------------------------------------------------- rules
def test_rules_are_valid() -> None:
    res = run(tool("promtool"), "check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 22 rules found" in res.stdout


def test_alert_groups_hold_the_contracted_alerts() -> None:
    groups = {g["name"]: {r["alert"] for r in g["rules"]} for g in load(RULES)["groups"]}
    assert groups == ALERT_GROUPS


def github_anchors(markdown: str) -> set[str]:
    out = set()
    for heading in re.findall(r"^#+\s+(.*)$", markdown, re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in ("critical", "warning") or (
        alert["alert"] == WATCHDOG and alert["labels"]["severity"] == "none"
    )
    ann = alert["annotations"]
    assert ann["summary"].strip() and ann["description"].strip()
    url = ann["runbook_url"]
    assert url.startswith("docs/runbooks/"), url
    path, _, anchor = url.partition("#")
    assert (ROOT / path).is_file(), f"{url}: no such runbook"
    assert anchor in github_anchors((ROOT / path).read_text()), f"{url}: no heading for #{anchor}"
    assert (
        "service" in grouping_labels(alert["expr"])
        or "service" in alert["labels"]
        or alert["expr"].strip() == "up == 0"
        or alert["alert"] == WATCHDOG
    ), "every alert keeps the service label (Alertmanager inhibits by service)"


def test_rule_unit_tests_pass() -> None:
    res = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(RULE_TESTS) == 6


def alert_expectations() -> list[tuple[str, float, bool]]:
    """(alert, eval time in s, expected to fire) for every alert_rule_test entry."""
    out = []
    for path in RULE_TESTS:
        for test in load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                out.append((case["alertname"], seconds(case["eval_time"]), bool(case.get("exp_alerts"))))
    return out


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = alert_expectations()
    for alert in set().union(*ALERT_GROUPS.values()):
        assert (alert, True) in {(a, f) for a, _, f in cases}, f"{alert}: no test shows it firing"
        if alert == WATCHDOG:  # silent only when the alerting path is broken
            continue
        assert (alert, False) in {(a, f) for a, _, f in cases}, f"{alert}: no test shows it silent"


def mutated_failures(tmp_path: Path, mutate: Any) -> set[tuple[str, float]]:
    """Runs the unit tests against mutated rules; returns the (alert, eval time) pairs that failed."""
    rules = load(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            mutate(rule)
    (tmp_path / "tests").mkdir()
    (tmp_path / RULES.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)
    # One promtool per test file, concurrently (failing runs are slow).
    procs = [
        subprocess.Popen(
            [tool("promtool"), "test", "rules", str(tmp_path / "tests" / p.name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for p in RULE_TESTS
    ]
    output = ""
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0, out
        output += out
    return {(a, seconds(t)) for a, t in re.findall(r"alertname: (\w+), time: ([\w.]+),", output)}


def test_each_firing_expectation_fails_when_the_alert_never_fires(tmp_path: Path) -> None:
    def never(rule: dict[str, Any]) -> None:
        rule["expr"] = "vector(1) > 2"

    failed = mutated_failures(tmp_path, never)
    expected = {(a, t) for a, t, fires in alert_expectations() if fires}
    assert expected <= failed, f"not detected: {sorted(expected - failed)}"


def test_each_silent_expectation_fails_when_the_alert_always_fires(tmp_path: Path) -> None:
    # Also drops `for`, so the checks that an alert is still pending fail too.
    def always(rule: dict[str, Any]) -> None:
        rule["expr"] = f"({rule['expr'].strip()}) or vector(1)"
        rule["for"] = "0s"

    failed = mutated_failures(tmp_path, always)
    expected = {(a, t) for a, t, fires in alert_expectations() if not fires}
    assert expected <= failed, f"not detected: {sorted(expected - failed)}"


# --------------------------------------------------------------------------- Alertmanager
def test_alertmanager_config_is_valid() -> None:
    res = run(tool("amtool"), "check-config", str(ALERTMANAGER_YML))
    assert res.returncode == 0, res.stdout + res.stderr


def route(labels: dict[str, str]) -> list[str]:
    res = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
              *[f"{k}={v}" for k, v in labels.items()])  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(",")


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_routes_by_severity(alert: dict[str, Any]) -> None:
    severity = alert["labels"]["severity"]
    got = route({"alertname": alert["alert"], "severity": severity, "service": "neorl-industrial"})
    if alert["alert"] == WATCHDOG:
        assert got == ["deadmans-switch"]
        return
    pager_or_chat = "pagerduty" if severity == "critical" else "slack"
    assert got == ["incident-webhook", pager_or_chat, "email"]


def test_routing_check_can_fail() -> None:
    # amtool's own verification rejects a receiver list that does not match.
    res = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
              "--verify.receivers=slack", "severity=critical")  # fmt: skip
    assert res.returncode != 0 and "Expected receivers did not match" in res.stdout + res.stderr, res


def test_alertmanager_inhibits_warnings_while_the_service_has_a_critical_alert() -> None:
    cfg = load(ALERTMANAGER_YML)
    assert cfg["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["service"],
        }
    ]


SECRET_KEYS = re.compile(r"(password|secret|token|api_url|routing_key|service_key|auth_password)$", re.I)


def secret_literals(node: Any, path: str = "") -> list[str]:
    """Paths of keys that would hold a secret in plain text (a *_file key is fine)."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if SECRET_KEYS.search(str(k)) and isinstance(v, str) and v:
                out.append(f"{path}.{k}")
            out += secret_literals(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += secret_literals(v, f"{path}[{i}]")
    return out


def test_alertmanager_secrets_come_from_files() -> None:
    cfg = load(ALERTMANAGER_YML)
    assert secret_literals(cfg) == []
    assert secret_literals({"global": {"smtp_auth_password": "hunter2"}}) == [".global.smtp_auth_password"]
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert set(receivers) == {"pagerduty", "slack", "email", "incident-webhook", "deadmans-switch"}
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key_file"].startswith("/run/secrets/")
    assert cfg["global"]["slack_api_url_file"].startswith("/run/secrets/")
    assert cfg["global"]["smtp_auth_password_file"].startswith("/run/secrets/")


# --------------------------------------------------------------------------- Grafana
DASHBOARD_CONTENT = {
    "safety-overview.json": (
        "Safety Overview",
        ["violations (24h)", "time since last violation", "violation rate", "emergency shutdowns"],
    ),
    "performance.json": (
        "Performance",
        [
            "inference latency",
            "actions computed",
            "step latency",
            "memory",
            "cpu",
            "serving model",
            "policy errors",
            "model reloads",
            "queue depth",
            "queue saturation",
        ],
    ),
    "quality.json": (
        "Quality",
        [
            "episode reward",
            "episode length",
            "success rate",
            "cost",
            "shadow action divergence",
            "shadow would-violate",
            "shadow inference latency",
            "shadow errors",
            "feature drift",
            "observations at a bound",
            "clipped actions",
            "refused inputs",
            "faults active",
        ],
    ),
    "system-health.json": (
        "System Health",
        [
            "targets up",
            "errors",
            "memory",
            "cpu",
            "file descriptors",
            "cardinality",
            "error rate by component",
            "availability (30d)",
        ],
    ),
}


def test_four_dashboards_with_their_panels() -> None:
    dash = dashboards()
    assert set(dash) == set(DASHBOARD_CONTENT)
    assert len({d["uid"] for d in dash.values()}) == 4
    for name, (title, wanted) in DASHBOARD_CONTENT.items():
        assert title in dash[name]["title"]
        titles = " | ".join(p["title"].lower() for p in panels(dash[name]))
        missing = [w for w in wanted if w not in titles]
        assert not missing, f"{name}: no panel for {missing}"
    legends = {
        t["legendFormat"]
        for p in panels(dash["performance.json"])
        if p["title"] == "Inference latency"
        for t in p["targets"]
    }
    assert legends == {"p50", "p95", "p99"}


def rows(dash: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Row title -> the panels under it (a collapsed row holds them; an open one is followed by them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for p in sorted(dash["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if p["type"] == "row":
            current = out.setdefault(p["title"], list(p.get("panels", [])))
        elif current is not None:
            current.append(p)
    return out


@pytest.mark.parametrize(
    ("name", "row", "families"),
    [
        ("performance.json", "Model", {"model_info", "model_reloads_total", "policy_errors_total"}),
        ("quality.json", "Shadow policy", {"shadow_action_divergence_bucket", "shadow_would_violate_total",
                                           "shadow_inference_latency_seconds_bucket", "shadow_errors_total"}),
        ("quality.json", "Data quality", {"observation_saturation_total", "action_clipped_total",
                                          "input_refused_total", "faults_active", "env_steps_total"}),
        ("performance.json", "Queues", {"queue_depth", "queue_capacity"}),
        ("system-health.json", "Errors and availability", {"errors_total", "up"}),
    ],
)  # fmt: skip
def test_dashboard_rows_show_their_families(name: str, row: str, families: set[str]) -> None:
    dash = dashboards()[name]
    under = rows(dash)[row]
    used = set().union(*(metric_names(grafana_to_promql(t["expr"])) for p in under for t in p["targets"]))
    assert families <= used, f"{name} / {row}: no panel for {sorted(families - used)}"
    quantiles = {
        p["title"]: {t["legendFormat"] for t in p["targets"]}
        for p in under
        if any("histogram_quantile" in t["expr"] for t in p["targets"])
    }
    assert all(legends == {"p50", "p95"} for legends in quantiles.values()), quantiles


def test_availability_is_a_30_day_stat_per_instance() -> None:
    (panel,) = [p for p in panels(dashboards()["system-health.json"]) if p["title"] == "Availability (30d)"]
    assert panel["type"] == "stat" and panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    (t,) = panel["targets"]
    expr = grafana_to_promql(t["expr"])
    (arg,) = calls(expr, "avg_over_time")
    assert metric_names(arg) == {"up"} and arg.endswith("[30d]"), expr
    assert grouping_labels(expr) == {"instance"} and t.get("instant") is True


def test_queue_saturation_leaves_unbounded_queues_out() -> None:
    # queue_capacity is 0 for an unbounded queue: the alert and the panel divide only by capacities > 0.
    (alert,) = [a for a in alerts() if a["alert"] == "QueueSaturation"]
    (panel,) = [p for p in panels(dashboards()["performance.json"]) if p["title"] == "Queue saturation"]
    for expr in (alert["expr"], panel["targets"][0]["expr"]):
        assert re.search(r"\(max by \([^)]*\) \(queue_capacity[^)]*\) > 0\)", " ".join(expr.split())), expr


@pytest.mark.parametrize("name", sorted(DASHBOARD_CONTENT))
def test_dashboard_is_templated_and_every_panel_has_unit_and_thresholds(name: str) -> None:
    dash = dashboards()[name]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"job", "env"} <= set(variables)
    for v in variables.values():
        assert v["type"] == "query" and v["includeAll"] and v["allValue"] == ".*"
    used: set[str] = set()
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{p['title']}: no unit"
        steps = defaults["thresholds"]["steps"]
        assert steps and steps[0]["value"] is None, f"{p['title']}: thresholds need a base step"
        assert all(a["value"] < b["value"] for a, b in zip(steps[1:], steps[2:], strict=False)), p["title"]
        for t in p["targets"]:
            used |= grafana_variables(t["expr"])
    assert used - GRAFANA_BUILTINS.keys() <= set(variables), f"undefined variables {used - set(variables)}"
    assert "job" in used and "env" in used


def test_dashboards_use_the_provisioned_datasource() -> None:
    (ds,) = load(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    for name, dash in dashboards().items():
        refs = [p["datasource"] for p in panels(dash)]
        refs += [t["datasource"] for p in panels(dash) for t in p.get("targets", [])]
        refs += [v["datasource"] for v in dash["templating"]["list"]]
        assert all(r == {"type": "prometheus", "uid": ds["uid"]} for r in refs), name


# --------------------------------------------------------------------------- docker-compose
def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yml")


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (relative host paths resolved)."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith((".", "/")):
            out[dst] = (DEPLOY / src).resolve() if src.startswith(".") else Path(src)
    return out


def test_compose_runs_app_and_monitoring_stack_with_pinned_images() -> None:
    services = compose()["services"]
    assert {"app", "prometheus", "grafana", "alertmanager", "node-exporter"} <= set(services)
    app = services["app"]
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert app["command"] == SERVE_ARGS
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"


def test_compose_mounts_the_monitoring_files() -> None:
    services = compose()["services"]
    prom = mounts(services["prometheus"])
    assert prom["/etc/prometheus/prometheus.yml"] == PROMETHEUS_YML
    assert prom["/etc/prometheus/rules"] == RULES.parent
    # rule_files in prometheus.yml are relative to it, so they resolve inside the rules mount.
    for f in load(PROMETHEUS_YML)["rule_files"]:
        assert str(Path("/etc/prometheus") / f).startswith("/etc/prometheus/rules/")
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    # The histograms' exemplars are kept (docs/metrics.md, Exemplars).
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    am = mounts(services["alertmanager"])
    assert am["/etc/alertmanager/alertmanager.yml"] == ALERTMANAGER_YML
    graf = mounts(services["grafana"])
    assert graf["/etc/grafana/provisioning/datasources"] == PROVISIONING / "datasources"
    assert graf["/etc/grafana/provisioning/dashboards"] == PROVISIONING / "dashboards"
    (provider,) = load(PROVISIONING / "dashboards" / "neorl-industrial.yml")["providers"]
    assert graf[provider["options"]["path"]] == DASHBOARDS
    for svc in services.values():
        for host in mounts(svc).values():
            assert host == Path("/") or host.exists(), host


def test_prometheus_targets_are_compose_services_on_their_ports() -> None:
    services = compose()["services"]
    exposed = {"node-exporter": {9100}, "alertmanager": {9093}, "prometheus": {9090}}
    exposed["app"] = {int(p.split(":")[-1]) for p in services["app"]["ports"]}
    cfg = load(PROMETHEUS_YML)
    targets = [t for j in cfg["scrape_configs"] for s in j["static_configs"] for t in s["targets"]]
    targets += cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        host, port = target.rsplit(":", 1)
        if host == "localhost":  # Prometheus itself
            continue
        assert host in services, f"{target}: no compose service {host}"
        assert int(port) in exposed[host], f"{target}: {host} does not serve port {port}"


def test_compose_has_no_plaintext_secrets() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use a mapping for environment"
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY", key) and not key.endswith("__FILE"):
                assert re.fullmatch(r"\$\{\w+(:?\?[^}]*)?\}", str(value)), (
                    f"{name}: {key} is set to a literal"
                )
    grafana_env = doc["services"]["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana_env
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "grafana_admin_password" in doc["services"]["grafana"]["secrets"]


def test_compose_secrets_are_the_files_alertmanager_reads_and_are_git_ignored() -> None:
    doc = compose()
    am_files = set(re.findall(r"/run/secrets/(\w+)", ALERTMANAGER_YML.read_text()))
    assert am_files == set(doc["services"]["alertmanager"]["secrets"])
    for name, secret in doc["secrets"].items():
        path = (DEPLOY / secret["file"]).resolve()
        assert path.parent == DEPLOY / "secrets", name
        rel = str(path.relative_to(ROOT))
        assert run("git", "check-ignore", "-q", rel, cwd=ROOT).returncode == 0, f"{rel} is not git-ignored"
        assert run("git", "ls-files", "--error-unmatch", rel, cwd=ROOT).returncode != 0, f"{rel} is committed"


# --------------------------------------------------------------------------- Dockerfile
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (keyword, arguments) per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def test_dockerfile_builds_the_wheel_and_runs_serve_as_non_root() -> None:
    build, runtime = dockerfile_stages()
    assert "AS build" in build[0][1] and "slim" in build[0][1]
    assert any(k == "RUN" and "maturin build --release --locked" in a for k, a in build)
    for k, a in build:
        if k == "COPY":
            for src in a.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert "slim" in runtime[0][1]
    assert any(k == "COPY" and a.startswith("--from=build") for k, a in runtime)
    assert not any("cargo" in a or "rustup" in a for _, a in runtime), "no toolchain in the runtime image"
    (user,) = [a for k, a in runtime if k == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    instructions = dict(runtime)
    assert json.loads(instructions["ENTRYPOINT"]) == ["neorl-industrial", "serve"]
    assert json.loads(instructions["CMD"]) == SERVE_ARGS
    assert set(instructions["EXPOSE"].split()) == {"8000", "8001"}
    assert "/health/live" in instructions["HEALTHCHECK"]


def test_dockerignore_keeps_build_outputs_out_but_sources_in() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert {"target", ".git", "deploy/secrets"} <= set(patterns)
    for needed in ("src", "python", "Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md"):
        assert needed not in patterns


# --------------------------------------------------------------------------- Kubernetes
def manifests() -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in sorted(K8S.glob("*.yaml"))}


def test_kustomization_lists_every_manifest() -> None:
    docs = manifests()
    kust = docs.pop("kustomization.yaml")
    assert sorted(kust["resources"]) == sorted(docs)
    assert {d["kind"] for d in docs.values()} == {"Deployment", "Service", "ConfigMap", "ServiceMonitor"}
    for name, d in docs.items():
        assert d["apiVersion"] and d["metadata"]["name"], name


def test_deployment_probes_resources_and_security() -> None:
    dep = manifests()["deployment.yaml"]
    spec = dep["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert not c["image"].endswith(":latest") and ":" in c["image"]
    assert c["args"] == SERVE_ARGS
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http-metrics": 8000, "http-safety": 8001}
    for probe, path in [("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")]:
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8000, f"{probe} must hit the /health port"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_service_and_servicemonitor_select_the_pods_and_ports() -> None:
    docs = manifests()
    pod = docs["deployment.yaml"]["spec"]["template"]
    container_ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    svc = docs["service.yaml"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports
    sm = docs["servicemonitor.yaml"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    endpoints = {e["port"]: e for e in sm["spec"]["endpoints"]}
    assert set(endpoints) <= svc_ports
    assert (endpoints["http-metrics"]["path"], seconds(endpoints["http-metrics"]["interval"])) == (
        "/metrics",
        5,
    )
    assert (endpoints["http-safety"]["path"], seconds(endpoints["http-safety"]["interval"])) == (
        "/safety/metrics",
        1,
    )


def test_k8s_prometheus_configmap_is_valid_and_carries_the_shipped_rules(tmp_path: Path) -> None:
    data = manifests()["prometheus-configmap.yaml"]["data"]
    assert yaml.safe_load(data["neorl_industrial_rules.yml"]) == load(RULES), (
        "copy monitoring/rules/neorl_industrial_rules.yml into the ConfigMap"
    )
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    res = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 22 rules found" in res.stdout
    k8s_jobs = scrape_jobs(yaml.safe_load(data["prometheus.yml"]))
    for name, job in scrape_jobs(load(PROMETHEUS_YML)).items():
        assert k8s_jobs[name].get("metrics_path") == job.get("metrics_path"), name
        assert k8s_jobs[name].get("scrape_interval") == job.get("scrape_interval"), name


# --------------------------------------------------------------------------- docs
@pytest.mark.parametrize("name", RUNBOOK_FILES + ["telemetry-integrity.md"])
def test_runbook_says_what_to_check_how_to_mitigate_and_recover(name: str) -> None:
    text = (RUNBOOKS / name).read_text()
    lower = text.lower()
    if name != "telemetry-integrity.md":
        for section in ("## what to check", "## how to mitigate", "## how to recover"):
            assert section in lower, f"{name}: no '{section}' section"
    else:
        assert "mitigate:" in lower and "recover:" in lower
    assert promql_blocks(text), f"{name}: no PromQL"
    assert re.search(r"```bash\n.*(jq |kubectl logs|compose .*logs)", text, re.S), f"{name}: no log query"


def test_metrics_reference_documents_exactly_the_exported_metrics() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram)", text, re.M)
    documented = {**METRICS, **EXTRA_EXPORTED}
    assert {name for name, _ in rows} == set(documented)
    assert len(rows) == len(documented)
    for name, kind in rows:
        assert documented[name][0] == kind, name
    for path in (
        "src/telemetry/",
        "src/vector/",
        "neorl_industrial.metrics",
        "time_inference()",
        "MonitoredPolicy",
    ):
        assert path in text
