"""The data routes over real HTTP: statuses, error bodies, content types and headers a REST user sees.

What the routes do is covered by ``tests/data/test_contract.py`` through the client; this checks what
the client hides, and that the server never reads a path or URL a client names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.api.test_tracking_routes import assert_error

PARQUET = "application/vnd.apache.parquet"
CHECKS = {"columns": {"amount": {"type": "float64", "min": 0}}}


@pytest.fixture
def api(steward_server: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on the test server's ``/api/v1``."""
    with httpx.Client(base_url=f"{steward_server}/api/v1") as client:
        yield client


def parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue())


def upload(
    api: httpx.Client, table: pa.Table, name: str = "tx", status: int = 200, **options: Any
) -> dict[str, Any]:
    headers = {"Content-Type": PARQUET, "X-Steward-Ingest": json.dumps(options)}
    response = api.post(f"/datasets/{name}/ingest", content=parquet(table), headers=headers)
    assert response.status_code == status, response.text
    return dict(response.json())


def amounts(*values: float) -> pa.Table:
    return pa.table({"id": list(range(1, len(values) + 1)), "amount": list(values)})


def test_openapi_lists_the_data_routes(steward_server: str) -> None:
    paths = httpx.get(f"{steward_server}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/datasets",
        "/api/v1/datasets/{name}/ingest",
        "/api/v1/datasets/{name}/versions/{number}/data",
        "/api/v1/datasets/{name}/versions/{number}/k-anonymity",
        "/api/v1/datasets/{name}/diff",
        "/api/v1/dataset-versions/{version_id}",
        "/api/v1/quarantine/{batch_id}/release",
    ):
        assert path in paths
    ingest = paths["/api/v1/datasets/{name}/ingest"]["post"]
    assert PARQUET in ingest["requestBody"]["content"]
    assert "x-steward-ingest" in [p["name"] for p in ingest["parameters"]]
    assert (
        PARQUET
        in paths["/api/v1/datasets/{name}/versions/{number}/data"]["get"]["responses"]["200"]["content"]
    )
    assert paths["/api/v1/datasets"]["get"]["tags"] == ["data"]


def test_datasets_answer_201_200_and_400_404_409_422_for_mistakes(api: httpx.Client) -> None:
    created = api.post("/datasets", json={"name": "tx", "description": "payments", "expectations": CHECKS})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    assert (created.json()["name"], created.json()["expectations"]) == ("tx", CHECKS)
    assert api.get("/datasets").json() == {"datasets": [created.json()]}
    assert api.get("/datasets/tx").json() == created.json()
    assert_error(api.post("/datasets", json={"name": "tx"}), 409, "already_exists", "dataset")
    assert_error(api.post("/datasets", json={"name": "has space"}), 400, "invalid_input", "dataset")
    assert_error(api.post("/datasets", json={"name": "x", "owner": "me"}), 422, "invalid_input", "owner")
    bad_checks = {"name": "x", "expectations": {"columns": {"a": {"type": "nope"}}}}
    assert_error(api.post("/datasets", json=bad_checks), 400, "invalid_input", "columns.a.type")
    assert_error(api.get("/datasets/nope"), 404, "not_found", "dataset")
    assert_error(api.get("/datasets/nope/versions"), 404, "not_found", "dataset")
    assert_error(api.put("/datasets/nope/privacy", json={"privacy": None}), 404, "not_found", "dataset")
    cleared = api.put("/datasets/tx/expectations", json={"expectations": None})
    assert cleared.status_code == 200 and cleared.json()["expectations"] is None
    assert api.get("/datasets/tx/residency").json() == {
        "dataset": "tx",
        "region": "default",
        "allowed": ["default"],
    }


