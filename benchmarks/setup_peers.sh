#!/usr/bin/env bash
# Install the peer systems the benchmarks compare Steward against, each into its own
# virtual environment under benchmarks/.peers/ (never into Steward's venv).
#
# Usage: bash benchmarks/setup_peers.sh [PEER ...]
#   PEER: mlflow, pandera, gx, prefect, bentoml, feast, evidently, nannyml; none given: all of them.
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
PREFECT_VERSION="3.8.8"  # the pipelines peer; the last 3.8.x
PREFECT_FASTAPI_SPEC="fastapi<0.155"  # Prefect 3.8 does not run with newer FastAPI releases
# The serving benchmark trains the same models in each venv: the scikit-learn and numpy of Steward's venv.
SKLEARN_VERSION="1.9.1"
BENTOML_VERSION="${BENTOML_VERSION:-}"  # empty: the newest release that installs
# The feature store peer. Feast 0.67 needs pandas < 3: the newest 2.x, with Steward's pyarrow and numpy.
FEAST_VERSION="0.67.0"
FEAST_PANDAS_VERSION="2.3.3"

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

# install_mlflow_serving: scikit-learn in the MLflow venv, for `mlflow models serve --env-manager local`
# in benchmarks/serving.py (the model is trained and served in that venv, with Steward's versions).
install_mlflow_serving() {
    local venv="$PEERS/mlflow"
    if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('scikit-learn') != '$SKLEARN_VERSION' or m.version('numpy') != '$NUMPY_VERSION')" 2>/dev/null; then
        echo "scikit-learn $SKLEARN_VERSION already installed in $venv"
        return
    fi
    echo "installing scikit-learn $SKLEARN_VERSION into $venv"
    "$venv/bin/python" -m pip install --quiet "scikit-learn==$SKLEARN_VERSION" "numpy==$NUMPY_VERSION" \
        "mlflow==$MLFLOW_VERSION"
    "$venv/bin/python" -c "import sklearn, mlflow.pyfunc.scoring_server; print('scikit-learn', sklearn.__version__, 'installed')"
}

# install_bentoml: a venv benchmarks/.peers/bentoml with BentoML, scikit-learn and pandas, for
# benchmarks/peer_serving.py. Optional: the serving benchmark skips BentoML when this venv is missing.
install_bentoml() {
    local venv="$PEERS/bentoml"
    local spec="bentoml${BENTOML_VERSION:+==$BENTOML_VERSION}"
    if [ -x "$venv/bin/bentoml" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('scikit-learn') != '$SKLEARN_VERSION' or m.version('pandas') != '$PANDAS_VERSION' or ('$BENTOML_VERSION' != '' and m.version('bentoml') != '$BENTOML_VERSION'))" 2>/dev/null; then
        echo "bentoml $("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('bentoml'))") already installed in $venv"
        return
    fi
    echo "installing $spec into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$spec" "scikit-learn==$SKLEARN_VERSION" "numpy==$NUMPY_VERSION" \
        "pandas==$PANDAS_VERSION"
    "$venv/bin/python" -c "import bentoml, sklearn; print('bentoml', bentoml.__version__, 'installed')"
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

