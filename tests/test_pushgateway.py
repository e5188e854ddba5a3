"""push_to_gateway against a real Prometheus Pushgateway (Debian's prometheus-pushgateway)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from telemetry_http import free_port, pushgateway_server, request

from neorl_industrial.exceptions import ConfigError, ExporterError
from neorl_industrial.exporter import delete_from_gateway, push_to_gateway, pushadd_to_gateway
from neorl_industrial.metrics import Counter, Registry


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with pushgateway_server() as url:  # fails where prometheus-pushgateway is missing
        yield url


def test_push_replace_add_and_delete(gateway: str) -> None:
    reg = Registry()
    reg.core.env_metrics("ChemicalReactor-v0", [], [], []).record_batch(42, [1.0], 0.001, [], [], 0, [])
    Counter("training_runs_total", "Runs", registry=reg).inc()
    push_to_gateway(gateway, "train/run 1", reg, grouping_key={"instance": "node a", "seed": "7"})
    text = request(gateway + "/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("env_steps_total{"))
    assert (
        'job="train/run 1"' in line
        and 'instance="node a"' in line
        and 'seed="7"' in line
        and line.endswith(" 42")
    )
    assert "training_runs_total{" in text
    extra = Registry()
    Counter("extra_total", "Extra", registry=extra).inc(3)
    pushadd_to_gateway(gateway, "train/run 1", extra, grouping_key={"instance": "node a", "seed": "7"})
    text = request(gateway + "/metrics").text
    assert "extra_total{" in text and "env_steps_total{" in text
    delete_from_gateway(gateway, "train/run 1", grouping_key={"instance": "node a", "seed": "7"})
    text = request(gateway + "/metrics").text
    assert 'job="train/run 1"' not in text


def test_push_failures_are_exporter_errors() -> None:
    with pytest.raises(ExporterError) as e:
        push_to_gateway(f"http://127.0.0.1:{free_port()}", "job", Registry(), timeout=2)
    assert e.value.errno is not None
    with pytest.raises(ConfigError, match="url: https is not supported by the push client"):
        push_to_gateway("https://127.0.0.1:1", "job", Registry())
    with pytest.raises(ConfigError, match="job: must not be empty"):
        push_to_gateway("http://127.0.0.1:1", "", Registry())


def test_the_gateway_refusing_a_push_is_reported(gateway: str) -> None:
    with pytest.raises(ExporterError, match="gateway answered 404"):
        push_to_gateway(gateway + "/nonexistent-prefix", "job", Registry(), timeout=5)
