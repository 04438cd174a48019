#!/usr/bin/env bash
# Install the peer systems the benchmarks compare Steward against, each into its own
# virtual environment under benchmarks/.peers/ (never into Steward's venv).
#
# Usage: bash benchmarks/setup_peers.sh
# Idempotent: a peer already installed at the pinned version is skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$HERE/.peers"
PYTHON="${PYTHON:-python3}"

MLFLOW_VERSION="3.17.2"  # 3.18.0 does not install on this machine

mkdir -p "$PEERS"

install_mlflow() {
    local venv="$PEERS/mlflow"
    if [ -x "$venv/bin/python" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mlflow') != '$MLFLOW_VERSION')" 2>/dev/null \
        && [ -x "$venv/bin/mlflow" ]; then
        echo "mlflow $MLFLOW_VERSION already installed in $venv"
        return
    fi
    echo "installing mlflow $MLFLOW_VERSION into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # The full mlflow package carries the tracking server (Flask app, gunicorn/uvicorn, SQLAlchemy, alembic).
    "$venv/bin/python" -m pip install --quiet "mlflow==$MLFLOW_VERSION"
    "$venv/bin/python" -c "import mlflow; print('mlflow', mlflow.__version__, 'installed')"
}

install_mlflow
