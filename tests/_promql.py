"""PromQL and exposition-format helpers shared by the monitoring tests.

* ``METRICS``: the metric families the exporter emits (the contract of docs/metrics.md); the serving
  families exist on a registry once a ``PolicyService`` runs on it (``neorl-industrial serve``).
* ``metric_names`` / ``selectors`` / ``grouping_labels`` / ``calls``: a small PromQL scanner, enough
  to find which metrics and labels an expression refers to (promtool checks the syntax).
* ``exposition_names``: the series names a Prometheus text exposition declares or contains.
* ``grafana_to_promql``: replaces Grafana's template variables so that promtool can parse a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# name -> (type, labels). Histograms expand to _bucket{le}, _sum and _count.
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    name: (kind, frozenset(labels))
    for name, kind, labels in [
        ("safety_violations_total", "counter", ["constraint_type", "severity"]),
        ("emergency_shutdowns_total", "counter", ["reason"]),
        ("inference_latency_seconds", "histogram", []),
        ("active_environments", "gauge", []),
        ("episode_reward", "histogram", []),
        ("actions_computed_total", "counter", []),
        ("episodes_total", "counter", ["env"]),
        ("episode_outcomes_total", "counter", ["env", "outcome"]),
        ("episode_reward_by_env", "histogram", ["env"]),
        ("env_steps_total", "counter", ["env"]),
        ("step_latency_seconds", "histogram", ["env"]),
        ("safety_response_time_seconds", "histogram", []),
        ("human_interventions_total", "counter", ["reason"]),
        ("shield_interventions_total", "counter", ["env"]),
        ("last_safety_violation_timestamp_seconds", "gauge", []),
        ("audit_events_dropped_total", "counter", []),
        ("metric_label_overflow_total", "counter", ["metric"]),
        ("neorl_industrial_build_info", "gauge", ["version"]),
        ("process_resident_memory_bytes", "gauge", []),
        ("process_cpu_seconds_total", "counter", []),
        ("process_open_fds", "gauge", []),
        ("process_start_time_seconds", "gauge", []),
        ("process_virtual_memory_bytes", "gauge", []),
        # Serving (neorl_industrial.serving.PolicyService: `neorl-industrial serve`).
        ("model_info", "gauge", ["name", "version", "framework", "sha256"]),
        ("policy_errors_total", "counter", ["kind"]),
        ("model_reloads_total", "counter", ["result"]),
        ("shadow_action_divergence", "histogram", []),
        ("shadow_would_violate_total", "counter", ["constraint_type", "severity"]),
        ("shadow_inference_latency_seconds", "histogram", []),
        ("shadow_errors_total", "counter", ["kind"]),
        # Quality: drift (a fleet's drift watch), data quality (the batch), faults, errors, queues.
        ("feature_drift", "gauge", ["env", "source", "feature"]),
        ("feature_drift_wasserstein", "gauge", ["env", "source", "feature"]),
        ("observation_saturation_total", "counter", ["env", "feature"]),
        ("action_clipped_total", "counter", ["env", "feature"]),
        ("input_refused_total", "counter", ["env", "reason"]),
        ("faults_active", "gauge", ["env", "fault"]),
        ("errors_total", "counter", ["component", "kind"]),
        ("queue_depth", "gauge", ["queue"]),
        ("queue_capacity", "gauge", ["queue"]),
    ]
}

# Exported and documented, but not part of the monitoring contract (no rule or dashboard uses them).
EXTRA_EXPORTED: dict[str, tuple[str, frozenset[str]]] = {
    "process_max_fds": ("gauge", frozenset()),
    "exporter_insecure_listeners": ("gauge", frozenset()),
}

# Series the monitoring stack produces itself, not the application: Prometheus's `up` for every
# target, and the counters of Prometheus and Alertmanager that the meta alerts watch.
SYNTHETIC: dict[str, frozenset[str]] = {
    "up": frozenset(),
    "prometheus_rule_evaluation_failures_total": frozenset({"rule_group"}),
    "alertmanager_notifications_failed_total": frozenset({"integration"}),
}

# Labels every scraped series carries (monitoring/prometheus.yml target labels).
TARGET_LABELS = frozenset({"job", "instance", "service"})

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Series:
    """One exported series name: its family, its type as a rate argument, and its labels."""

    family: str
    counter_like: bool  # rate()/increase() make sense on it
    labels: frozenset[str]


def series_catalogue(extra: bool = False) -> dict[str, Series]:
    """Every series name of the contract (histograms expanded), plus Prometheus' synthetic ones; with
    ``extra``, also the exported series outside the contract."""
    out: dict[str, Series] = {}
    families = {**METRICS, **EXTRA_EXPORTED} if extra else METRICS
    for name, (kind, labels) in families.items():
        if kind == "histogram":
            out[name + "_bucket"] = Series(name, True, labels | {"le"})
            out[name + "_sum"] = Series(name, True, labels)
            out[name + "_count"] = Series(name, True, labels)
        else:
            out[name] = Series(name, kind == "counter", labels)
    for name, labels in SYNTHETIC.items():
        out[name] = Series(name, name.endswith("_total"), labels)
    return out


# --------------------------------------------------------------------------- scanner
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*(?![\w]))
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}@])
    """,
    re.VERBOSE,
)

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
        "start",
        "end",
    }
)
_AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(expr: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot scan PromQL at {pos}: {expr[pos : pos + 30]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind not in ("ws", "comment"):
            out.append(Token(kind, m.group()))
    return out


@dataclass(frozen=True)
class Selector:
    """A vector selector: its metric name (None when only ``__name__`` matchers name it) and matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


def _unquote(s: str) -> str:
    if s[0] == "`":
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def _names_from_name_matcher(op: str, value: str) -> set[str]:
    if op == "=":
        return {value}
    if op == "=~" and all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", alt) for alt in value.split("|")):
        return set(value.split("|"))
    raise ValueError(f"cannot tell which metrics __name__{op}{value!r} selects")


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of ``expr``, in order."""
    toks = tokens(expr)
    out: list[Selector] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t.kind == "ident" and t.text in _LABEL_LIST_KEYWORDS and nxt is not None and nxt.text == "(":
            i = _skip_parens(toks, i + 1)
            continue
        if t.kind == "ident" and (nxt is not None and nxt.text == "("):
            i += 1  # a function or aggregation call
            continue
        if t.kind == "ident" and (t.text in _KEYWORDS or t.text in _AGGREGATIONS):
            i += 1
            continue
        if t.kind == "ident" or t.text == "{":
            name = t.text if t.kind == "ident" else None
            j = i + 1 if t.kind == "ident" else i
            matchers: list[tuple[str, str, str]] = []
            if j < len(toks) and toks[j].text == "{":
                j += 1
                while toks[j].text != "}":
                    if toks[j].text == ",":
                        j += 1
                        continue
                    label, op, value = toks[j].text, toks[j + 1].text, toks[j + 2]
                    if op not in ("=", "!=", "=~", "!~") or value.kind != "string":
                        raise ValueError(f"bad matcher near {label!r} in {expr!r}")
                    matchers.append((label, op, _unquote(value.text)))
                    j += 3
                j += 1
            out.append(Selector(name, tuple(matchers)))
            i = j
            continue
        i += 1
    return out


def _skip_parens(toks: list[Token], i: int) -> int:
    """Index after the parenthesis group starting at toks[i] == '('."""
    depth = 0
    while i < len(toks):
        if toks[i].text == "(":
            depth += 1
        elif toks[i].text == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


def metric_names(expr: str) -> set[str]:
    """Every metric (series) name ``expr`` selects."""
    names: set[str] = set()
    for sel in selectors(expr):
        if sel.name is not None:
            names.add(sel.name)
        for label, op, value in sel.matchers:
            if label == "__name__":
                names |= _names_from_name_matcher(op, value)
    return names


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by``, ``without``, ``on``, ``ignoring`` and ``group_left/right`` lists."""
    toks = tokens(expr)
    out: set[str] = set()
    for i, t in enumerate(toks):
        if (
            t.kind == "ident"
            and t.text in _LABEL_LIST_KEYWORDS
            and i + 1 < len(toks)
            and toks[i + 1].text == "("
        ):
            end = _skip_parens(toks, i + 1)
            out |= {x.text for x in toks[i + 2 : end - 1] if x.kind == "ident"}
    return out


def calls(expr: str, function: str) -> list[str]:
    """The argument text of every call of ``function`` in ``expr``."""
    out = []
    for m in re.finditer(rf"(?<![\w:]){re.escape(function)}\s*\(", expr):
        depth, start = 0, m.end() - 1
        for k in range(start, len(expr)):
            if expr[k] == "(":
                depth += 1
            elif expr[k] == ")":
                depth -= 1
                if depth == 0:
                    out.append(expr[start + 1 : k])
                    break
    return out


# --------------------------------------------------------------------------- Grafana
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}
_GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def grafana_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _GRAFANA_VAR.finditer(text)}


def grafana_to_promql(expr: str, value: str = "x") -> str:
    """``expr`` with Grafana's built-in intervals replaced by durations and other variables by ``value``."""
    return _GRAFANA_VAR.sub(lambda m: GRAFANA_BUILTINS.get(next(g for g in m.groups() if g), value), expr)


def label_values_selector(query: str) -> str | None:
    """The series selector of a ``label_values(selector, label)`` variable query, if it has one."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- exposition format
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+\S+")


def exposition_names(text: str) -> set[str]:
    """Series names declared (``# TYPE``, expanded to their samples' names) or sampled in ``text``,
    in the Prometheus text format 0.0.4 or OpenMetrics (which declares ``c`` for ``c_total`` and
    ``b`` for ``b_info``)."""
    names: set[str] = set()
    histograms: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            kind = kind.strip()
            if kind == "histogram":
                histograms.add(name)
            elif kind == "summary":
                names |= {name, name + "_sum", name + "_count"}
            elif kind == "counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind == "info":
                names.add(name if name.endswith("_info") else name + "_info")
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            if m:
                names.add(m.group(1))
    # A histogram's samples say which of its series exist (OpenMetrics omits _sum/_count when there
    # are negative buckets); one without samples (no label set yet) stands for all three.
    for h in histograms:
        if not {h + s for s in _HISTOGRAM_SUFFIXES} & names:
            names |= {h + s for s in _HISTOGRAM_SUFFIXES}
    return names


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if m and not line.startswith("#"):
            labels = {
                k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL.findall(m.group(2) or "")
            }
            out.append((m.group(1), labels, float(m.group(3))))
    return out
