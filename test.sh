#!/usr/bin/env bash
# Run the whole test suite; installs what is missing first (packages, model, promtool).
# Extra arguments go to pytest (for example -k drain, or -m "not slow").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
source "$ROOT/scripts/bootstrap.sh" "test,load"
if ! command -v promtool >/dev/null; then
  say "installing Prometheus (for promtool)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
cd "$ROOT"
"$ROOT/.venv/bin/ruff" check .
"$ROOT/.venv/bin/ruff" format --check .
"$ROOT/.venv/bin/mypy" inference inferplane collector
exec "$ROOT/.venv/bin/python" -m pytest "$@"