def test_an_upload_becomes_a_version_and_downloads_as_the_stored_parquet(api: httpx.Client) -> None:
    table = amounts(1.5, 2.5, 3.5)
    result = upload(api, table, source={"kind": "file", "url": "tx.csv"}, description="payments")
    [version] = result["versions"]
    assert (version["ref"], version["rows"], version["source"]) == (
        "tx@1",
        3,
        {"kind": "file", "url": "tx.csv"},
    )
    assert (result["quarantined"], result["reused"], result["raw"]) == ([], [False], [])
    assert upload(api, table)["reused"] == [True]
    assert api.get("/datasets/tx").json()["description"] == "payments"
    assert api.get("/datasets/tx/versions/1").json() == version
    assert api.get("/datasets/tx/versions/latest").json() == version
    assert api.get(f"/dataset-versions/{version['id']}").json() == version

    download = api.get("/datasets/tx/versions/latest/data")
    assert download.status_code == 200
    assert download.headers["content-type"] == PARQUET
    [stored] = version["files"]
    assert download.headers["x-steward-digest"] == stored["digest"]
    assert int(download.headers["content-length"]) == stored["size"] == len(download.content)
    assert pq.read_table(pa.BufferReader(download.content)).equals(table)
    some = api.get("/datasets/tx/versions/1/data", params={"columns": ["amount"]})
    assert some.status_code == 200 and some.headers["content-type"] == PARQUET
    assert pq.read_table(pa.BufferReader(some.content)).column_names == ["amount"]
    missing = api.get("/datasets/tx/versions/1/data", params={"columns": ["amount", "nope"]})
    assert_error(missing, 400, "invalid_input", "columns")


def test_unknown_or_malformed_versions_and_batches_answer_404_or_400(api: httpx.Client) -> None:
    upload(api, amounts(1.0))
    assert_error(api.get("/datasets/tx/versions/9"), 404, "not_found", "version")
    assert_error(api.get("/datasets/tx/versions/9/data"), 404, "not_found", "version")
    assert_error(api.get("/datasets/nope/versions/latest/data"), 404, "not_found", "dataset")
    assert_error(api.get("/datasets/tx/versions/one"), 400, "invalid_input", "version")
    assert_error(api.get("/datasets/tx/versions/-1"), 400, "invalid_input", "version")
    assert_error(api.get("/dataset-versions/nope"), 404, "not_found", "version")
    assert_error(api.get("/quarantine/nope"), 404, "not_found", "batch")
    assert_error(api.post("/quarantine/nope/release"), 404, "not_found", "batch")
    assert_error(api.post("/quarantine/nope/drop", json={"reason": "x"}), 404, "not_found", "batch")
    assert_error(api.get("/quarantine", params={"dataset": "nope"}), 404, "not_found", "dataset")
    assert_error(api.get("/quarantine", params={"status": "LOST"}), 422, "invalid_input", "status")
    assert_error(api.get("/datasets/tx/diff", params={"from": 1, "to": 9}), 404, "not_found", "version")
    assert_error(api.get("/datasets/tx/diff", params={"from": 1}), 422, "invalid_input", "to")


def test_a_body_that_is_not_parquet_or_a_bad_header_is_refused(api: httpx.Client) -> None:
    for body in (b"", b"id,amount\n1,2.0\n", b"PAR1 not really"):
        refused = api.post("/datasets/tx/ingest", content=body, headers={"Content-Type": PARQUET})
        error = assert_error(refused, 400, "invalid_input", "body")
        assert "not a Parquet file" in error["message"]
    data = parquet(amounts(1.0))
    for header in ("{not json", "[1, 2]"):
        refused = api.post("/datasets/tx/ingest", content=data, headers={"X-Steward-Ingest": header})
        assert_error(refused, 400, "invalid_input", "X-Steward-Ingest")
    unknown = api.post("/datasets/tx/ingest", content=data, headers={"X-Steward-Ingest": '{"owner": "me"}'})
    assert_error(unknown, 422, "invalid_input", "X-Steward-Ingest.owner")
    assert_error(api.post("/datasets/a%20b/ingest", content=data), 400, "invalid_input", "dataset")
    assert_error(api.get("/datasets/tx"), 404, "not_found", "dataset")  # nothing was created


