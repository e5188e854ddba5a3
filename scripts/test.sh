#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds the package, then cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
PY=${PYTHON:-python3}

echo "== system packages for the telemetry tests (promtool, Pushgateway), if missing"
if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus-pushgateway ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway
fi

echo "== install (builds the Rust extension in release mode)"
"$PY" -m pip install -q -e ".[test]"

echo "== cargo test"
cargo test --release --quiet

echo "== lint and stubs"
cargo fmt --check
cargo clippy --release --quiet -- -D warnings
ruff check python tests benches
"$PY" -m mypy.stubtest neorl_industrial._core

echo "== monitoring tools (promtool, prometheus; amtool, prometheus-alertmanager), if missing"
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus prometheus-alertmanager
fi

echo "== pytest"
"$PY" -m pytest "$@"
