"""The HTTP client and the remote tracking service: the errors and guarantees a remote user relies on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import steward
from steward.client.http import HttpClient
from steward.client.tracking import RemoteTrackingService
from steward.config import load_settings
from steward.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    StewardError,
)
from steward.store.platform import Platform
from steward.tracking.models import MetricSeries, RunStatus
from steward.tracking.service import TrackingService
from tests.services import free_port


@pytest.fixture
def remote(steward_server: str) -> Iterator[RemoteTrackingService]:
    """The remote tracking service on a fresh test server."""
    with HttpClient(steward_server) as http:
        yield RemoteTrackingService(http)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[TrackingService]:
    """The embedded service on its own home, to compare errors with."""
    platform = Platform.from_settings(load_settings(home=tmp_path / "embedded-home"))
    yield TrackingService(platform)
    platform.close()


def offline(handler: Callable[[httpx.Request], httpx.Response]) -> HttpClient:
    """A client whose requests go to ``handler`` instead of the network."""
    return HttpClient("http://steward.test", token="s3cret-token", transport=httpx.MockTransport(handler))


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should have been sent, got {request.method} {request.url}")


def series(key: str, values: list[float], steps: list[int] | list[float] | None = None) -> MetricSeries:
    n = len(values)
    step_array = np.asarray(steps if steps is not None else range(n))
    return MetricSeries(
        key, step_array, np.asarray(values, dtype=np.float64), np.full(n, 1_000, dtype=np.int64)
    )


def test_server_errors_are_raised_as_the_same_class_and_message(
    remote: RemoteTrackingService, embedded: TrackingService
) -> None:
    cases: list[Callable[[RemoteTrackingService | TrackingService], object]] = [
        lambda t: t.get_run("0123"),
        lambda t: t.get_experiment("nope"),
        lambda t: t.create_experiment("taken"),
        lambda t: t.log_params(t.search_runs(["taken"])[0].id, {"C": 2}),
        lambda t: t.end_run(t.search_runs(["taken"])[0].id, RunStatus.RUNNING),
        lambda t: t.search_runs(["taken"], filter="metrics.auc >>> 1"),
    ]
    for tracking in (remote, embedded):
        run = tracking.create_run("taken")
        tracking.log_params(run.id, {"C": 1})
    for case in cases:
        with pytest.raises(StewardError) as local:
            case(embedded)
        with pytest.raises(StewardError) as over_http:
            case(remote)
        assert type(over_http.value) is type(local.value)
        assert over_http.value.message == local.value.message.replace(
            embedded.search_runs(["taken"])[0].id, remote.search_runs(["taken"])[0].id
        )
        assert over_http.value.details.get("field") == local.value.details.get("field")


def test_client_raises_already_exists_and_conflict(remote: RemoteTrackingService) -> None:
    remote.create_experiment("churn")
    with pytest.raises(AlreadyExists, match="churn"):
        remote.create_experiment("churn")
    run = remote.create_run("churn")
    remote.end_run(run.id, RunStatus.FINISHED)
    with pytest.raises(Conflict):
        remote.log_metrics(run.id, [series("loss", [0.5])])
    with pytest.raises(Conflict):
        remote.log_artifact_bytes(run.id, b"late", "late.txt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_metric_is_refused_before_sending(bad: float) -> None:
    with offline(never_called) as http, pytest.raises(InvalidInput) as info:
        RemoteTrackingService(http).log_metrics("r1", [series("loss", [0.5, bad])])
    assert info.value.details["field"] == "metrics.loss"
    assert "position 1" in info.value.message


def test_non_integer_step_is_refused_before_sending() -> None:
    with offline(never_called) as http, pytest.raises(InvalidInput) as info:
        RemoteTrackingService(http).log_metrics("r1", [series("loss", [0.5], steps=[1.5])])
    assert info.value.details["field"] == "metrics.loss.step"


def test_bad_param_value_is_refused_before_sending() -> None:
    with offline(never_called) as http, pytest.raises(InvalidInput) as info:
        RemoteTrackingService(http).log_params("r1", {"layers": [1, 2]})
    assert info.value.details["field"] == "params.layers"


def test_error_responses_that_are_not_stewards_map_by_status() -> None:
    answers = {
        "/api/v1/runs/a": httpx.Response(502, text="<html>Bad Gateway</html>"),
        "/api/v1/runs/b": httpx.Response(404, text="no such page"),
        "/api/v1/runs/c": httpx.Response(418, text="teapot"),
        "/api/v1/runs/d": httpx.Response(
            500, json={"error": {"code": "internal_error", "message": "oops (id 7)"}}
        ),
        "/api/v1/runs/e": httpx.Response(
            409, json={"error": {"code": "future_code", "message": "m", "details": {}}}
        ),
    }
    with offline(lambda request: answers[request.url.path]) as http:
        tracking = RemoteTrackingService(http)
        with pytest.raises(ServiceUnavailable, match="502"):
            tracking.get_run("a")
        with pytest.raises(NotFound, match="no such page"):
            tracking.get_run("b")
        with pytest.raises(StewardError, match="418"):
            tracking.get_run("c")
        with pytest.raises(StewardError, match=r"oops \(id 7\)") as info:
            tracking.get_run("d")
        assert type(info.value) is StewardError
        with pytest.raises(StewardError, match="m"):
            tracking.get_run("e")


def test_server_down_is_service_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with HttpClient(url, timeout=2) as http, pytest.raises(ServiceUnavailable) as info:
        RemoteTrackingService(http).get_run("abc")
    assert url in info.value.message
    assert info.value.details == {"url": url}


def test_timeout_is_service_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with offline(slow) as http, pytest.raises(ServiceUnavailable, match="did not answer in time"):
        RemoteTrackingService(http).list_experiments()


def test_token_is_sent_as_bearer_and_never_shown() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"experiments": []})

    with offline(record) as http:
        assert RemoteTrackingService(http).list_experiments() == []
        assert "s3cret" not in repr(http)
    assert seen[0].headers["authorization"] == "Bearer s3cret-token"
    assert seen[0].url.params["include_deleted"] == "false"


def test_metrics_round_trip_with_their_dtypes(remote: RemoteTrackingService) -> None:
    run = remote.create_run("churn")
    steps = np.arange(10_000, dtype=np.int64)
    values = np.random.default_rng(0).random(10_000)
    written = remote.log_metrics(
        run.id, [MetricSeries("val/loss 2", steps, values, steps * 10), series("acc", [1])]
    )
    assert written == 10_001
    history = remote.get_metric_history(run.id, "val/loss 2")
    assert history.key == "val/loss 2"
    assert history.steps.dtype == np.int64
    assert history.timestamps.dtype == np.int64
    np.testing.assert_array_equal(history.steps, steps)
    np.testing.assert_array_equal(history.values, values)  # exact: floats survive JSON unrounded
    np.testing.assert_array_equal(history.timestamps, steps * 10)
    assert remote.get_run(run.id).metrics == {"val/loss 2": values[-1], "acc": 1.0}


def test_ids_and_keys_cannot_reroute_requests(remote: RemoteTrackingService) -> None:
    run = remote.create_run("churn")
    remote.log_metrics(run.id, [series("loss", [0.5])])
    for run_id in ("", "..", f"{run.id}/metrics/loss", "a b?c#d"):
        with pytest.raises(NotFound):
            remote.get_run(run_id)
    with pytest.raises(NotFound):
        remote.get_metric_history(run.id, "loss/..")


def test_artifact_file_upload_and_verified_download(remote: RemoteTrackingService, tmp_path: Path) -> None:
    run = remote.create_run("churn")
    source = tmp_path / "model.bin"
    source.write_bytes(np.random.default_rng(1).bytes(3 * 1024 * 1024 + 7))
    artifact = remote.log_artifact(run.id, source, "models/model.bin")
    assert artifact.digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert artifact.size == source.stat().st_size
    dest = tmp_path / "out" / "nested" / "model.bin"
    assert remote.download_artifact(run.id, "models/model.bin", dest) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin"]  # no temporary file left
    assert [a.path for a in remote.list_artifacts(run.id)] == ["models/model.bin"]
    with pytest.raises(InvalidInput, match="no such file"):
        remote.log_artifact(run.id, tmp_path / "missing.bin", "x.bin")
    with pytest.raises(InvalidInput):
        remote.log_artifact_bytes(run.id, b"x", "../escape.txt")
    with pytest.raises(NotFound):
        remote.download_artifact(run.id, "models/other.bin", tmp_path / "other.bin")
    assert not (tmp_path / "other.bin").exists()


def _blob_file(home: Path, digest: str) -> Path:
    found = [p for p in home.rglob(f"*{digest}*") if p.is_file()]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("tamper", ["same-size", "shorter", "longer"])
def test_tampered_artifact_download_raises_integrity_error_and_leaves_no_file(
    remote: RemoteTrackingService, tmp_path: Path, tamper: str
) -> None:
    run = remote.create_run("churn")
    data = b"weights " * 200_000
    artifact = remote.log_artifact_bytes(run.id, data, "model.bin")
    blob = _blob_file(tmp_path / "server-home", artifact.digest)
    blob.chmod(0o644)
    forged = {"same-size": b"W" + data[1:], "shorter": data[:-100], "longer": data + b"!"}[tamper]
    blob.write_bytes(forged)
    dest = tmp_path / "downloads" / "model.bin"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError) as info:
        remote.download_artifact(run.id, "model.bin", dest)
    assert artifact.digest in info.value.message
    assert info.value.details["digest"] == artifact.digest
    assert list(dest.parent.iterdir()) == []


def test_failed_download_leaves_an_existing_dest_untouched(
    remote: RemoteTrackingService, tmp_path: Path
) -> None:
    run = remote.create_run("churn")
    artifact = remote.log_artifact_bytes(run.id, b"good bytes", "a.txt")
    blob = _blob_file(tmp_path / "server-home", artifact.digest)
    blob.chmod(0o644)
    blob.write_bytes(b"evil bytes")
    dest = tmp_path / "a.txt"
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        remote.download_artifact(run.id, "a.txt", dest)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".a.txt")) == []


def test_sdk_logs_through_the_server(steward_home: Path, steward_server: str) -> None:
    connection = steward.configure(uri=steward_server)
    assert connection.remote
    assert isinstance(connection.tracking, RemoteTrackingService)
    with steward.start_run(experiment="remote-sdk") as run:
        steward.log_params({"lr": 0.1})
        for step in range(2_500):
            steward.log_metric("loss", 1.0 / (step + 1), step=step)
        steward.log_text("hello", "notes/hello.txt")
    history = steward.get_metric_history(run.id, "loss")
    assert len(history) == 2_500
    assert steward.get_run(run.id).status is RunStatus.FINISHED
    assert (
        steward.download_artifact(run.id, "notes/hello.txt", steward_home / "hello.txt").read_text()
        == "hello"
    )
