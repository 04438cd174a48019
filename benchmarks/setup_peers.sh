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
PANDERA_VERSION="0.35.0"
GX_VERSION="1.24.1"  # GX Core 1.x
# The data peers get the pandas/pyarrow/numpy that Steward's venv has, so only the libraries differ.
PANDAS_VERSION="3.1.1"
PYARROW_VERSION="26.0.1"
NUMPY_VERSION="2.4.6"

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

# install_data_peer NAME PACKAGE VERSION: a venv benchmarks/.peers/NAME with PACKAGE==VERSION and the
# pinned pandas, pyarrow and numpy (what benchmarks/peer_data.py runs in).
install_data_peer() {
    local name="$1" package="$2" version="$3"
    local venv="$PEERS/$name"
    local pins="{'$package': '$version', 'pandas': '$PANDAS_VERSION', 'pyarrow': '$PYARROW_VERSION', 'numpy': '$NUMPY_VERSION'}"
    if [ -x "$venv/bin/python" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(any(m.version(p) != v for p, v in $pins.items()))" 2>/dev/null; then
        echo "$package $version already installed in $venv"
        return
    fi
    echo "installing $package $version into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$package==$version" "pandas==$PANDAS_VERSION" \
        "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION"
    "$venv/bin/python" -c "import importlib.metadata as m; print('$package', m.version('$package'), 'installed')"
}

install_mlflow
install_data_peer pandera pandera "$PANDERA_VERSION"
install_data_peer gx great_expectations "$GX_VERSION"