def test_the_server_never_reads_a_path_a_client_names(api: httpx.Client, tmp_path: Path) -> None:
    secret = tmp_path / "server-secret.yaml"
    secret.write_text("columns:\n  amount: {max: 0}\n")
    table = amounts(5.0)
    for field in ("expectations", "privacy"):
        sneaky = {"X-Steward-Ingest": json.dumps({field: str(secret)})}
        refused = api.post("/datasets/tx/ingest", content=parquet(table), headers=sneaky)
        assert_error(refused, 422, "invalid_input", f"X-Steward-Ingest.{field}")
    sneaky_source = {"kind": "file", "url": "/etc/shadow", "file": str(secret)}
    result = upload(api, table, source=sneaky_source)
    [version] = result["versions"]
    assert version["source"] == sneaky_source  # recorded as said, the data is what was uploaded
    assert version["rows"] == 1
    assert_error(
        api.post("/datasets/tx/versions/1/validate", json={"expectations": str(secret)}), 422, "invalid_input"
    )
    assert_error(
        api.put("/datasets/tx/expectations", json={"expectations": str(secret)}), 422, "invalid_input"
    )


def test_a_quarantined_upload_is_listed_released_once_and_published(api: httpx.Client) -> None:
    result = upload(api, amounts(1.0, -2.0), expectations=CHECKS, source={"kind": "file", "url": "bad.csv"})
    assert result["versions"] == [] and result["reused"] == []
    [held] = result["quarantined"]
    assert (held["status"], held["rows"], held["source"]) == ("HELD", 2, {"kind": "file", "url": "bad.csv"})
    assert held["report"]["passed"] is False
    assert api.get("/datasets/tx").json()["expectations"] == CHECKS
    assert_error(api.get("/datasets/tx/versions/latest"), 404, "not_found", "version")
    assert api.get("/quarantine").json() == {"batches": [held]}
    assert api.get("/quarantine", params={"dataset": "tx", "status": "DROPPED"}).json() == {"batches": []}
    assert api.get(f"/quarantine/{held['id']}").json() == held

    released = api.post(f"/quarantine/{held['id']}/release", json={"reason": "known refund"})
    assert released.status_code == 200, released.text
    assert (released.json()["ref"], released.json()["source"]["kind"]) == ("tx@1", "quarantine")
    assert_error(api.post(f"/quarantine/{held['id']}/release"), 409, "conflict", "batch")
    assert_error(api.post(f"/quarantine/{held['id']}/drop"), 409, "conflict", "batch")
    listed = api.get("/quarantine", params={"status": "all"}).json()["batches"]
    assert [(b["id"], b["status"], b["resolution"]) for b in listed] == [
        (held["id"], "RELEASED", "released as tx@1: known refund")
    ]


