#!/usr/bin/env bash
# Start the bundled inference service on the default model; installs what is missing first.
# Extra arguments go to `inferplane serve` (for example --port 9000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
source "$ROOT/scripts/bootstrap.sh" ""
exec "$ROOT/.venv/bin/inferplane" serve "$@"
