"""Data routes: datasets, versions, their Parquet data, ingestion, checks, privacy and quarantine.

Each route parses its input, calls one ``DataService`` method and maps the result to JSON. Plain ``def``
routes run in FastAPI's threadpool, so blocking store work never holds up the event loop. Everything is
under ``/api/v1``; ``{number}`` is a version number or ``latest``.

=======  ==============================================================  ===========================
Method   Path                                                            Answer
=======  ==============================================================  ===========================
GET      ``/datasets``                                                   ``{"datasets": [...]}``
POST     ``/datasets`` ``{name, description, expectations, region, …}``  201 ``Dataset``
GET      ``/datasets/{name}``                                            ``Dataset``
PUT      ``/datasets/{name}/expectations`` ``{expectations}``            ``Dataset``
PUT      ``/datasets/{name}/privacy`` ``{privacy}``                      ``Dataset``
GET      ``/datasets/{name}/residency``                                  ``Residency``
POST     ``/datasets/{name}/ingest`` (Parquet, ``X-Steward-Ingest``)     ``IngestResult``
GET      ``/datasets/{name}/versions``                                   ``{"versions": [...]}``
GET      ``/datasets/{name}/versions/{number}``                          ``DatasetVersion``
GET      ``/datasets/{name}/versions/{number}/data?columns=``            Parquet
POST     ``…/versions/{number}/validate`` ``{expectations}``             ``ValidationReport``
POST     ``…/versions/{number}/scan`` ``{sample_rows, min_share}``       ``{"version", "findings"}``
POST     ``…/versions/{number}/protect`` ``{policy, target}``            ``DatasetVersion``
POST     ``…/versions/{number}/k-anonymity`` ``{quasi_identifiers}``     ``KAnonymityReport``
GET      ``/datasets/{name}/diff?from=1&to=2&other=``                    ``ProfileDiff``
GET      ``/dataset-versions/{id}``                                      ``DatasetVersion``
GET      ``/quarantine?dataset=&status=HELD|RELEASED|DROPPED|all``       ``{"batches": [...]}``
GET      ``/quarantine/{id}``                                            ``QuarantinedBatch``
POST     ``/quarantine/{id}/release`` ``{reason}``                       ``DatasetVersion``
POST     ``/quarantine/{id}/drop`` ``{reason}``                          ``QuarantinedBatch``
=======  ==============================================================  ===========================

``…`` is ``/datasets/{name}``.

Ingestion: the body is one Parquet file (``Content-Type: application/vnd.apache.parquet``), spooled to a
temporary file as it arrives; the ``X-Steward-Ingest`` header holds a JSON object with the optional keys
``source`` (where the client read the data: recorded as the version's source, never opened here),
``expectations``, ``privacy``, ``description``, ``region`` and ``allowed_regions``, as for
``steward.ingest``. Non-ASCII text in the header is sent as JSON ``\\u`` escapes. Headers are size-limited
by proxies (often 8 to 16 KiB): set very large expectations first with ``PUT …/expectations``. The server
only ever reads the uploaded bytes: expectations and policies are JSON objects, never a path or URL.

Downloads are the stored Parquet file itself, streamed and checked against its digest on the way out
(``X-Steward-Digest``); with ``columns``, or for a version of several files, a Parquet file of the
table the service read.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Data
from steward.api.errors import ResponseAbortedError
from steward.data.models import DataFile, IngestResult, QuarantineStatus
from steward.data.service import DataService
from steward.errors import InvalidInput, StewardError

log = logging.getLogger("steward.api")

router = APIRouter(prefix=API_PREFIX, tags=["data"])

PARQUET_TYPE = "application/vnd.apache.parquet"
"""The media type of Parquet uploads and downloads."""
INGEST_HEADER = "X-Steward-Ingest"
"""The request header carrying an upload's source description and ingestion options (JSON)."""
UPLOAD_WRITE_BYTES = 1024 * 1024
"""Upload bytes are gathered into writes of this size."""
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
"""Downloads of a table written here are streamed in chunks of this size."""