def test_checks_scans_privacy_and_diffs_answer_json(api: httpx.Client) -> None:
    people = pa.table(
        {
            "email": ["ana@example.com", "bo@example.org", "cy@example.net"],
            "amount": [1.0, 2.0, 3.0],
            "band": ["30-39", "30-39", "40-49"],
        }
    )
    upload(api, people)
    assert_error(api.post("/datasets/tx/versions/1/validate"), 400, "invalid_input", "expectations")
    report = api.post("/datasets/tx/versions/1/validate", json={"expectations": CHECKS}).json()
    assert (report["passed"], report["rows"]) == (True, 3)
    failing = {"columns": {"amount": {"type": "float64", "max": 1.5}}}
    report = api.post("/datasets/tx/versions/latest/validate", json={"expectations": failing}).json()
    assert report["passed"] is False
    assert [(r["check"], r["examples"]) for r in report["results"] if not r["passed"]] == [
        ("range", [2.0, 3.0])
    ]

    scanned = api.post("/datasets/tx/versions/1/scan").json()
    assert [f["column"] for f in scanned["findings"]] == ["email"]
    assert scanned["version"]["pii"] == scanned["findings"]
    assert_error(api.post("/datasets/tx/versions/1/scan", json={"sample_rows": 0}), 400, "invalid_input")
    assert_error(api.post("/datasets/tx/versions/1/scan", json={"sample_rows": "9"}), 422, "invalid_input")

    assert_error(api.post("/datasets/tx/versions/1/protect"), 400, "invalid_input", "privacy")
    policy = {"by_tag": {"email": {"action": "drop"}}}
    protected = api.post("/datasets/tx/versions/1/protect", json={"policy": policy}).json()
    assert (protected["ref"], protected["source"]["kind"]) == ("tx@2", "privacy")
    assert [c["name"] for c in protected["arrow_schema"]] == ["amount", "band"]
    bad_policy = {"policy": {"by_tag": {"email": {"action": "shred"}}}}
    assert_error(api.post("/datasets/tx/versions/1/protect", json=bad_policy), 400, "invalid_input", "action")

    kanon = api.post("/datasets/tx/versions/1/k-anonymity", json={"quasi_identifiers": ["band"]}).json()
    assert (kanon["k"], kanon["groups"], kanon["smallest_group"]) == (1, 2, {"band": "40-49"})
    assert kanon["rows_below"] == {"2": 1, "5": 3, "10": 3}
    unknown = api.post("/datasets/tx/versions/1/k-anonymity", json={"quasi_identifiers": ["nope"]})
    assert_error(unknown, 400, "invalid_input", "columns")
    none = api.post("/datasets/tx/versions/1/k-anonymity", json={"quasi_identifiers": []})
    assert_error(none, 422, "invalid_input", "quasi_identifiers")

    changes = api.get("/datasets/tx/diff", params={"from": 1, "to": 2}).json()
    assert (changes["rows_before"], changes["rows_after"], changes["schema_changed"]) == (3, 3, True)
    assert (changes["columns"][0]["name"], changes["columns"][0]["change"]) == ("email", "removed")


def test_values_json_has_no_native_form_for_are_sent_as_text(api: httpx.Client) -> None:
    import datetime as dt
    from decimal import Decimal

    table = pa.table(
        {
            "price": pa.array([Decimal("1.50"), Decimal("-2.25")], pa.decimal128(5, 2)),
            "wait": pa.array([dt.timedelta(seconds=5), dt.timedelta(seconds=7)], pa.duration("s")),
        }
    )
    upload(api, table)
    checks = {
        "expectations": {
            "columns": {"price": {"min": 0}},
            "sql_checks": {"short": "wait < INTERVAL 6 SECOND"},
        }
    }
    report = api.post("/datasets/tx/versions/1/validate", json=checks)
    assert report.status_code == 200, report.text
    assert not report.json()["passed"]
    kanon = api.post("/datasets/tx/versions/1/k-anonymity", json={"quasi_identifiers": ["price", "wait"]})
    assert kanon.status_code == 200, kanon.text
    assert kanon.json()["k"] == 1


def test_a_tampered_file_is_cut_off_never_sent_as_the_data(
    api: httpx.Client, steward_server: str, tmp_path: Path
) -> None:
    from steward.client.data import RemoteDataService
    from steward.client.http import HttpClient
    from steward.errors import ServiceUnavailable

    [version] = upload(api, amounts(1.0, 2.0))["versions"]
    [stored] = version["files"]
    # ``steward_server`` keeps its blobs under tmp_path/"server-home"/"artifacts".
    blob = tmp_path / "server-home" / "artifacts" / "blobs" / stored["digest"][:2] / stored["digest"]
    blob.chmod(0o644)
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit flipped

    with pytest.raises(httpx.RemoteProtocolError):  # the body ends short of its Content-Length
        api.get("/datasets/tx/versions/1/data")
    corrupt = api.get("/datasets/tx/versions/1/data", params={"columns": ["id"]})
    assert stored["digest"] in assert_error(corrupt, 500, "integrity_error")["message"]
    with HttpClient(steward_server) as http:
        client = RemoteDataService(http)
        with pytest.raises(ServiceUnavailable):
            client.read_table(client.get_version("tx"))
