#!/usr/bin/env bash
# Start the whole control plane on this machine (`inferplane up`): the control-plane
# process, a router with one replica of the bundled service on the default model, and
# the dashboard. Installs what is missing first. Extra arguments go to `inferplane up`
# (for example --config inferplane.yaml, or --no-dashboard).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
source "$ROOT/scripts/bootstrap.sh" ""
exec "$ROOT/.venv/bin/inferplane" up "$@"
