"""Drift between two dataset versions: the SDK embedded and through a server, and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import steward
from steward.api.app import create_app
from steward.cli.app import app
from steward.config import load_settings
from steward.errors import InvalidInput, NotFound
from tests.conftest import reset_sdk
from tests.plugins.server import running_server

runner = CliRunner()


def table(shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 5_000
    return pa.table(
        {
            "steady": rng.normal(0, 1, n),
            "moved": rng.normal(shift, 1, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture
def versions(steward_home: Path) -> Path:
    steward.ingest(table(0.0, 1), "usage")
    steward.ingest(table(1.0, 2), "usage")
    return steward_home


def test_the_moved_column_drifts_and_the_steady_ones_do_not(versions: Path) -> None:
    report = steward.dataset_drift("usage@1", "usage@2")
    assert report.drifted_columns == ["moved"]
    assert report.feature("moved") is not None and report.feature("moved").test == "wasserstein"  # type: ignore[union-attr]
    assert report.drift_share == pytest.approx(1 / 3) and not report.dataset_drift
    only = steward.dataset_drift("usage@1", "usage@2", columns=["steady"])
    assert [f.column for f in only.features] == ["steady"] and only.drifted_columns == []


def test_bad_versions_are_refused_naming_them(versions: Path) -> None:
    with pytest.raises(InvalidInput, match="reference 'not a ref!' is not a dataset version"):
        steward.dataset_drift("not a ref!", "usage@2")
    with pytest.raises(InvalidInput, match="current 'usage@x' is not a dataset version"):
        steward.dataset_drift("usage@1", "usage@x")
    with pytest.raises(NotFound):
        steward.dataset_drift("usage@1", "usage@9")
    with pytest.raises(InvalidInput, match="no column 'missing'"):
        steward.dataset_drift("usage@1", "usage@2", columns=["missing"])


def test_the_cli_prints_the_table_and_exits_1_only_on_dataset_drift(versions: Path) -> None:
    result = runner.invoke(app, ["monitor", "drift", "usage@1", "usage@2"])
    assert result.exit_code == 0, result.output
    assert "moved" in result.output and "Drift share 0.3333" in result.output
    steward.ingest(
        table(2.0, 3).set_column(0, "steady", pa.array(np.random.default_rng(4).normal(3, 1, 5000))), "usage"
    )
    drifted = runner.invoke(app, ["monitor", "drift", "usage@1", "usage@3", "--json"])
    assert drifted.exit_code == 1, drifted.output
    assert '"dataset_drift": true' in drifted.output


@pytest.fixture
def remote(versions: Path) -> Iterator[steward.Connection]:
    with running_server(create_app(load_settings(home=versions))) as url:
        connection = steward.connect(url)
        try:
            yield connection
        finally:
            connection.close()
            reset_sdk()


def test_the_remote_client_gets_the_same_report(remote: steward.Connection) -> None:
    embedded = steward.default_connection().monitoring.dataset_drift("usage@1", "usage@2")
    assert remote.monitoring.dataset_drift("usage@1", "usage@2").to_json() == embedded.to_json()
    with pytest.raises(NotFound):
        remote.monitoring.dataset_drift("usage@1", "usage@9")
