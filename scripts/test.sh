#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds the package, then cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
PY=${PYTHON:-python3}

echo "== system packages: prometheus (+ promtool), prometheus-alertmanager (+ amtool), prometheus-pushgateway, wrk"
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
    || ! command -v prometheus-pushgateway >/dev/null || ! command -v wrk >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-alertmanager prometheus-pushgateway wrk
fi

echo "== install (builds the Rust extension in release mode, with the test-only hooks)"
MATURIN_PEP517_ARGS="--features test-hooks" "$PY" -m pip install -q -e ".[test]"
# The IndustrialBenchmark reference implementation (tests/test_reference_data.py, benches/): its
# model needs numpy only; --no-deps keeps out the unmaintained `gym` it declares for a wrapper.
"$PY" -m pip install -q --no-deps "industrial-benchmark-python==2.0"
# structlog (the recipe of docs/telemetry.md) comes with the test extra, d3rlpy (the offline extra:
# 2.6 to 2.8.0, whose gymnasium>=1.0 agrees with this package's) too.

echo "== cargo test"
cargo test --release --quiet --features fuzzing

echo "== lint and stubs"
cargo fmt --check
cargo clippy --release --quiet --all-targets --all-features -- -D warnings
ruff check python tests benches fuzz
"$PY" -m mypy.stubtest neorl_industrial._core

echo "== pytest"
# Every tool installed above must be there: a test that misses one fails. Only a test that needs a
# privilege this machine may not grant (root, to mount a tmpfs) skips, and the summary names it.
"$PY" -m pytest -rs "$@"