_DATASET = "/datasets/{name}"
_VERSION = "/datasets/{name}/versions/{number}"
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_PARQUET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {PARQUET_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_PARQUET_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {PARQUET_TYPE: {}}, "headers": {"X-Steward-Digest": {}}}
}
_Columns = Annotated[list[str] | None, Query(description="Only these columns (repeat the parameter)")]
_QuarantineState = Literal["HELD", "RELEASED", "DROPPED", "all"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetIn(_Body):
    """Body of ``POST /datasets``."""

    name: str
    description: str = ""
    expectations: dict[str, Any] | None = None
    region: str | None = None
    allowed_regions: list[str] | None = None
    privacy: dict[str, Any] | None = None


class ExpectationsIn(_Body):
    """Body of ``PUT /datasets/{name}/expectations`` and ``POST …/validate`` (``null``: none / the own)."""

    expectations: dict[str, Any] | None = None


class PrivacyIn(_Body):
    """Body of ``PUT /datasets/{name}/privacy`` (``null``: none)."""

    privacy: dict[str, Any] | None = None


class IngestIn(_Body):
    """The ``X-Steward-Ingest`` header of ``POST /datasets/{name}/ingest``."""

    source: dict[str, Any] | None = None
    expectations: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None
    description: str = ""
    region: str | None = None
    allowed_regions: list[str] | None = None


class ScanIn(_Body):
    """Body of ``POST …/scan`` (optional)."""

    sample_rows: StrictInt = 10_000
    min_share: float = 0.5


class ProtectIn(_Body):
    """Body of ``POST …/protect`` (optional): the policy (the dataset's own if ``null``) and target."""

    policy: dict[str, Any] | None = None
    target: str | None = None


class KAnonymityIn(_Body):
    """Body of ``POST …/k-anonymity``."""

    quasi_identifiers: list[str] = Field(min_length=1)


class ReasonIn(_Body):
    """Body of ``POST /quarantine/{id}/release`` and ``…/drop`` (optional)."""

    reason: str = ""


def _default(value: Any) -> Any:
    # Check examples and k-anonymity groups carry values as DuckDB returned them (Decimal, timedelta…):
    # written as text, as the service writes a quarantined batch's report.
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def _json(content: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(content, default=_default, option=_JSON_OPTIONS)
    return Response(body, status_code=status_code, media_type="application/json")


def _number(number: str) -> int | None:
    """A version number in a path: digits, or ``latest`` (the highest)."""
    if number == "latest":
        return None
    if not number.isdigit() or not number.isascii():
        raise InvalidInput(
            f"a version is a number or 'latest', got {number!r}", {"field": "version", "version": number}
        )
    return int(number)


# -- datasets ---------------------------------------------------------------------------------------


@router.get("/datasets", dependencies=[requires("data:read")], summary="List datasets")
def list_datasets(data: Data) -> Response:
    """Return ``{"datasets": [...]}`` by name, each with its highest version number."""
    return _json({"datasets": [d.to_json() for d in data.list_datasets()]})


@router.post("/datasets", dependencies=[requires("data:write")], status_code=201, summary="Create a dataset")
def create_dataset(body: DatasetIn, data: Data) -> Response:
    """Create a dataset; 409 if the name is taken, 400 for a bad name, expectations, policy or region."""
    found = data.create_dataset(
        body.name,
        body.description,
        body.expectations,
        body.region,
        allowed_regions=body.allowed_regions,
        privacy=body.privacy,
    )
    return _json(found.to_json(), 201)


@router.get(_DATASET, dependencies=[requires("data:read")], summary="Get a dataset")
def get_dataset(name: str, data: Data) -> Response:
    """Return a dataset with its highest version number; 404 if there is none."""
    return _json(data.get_dataset(name).to_json())


@router.put(
    f"{_DATASET}/expectations",
    dependencies=[requires("data:write")],
    summary="Replace a dataset's expectations",
)
def set_expectations(name: str, body: ExpectationsIn, data: Data) -> Response:
    """Replace the checks every later ingestion is held to (``null``: none) and return the dataset."""
    return _json(data.set_expectations(name, body.expectations).to_json())


@router.put(
    f"{_DATASET}/privacy", dependencies=[requires("data:write")], summary="Replace a dataset's privacy policy"
)
def set_privacy(name: str, body: PrivacyIn, data: Data) -> Response:
    """Replace the policy ``protect`` applies by default (``null``: none) and return the dataset."""
    return _json(data.set_privacy(name, body.privacy).to_json())


@router.get(
    f"{_DATASET}/residency", dependencies=[requires("data:read")], summary="Where a dataset may reside"
)
def residency(name: str, data: Data) -> Response:
    """Return ``{"dataset", "region", "allowed"}``: the regions its data may be written to."""
    return _json(data.residency(name).to_dict())


# -- ingestion --------------------------------------------------------------------------------------


def _ingest_options(header: str | None) -> IngestIn:
    if not header:
        return IngestIn()
    try:
        # Starlette decodes headers as latin-1; a client that sent raw UTF-8 gets its bytes back this way.
        parsed = orjson.loads(header.encode("latin-1"))
    except (orjson.JSONDecodeError, UnicodeEncodeError) as exc:
        raise InvalidInput(
            f"the {INGEST_HEADER} header is not JSON: {exc}", {"field": INGEST_HEADER}
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"the {INGEST_HEADER} header must be a JSON object", {"field": INGEST_HEADER})
    try:
        return IngestIn.model_validate(parsed)
    except ValidationError as exc:
        errors = [{**e, "loc": ("header", INGEST_HEADER, *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        message = f"the request body is not a Parquet file: {exc}"
        raise InvalidInput(message, {"field": "body", "content_type": PARQUET_TYPE}) from None


def _ingest(data: DataService, name: str, path: Path, options: IngestIn) -> IngestResult:
    return data.ingest(
        _read_parquet(path),
        name,
        expectations=options.expectations,
        privacy=options.privacy,
        description=options.description,
        region=options.region,
        allowed_regions=options.allowed_regions,
        source_info=options.source,
    )


def _finish(spool: IO[bytes], rest: bytes) -> None:
    spool.write(rest)
    spool.flush()


@router.post(
    f"{_DATASET}/ingest",
    dependencies=[requires("data:write")],
    summary="Ingest an uploaded Parquet batch",
    openapi_extra=_PARQUET_BODY,
)
async def ingest(
    name: str,
    request: Request,
    data: Data,
    x_steward_ingest: Annotated[
        str | None,
        Header(description="JSON: {source, expectations, privacy, description, region, allowed_regions}"),
    ] = None,
) -> Response:
    """Validate the uploaded table and publish it as a version, or quarantine it; return the outcome.

    The body is written to a temporary file, off the event loop, as it arrives, then read as one Arrow
    table: a large upload is never held whole in memory more than once. 400 for a body that is not
    Parquet or a header that is not JSON.
    """
    options = _ingest_options(x_steward_ingest)
    with tempfile.NamedTemporaryFile(prefix="steward-ingest-", suffix=".parquet") as spool:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= UPLOAD_WRITE_BYTES:
                await run_in_threadpool(spool.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(_finish, spool, bytes(pending))
        result = await run_in_threadpool(_ingest, data, name, Path(spool.name), options)
    return _json(result.to_json())


# -- versions ---------------------------------------------------------------------------------------


@router.get(f"{_DATASET}/versions", dependencies=[requires("data:read")], summary="List a dataset's versions")
def list_versions(name: str, data: Data) -> Response:
    """Return ``{"versions": [...]}``, oldest first."""
    return _json({"versions": [v.to_json() for v in data.list_versions(name)]})


@router.get(_VERSION, dependencies=[requires("data:read")], summary="Get a version")
def get_version(name: str, number: str, data: Data) -> Response:
    """Return version ``number`` (or ``latest``); 404 if the dataset or version does not exist."""
    return _json(data.get_version(name, _number(number)).to_json())


@router.get(
    "/dataset-versions/{version_id:path}", dependencies=[requires("data:read")], summary="Get a version by id"
)
def get_version_by_id(version_id: str, data: Data) -> Response:
    """Return the version with this id (what lineage records); 404 if there is none."""
    return _json(data.get_version_by_id(version_id).to_json())


def _sent_whole(stored: DataFile, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass the service's checked chunks on; a mismatch aborts the response short of its length."""
    try:
        yield from chunks
    except StewardError as exc:
        log.error("dataset file %s not sent whole: %s", stored.digest, exc.message)
        raise ResponseAbortedError from exc


def _stored_file(data: DataService, stored: DataFile) -> Response:
    body = _sent_whole(stored, data.iter_file(stored))  # a missing blob fails here, as JSON
    headers = {"X-Steward-Digest": stored.digest, "Content-Length": str(stored.size)}
    return StreamingResponse(body, media_type=PARQUET_TYPE, headers=headers)


def _table_file(table: pa.Table) -> Response:
    fd, tmp = tempfile.mkstemp(prefix="steward-download-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        size = Path(tmp).stat().st_size
        stream = Path(tmp).open("rb")  # noqa: SIM115  closed by _file_chunks when the body is sent
    finally:
        Path(tmp).unlink(missing_ok=True)  # the open handle keeps the bytes readable
    return StreamingResponse(
        _file_chunks(stream), media_type=PARQUET_TYPE, headers={"Content-Length": str(size)}
    )


def _file_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk


@router.get(
    f"{_VERSION}/data",
    dependencies=[requires("data:read")],
    summary="Download a version's data (Parquet)",
    response_class=StreamingResponse,
    responses=_PARQUET_ANSWER,
)
def read_data(name: str, number: str, data: Data, columns: _Columns = None) -> Response:
    """Stream the version's data as one Parquet file; 400 for a column it does not have.

    Without ``columns``, a version stored as one file is sent as stored, with ``X-Steward-Digest``.
    """
    version = data.get_version(name, _number(number))
    if not columns and len(version.files) == 1:
        data.authorise_read(version)  # personal data needs data:read_pii; audited either way
        return _stored_file(data, version.files[0])
    return _table_file(data.read_table(version, columns))


@router.post(
    f"{_VERSION}/validate",
    dependencies=[requires("data:read")],
    summary="Check a version against expectations",
)
def validate_version(name: str, number: str, data: Data, body: ExpectationsIn | None = None) -> Response:
    """Run ``expectations`` (the dataset's own if omitted) over a stored version; publish nothing.

    400 if neither the body nor the dataset has expectations.
    """
    expectations = body.expectations if body is not None else None
    return _json(data.validate_version(name, expectations, _number(number)).to_dict())


@router.post(
    f"{_VERSION}/scan", dependencies=[requires("data:write")], summary="Scan a version for personal data"
)
def scan(name: str, number: str, data: Data, body: ScanIn | None = None) -> Response:
    """Scan a version, record its PII findings and return ``{"version", "findings"}``."""
    options = body or ScanIn()
    version, findings = data.scan(
        name, _number(number), sample_rows=options.sample_rows, min_share=options.min_share
    )
    return _json({"version": version.to_json(), "findings": [f.to_dict() for f in findings]})


@router.post(
    f"{_VERSION}/protect",
    dependencies=[requires("data:write")],
    summary="Publish a privacy-protected copy of a version",
)
def protect(name: str, number: str, data: Data, body: ProtectIn | None = None) -> Response:
    """Apply ``policy`` (the dataset's own if omitted) and return the new version, whose parent is this one.

    400 if neither the body nor the dataset has a policy.
    """
    options = body or ProtectIn()
    found = data.protect(name, _number(number), options.policy, target=options.target)
    return _json(found.to_json())


@router.post(
    f"{_VERSION}/k-anonymity", dependencies=[requires("data:read")], summary="Measure a version's k-anonymity"
)
def k_anonymity(name: str, number: str, body: KAnonymityIn, data: Data) -> Response:
    """Return the size of the smallest group of rows sharing the quasi-identifiers; 400 for an unknown one."""
    return _json(data.k_anonymity(name, body.quasi_identifiers, _number(number)).to_dict())


@router.get(f"{_DATASET}/diff", dependencies=[requires("data:read")], summary="Compare two versions")
def diff(
    name: str,
    data: Data,
    old: Annotated[int, Query(alias="from", description="the version to compare from")],
    new: Annotated[int, Query(alias="to", description="the version to compare to")],
    other: Annotated[str | None, Query(description="the dataset of version ``to`` (``name``)")] = None,
) -> Response:
    """Return schema changes and per-column shifts (PSI, mean shift, null-share change)."""
    return _json(data.diff(name, old, new, other=other).to_dict())


# -- quarantine -------------------------------------------------------------------------------------


@router.get("/quarantine", dependencies=[requires("data:read")], summary="List quarantined batches")
def list_quarantine(data: Data, dataset: str | None = None, status: _QuarantineState = "HELD") -> Response:
    """Return ``{"batches": [...]}``, oldest first: HELD ones by default, ``status=all`` for every one."""
    wanted = None if status == "all" else QuarantineStatus(status)
    return _json({"batches": [b.to_json() for b in data.list_quarantine(dataset, wanted)]})


@router.get("/quarantine/{batch_id}", dependencies=[requires("data:read")], summary="Get a quarantined batch")
def get_quarantined(batch_id: str, data: Data) -> Response:
    """Return one batch with its validation report; 404 if there is none."""
    return _json(data.get_quarantined(batch_id).to_json())


@router.post(
    "/quarantine/{batch_id}/release",
    dependencies=[requires("data:release")],
    summary="Publish a quarantined batch anyway",
)
def release(batch_id: str, data: Data, body: ReasonIn | None = None) -> Response:
    """Publish a HELD batch as it is and return the version; 409 if it was released or dropped."""
    return _json(data.release(batch_id, body.reason if body is not None else "").to_json())


@router.post(
    "/quarantine/{batch_id}/drop", dependencies=[requires("data:release")], summary="Drop a quarantined batch"
)
def drop(batch_id: str, data: Data, body: ReasonIn | None = None) -> Response:
    """Mark a HELD batch dropped and return it; 409 if it was released or dropped."""
    return _json(data.drop(batch_id, body.reason if body is not None else "").to_json())