# install_prefect: a venv benchmarks/.peers/prefect with Prefect (and a FastAPI it runs with), for
# benchmarks/peer_prefect.py. The check runs a flow on a throwaway ephemeral SQLite backend, offline.
install_prefect() {
    local venv="$PEERS/prefect"
    if [ -x "$venv/bin/python" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; from packaging.version import Version; sys.exit(m.version('prefect') != '$PREFECT_VERSION' or Version(m.version('fastapi')) >= Version('0.155'))" 2>/dev/null; then
        echo "prefect $PREFECT_VERSION already installed in $venv"
        return
    fi
    echo "installing prefect $PREFECT_VERSION into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "prefect==$PREFECT_VERSION" "$PREFECT_FASTAPI_SPEC"
    local home
    home="$(mktemp -d)"
    env -u PREFECT_API_URL -u PYTHONPATH -u VIRTUAL_ENV PREFECT_HOME="$home" PREFECT_SERVER_EPHEMERAL_ENABLED=true \
        PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_LOGGING_LEVEL=ERROR \
        "$venv/bin/python" -c "from prefect import flow, __version__; assert flow(lambda: 1, name='check')() == 1; print('prefect', __version__, 'installed')"
    rm -rf "$home"
}

# install_feast: a venv benchmarks/.peers/feast with Feast (file offline store on Dask, SQLite online store),
# for benchmarks/features_feast.py. The check applies nothing: it imports what the benchmark uses.
install_feast() {
    local venv="$PEERS/feast"
    local pins="{'feast': '$FEAST_VERSION', 'pandas': '$FEAST_PANDAS_VERSION', 'pyarrow': '$PYARROW_VERSION', 'numpy': '$NUMPY_VERSION'}"
    if [ -x "$venv/bin/python" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(any(m.version(p) != v for p, v in $pins.items()))" 2>/dev/null; then
        echo "feast $FEAST_VERSION already installed in $venv"
        return
    fi
    echo "installing feast $FEAST_VERSION into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "feast==$FEAST_VERSION" "pandas==$FEAST_PANDAS_VERSION" \
        "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION"
    env -u PYTHONPATH -u VIRTUAL_ENV FEAST_USAGE=False "$venv/bin/python" -c \
        "import feast, feast.infra.offline_stores.dask, feast.infra.online_stores.sqlite; print('feast', feast.__version__, 'installed')"
}

# The monitoring peers, for benchmarks/monitoring_peer.py. Evidently 0.7 and NannyML 0.13 need pandas < 3:
# the newest 2.x, with Steward's pyarrow and numpy. NannyML imports statsmodels without declaring it.
EVIDENTLY_VERSION="0.7.23"
NANNYML_VERSION="0.13.1"
NANNYML_STATSMODELS_VERSION="0.15.0"
MONITORING_PANDAS_VERSION="2.3.3"

# install_monitoring_peer NAME VERSION [REQUIREMENT ...]: a venv benchmarks/.peers/NAME with NAME==VERSION (a
# package whose module has the same name), pandas 2.x, Steward's pyarrow and numpy, and the REQUIREMENTs.
install_monitoring_peer() {
    local name="$1" version="$2"
    shift 2
    local venv="$PEERS/$name"
    local pins="{'$name': '$version', 'pandas': '$MONITORING_PANDAS_VERSION', 'pyarrow': '$PYARROW_VERSION', 'numpy': '$NUMPY_VERSION'}"
    local check="import $name; print('$name', $name.__version__, 'installed')"
    if [ -x "$venv/bin/python" ] \
        && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(any(m.version(p) != v for p, v in $pins.items()))" 2>/dev/null \
        && env -u PYTHONPATH DO_NOT_TRACK=1 "$venv/bin/python" -W ignore -c "import $name" 2>/dev/null; then
        echo "$name $version already installed in $venv"
        return
    fi
    echo "installing $name $version into $venv"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$name==$version" "pandas==$MONITORING_PANDAS_VERSION" \
        "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION" "$@"
    env -u PYTHONPATH -u VIRTUAL_ENV DO_NOT_TRACK=1 "$venv/bin/python" -W ignore -c "$check"
}

peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(mlflow pandera gx prefect bentoml feast evidently nannyml)
for peer in "${peers[@]}"; do
    case "$peer" in
        mlflow) install_mlflow; install_mlflow_serving ;;
        pandera) install_data_peer pandera pandera "$PANDERA_VERSION" ;;
        gx) install_data_peer gx great_expectations "$GX_VERSION" ;;
        prefect) install_prefect ;;
        # BentoML is optional: a failed install is reported, and the other peers still count.
        bentoml) install_bentoml || echo "bentoml did not install: benchmarks/serving.py skips it" >&2 ;;
        feast) install_feast ;;
        evidently) install_monitoring_peer evidently "$EVIDENTLY_VERSION" ;;
        # NannyML is optional: benchmarks/monitoring.py skips it when its venv is missing.
        nannyml) install_monitoring_peer nannyml "$NANNYML_VERSION" "statsmodels==$NANNYML_STATSMODELS_VERSION" \
            || echo "nannyml did not install: benchmarks/monitoring.py skips it" >&2 ;;
        *) echo "unknown peer: $peer (mlflow, pandera, gx, prefect, bentoml, feast, evidently, nannyml)" >&2; exit 2 ;;
    esac
done
