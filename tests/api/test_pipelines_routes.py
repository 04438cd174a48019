"""The pipeline routes over real HTTP, and ``RemotePipelineService`` against the embedded service.

Pipelines run embedded, on the server's own home (as workers sharing its store would); the server then
lists them and their steps. The remote client must return what the embedded service does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import steward
from steward.client.http import HttpClient
from steward.client.pipelines import RemotePipelineService
from steward.config import load_settings
from steward.errors import InvalidInput, NotFound
from steward.pipelines.models import PipelineRunInfo
from steward.pipelines.sdk import load_pipeline
from steward.pipelines.service import PipelineService
from steward.store.platform import Platform
from steward.tracking.service import TrackingService
from tests.api.test_tracking_routes import assert_error

FILES = Path(__file__).parents[1] / "cli" / "pipeline_files"


@pytest.fixture
def runs(
    steward_home: Path, steward_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """On the server's home: a succeeded chain run, then a diamond run whose ``right`` step failed."""
    steward.configure(home=tmp_path / "server-home")
    chain = load_pipeline(f"{FILES / 'chain.py'}:chain").run(n=4, c=0.5)
    monkeypatch.setenv("DIAMOND_RIGHT_FAILS", "1")
    diamond = load_pipeline(f"{FILES / 'diamond.py'}:diamond").run()
    assert chain.succeeded and not diamond.succeeded
    return chain.id, diamond.id


@pytest.fixture
def api(steward_server: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on the test server's ``/api/v1``."""
    with httpx.Client(base_url=f"{steward_server}/api/v1") as client:
        yield client


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[PipelineService]:
    """The embedded pipeline service on the server's home."""
    platform = Platform.from_settings(load_settings(home=tmp_path / "server-home"))
    yield PipelineService(platform, TrackingService(platform))
    platform.close()


@pytest.fixture
def remote(steward_server: str) -> Iterator[RemotePipelineService]:
    """The remote pipeline service of the test server."""
    with HttpClient(steward_server) as http:
        yield RemotePipelineService(http)


def test_openapi_lists_the_pipeline_routes(steward_server: str) -> None:
    paths = httpx.get(f"{steward_server}/openapi.json").json()["paths"]

    for path in (
        "/api/v1/pipeline-runs",
        "/api/v1/pipeline-runs/{run_id}",
        "/api/v1/pipeline-runs/{run_id}/steps",
    ):
        assert paths[path]["get"]["tags"] == ["pipelines"]


def test_the_list_is_newest_first_with_counts_and_steps_without_inputs(
    api: httpx.Client, runs: tuple[str, str]
) -> None:
    chain, diamond = runs

    response = api.get("/pipeline-runs")
    listed = response.json()["runs"]

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert [r["run_id"] for r in listed] == [diamond, chain]
    assert listed[0]["state"] == "FAILED"
    assert listed[0]["counts"] == {"SUCCEEDED": 2, "FAILED": 1, "SKIPPED": 2}
    assert listed[1]["counts"] == {"SUCCEEDED": 3}
    assert [s["key"] for s in listed[0]["steps"]] == ["load", "left", "right", "merge", "report"]
    assert all("inputs" not in s for r in listed for s in r["steps"])
    assert listed[1]["params"] == {"n": 4, "c": 0.5, "label": "run", "shout": False, "weights": []}


def test_the_list_filters_by_pipeline_and_limits(api: httpx.Client, runs: tuple[str, str]) -> None:
    chain, diamond = runs

    only_chain = api.get("/pipeline-runs", params={"pipeline": "chain"}).json()["runs"]
    newest = api.get("/pipeline-runs", params={"limit": 1}).json()["runs"]
    unknown = api.get("/pipeline-runs", params={"pipeline": "nope"}).json()

    assert [r["run_id"] for r in only_chain] == [chain]
    assert [r["run_id"] for r in newest] == [diamond]
    assert unknown == {"runs": []}
    assert_error(api.get("/pipeline-runs", params={"limit": 0}), 400, "invalid_input", "limit")
    assert_error(api.get("/pipeline-runs", params={"limit": 5000}), 400, "invalid_input", "limit")
    assert_error(api.get("/pipeline-runs", params={"limit": "many"}), 422, "invalid_input", "limit")


def test_get_returns_the_run_in_full_and_steps_lists_its_steps(
    api: httpx.Client, runs: tuple[str, str], embedded: PipelineService
) -> None:
    _, diamond = runs

    got = api.get(f"/pipeline-runs/{diamond}").json()
    steps = api.get(f"/pipeline-runs/{diamond}/steps").json()["steps"]

    expected = embedded.get_run(diamond).to_json()
    assert got == {**expected, "counts": {"SUCCEEDED": 2, "FAILED": 1, "SKIPPED": 2}}
    assert got["steps"][1]["inputs"]["xs"]["inline"] == [1, 2, 3]  # the full form keeps the inputs
    assert [(s["key"], s["state"]) for s in steps] == [
        ("load", "SUCCEEDED"),
        ("left", "SUCCEEDED"),
        ("right", "FAILED"),
        ("merge", "SKIPPED"),
        ("report", "SKIPPED"),
    ]
    right = steps[2]
    assert "right was told to fail" in right["error"]
    assert right["attempts"] == 1 and right["host"] and right["start_time"] <= right["end_time"]
    assert set(right) >= {"key", "state", "attempts", "start_time", "end_time", "error", "host", "run_id"}
    assert "inputs" not in right


def test_an_unknown_pipeline_run_is_a_404(api: httpx.Client, runs: tuple[str, str]) -> None:
    assert_error(api.get("/pipeline-runs/nope"), 404, "not_found", "run_id")
    assert_error(api.get("/pipeline-runs/nope/steps"), 404, "not_found", "run_id")


def test_an_ordinary_run_is_not_a_pipeline_run(api: httpx.Client, runs: tuple[str, str]) -> None:
    with steward.start_run(experiment="plain") as plain:
        steward.log_param("a", 1)

    assert_error(api.get(f"/pipeline-runs/{plain.id}"), 404, "not_found", "run_id")


# -- the remote client: the same answers as the embedded service ------------------------------------


def without_inputs(info: PipelineRunInfo) -> PipelineRunInfo:
    """``info`` as the list route sends it: each step's inputs left out."""
    return replace(info, steps=[replace(s, inputs={}) for s in info.steps])


def test_the_remote_client_gets_what_the_embedded_service_gets(
    runs: tuple[str, str], embedded: PipelineService, remote: RemotePipelineService
) -> None:
    for run_id in runs:
        assert remote.get_run(run_id) == embedded.get_run(run_id)


def test_the_remote_client_lists_what_the_embedded_service_lists(
    runs: tuple[str, str], embedded: PipelineService, remote: RemotePipelineService
) -> None:
    for pipeline, limit in ((None, 50), ("chain", 50), ("diamond", 1), (None, 1), ("nope", 5)):
        expected = [without_inputs(i) for i in embedded.list_runs(pipeline, limit)]
        assert remote.list_runs(pipeline, limit) == expected
    assert remote.list_steps(runs[1]) == without_inputs(embedded.get_run(runs[1])).steps


def test_the_remote_client_raises_the_embedded_errors(
    runs: tuple[str, str], embedded: PipelineService, remote: RemotePipelineService
) -> None:
    for service in (embedded, remote):
        with pytest.raises(NotFound, match="no pipeline run 'nope'"):
            service.get_run("nope")
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            service.list_runs(limit=0)
    for bad in ("", "a/b"):
        with pytest.raises(NotFound):
            remote.get_run(bad)
        with pytest.raises(NotFound):
            remote.list_steps(bad)
