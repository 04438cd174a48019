"""``RemoteDataService``: the ``DataBackend`` over a Steward server's REST API.

Same signatures, return types and errors as the embedded ``DataService``. What names a local thing is
read here, where the caller runs, and only what was found is sent: an ingestion reads its source through
``steward.data.connectors`` on this machine and uploads each batch as Parquet with its source
description; expectations and policies given as YAML files or text are parsed here and sent as JSON. The
server never opens a path or URL a client names. A stream's batches are acknowledged (``Batch.commit``)
only after the server answered for them, as the embedded service does after publishing.

Dataset names that go into a URL path are checked here first, with the same function and message as the
service, because a ``/`` in one would route the request elsewhere. pyarrow and the checks' modules are
imported on first use, so ``steward.connect("http://…")`` stays light.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.client.http import HttpClient, segment
from steward.core.names import validate_name
from steward.data.models import Dataset, DatasetVersion, IngestResult, QuarantinedBatch, QuarantineStatus
from steward.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

    from steward.data.connectors import Batch, Connector
    from steward.data.pii import ColumnFinding
    from steward.data.privacy import KAnonymityReport, PrivacyPolicy
    from steward.data.profile import ProfileDiff
    from steward.data.residency import Residency
    from steward.data.validation import DatasetSchema, ValidationReport

PARQUET_TYPE = "application/vnd.apache.parquet"
INGEST_HEADER = "X-Steward-Ingest"
_UPLOAD_COMPRESSION = "zstd"
_DOWNLOAD_CHUNK_BYTES = 1024 * 1024


def _dataset(name: str) -> str:
    return f"/datasets/{segment(validate_name(name, 'dataset'))}"


def _version(name: str, number: int | None) -> str:
    url = _dataset(name)
    if number is None:
        return f"{url}/versions/latest"
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidInput(f"a version number is an integer, got {number!r}", {"field": "version"})
    return f"{url}/versions/{number}"


def _batch(batch_id: str) -> str:
    if not isinstance(batch_id, str) or not batch_id:  # no route takes it, and no batch has that id
        raise NotFound(f"quarantined batch {batch_id!r} not found", {"field": "batch"})
    return f"/quarantine/{segment(batch_id)}"


def _schema_json(expectations: DatasetSchema | Mapping[str, Any] | str | Path | None) -> Any:
    from steward.data.inputs import as_schema

    schema = as_schema(expectations)  # a YAML file is read here, by the caller, not by the server
    return schema.to_dict() if schema is not None else None


def _policy_json(policy: PrivacyPolicy | Mapping[str, Any] | None) -> Any:
    from steward.data.inputs import as_policy

    found = as_policy(policy)
    return found.to_dict() if found is not None else None


def _status(status: QuarantineStatus | str | None) -> str:
    if status is None:
        return "all"
    try:
        return QuarantineStatus(status).value
    except ValueError:
        allowed = [s.value for s in QuarantineStatus]
        raise InvalidInput(
            f"unknown quarantine status {status!r}: use one of {', '.join(allowed)}, or None for all",
            {"field": "status", "allowed": allowed},
        ) from None


def _header(content: Mapping[str, Any]) -> str:
    # ASCII JSON (non-ASCII as \\u escapes) is a valid header value; the service stores sources with
    # ``default=str`` too, so what cannot be JSON is recorded the same way in both modes.
    return json.dumps(dict(content), ensure_ascii=True, separators=(",", ":"), default=str)


class RemoteDataService:
    """Datasets over HTTP: what ``steward.connect("http://…").data`` is.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    # -- datasets ----------------------------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        description: str = "",
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        region: str | None = None,
        *,
        allowed_regions: Sequence[str] | None = None,
        privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Create a dataset.

        Raises:
            InvalidInput: For a bad name, expectations, policy or region.
            AlreadyExists: If a dataset has that name.
            ResidencyViolation: The region is outside the installation's ``allowed_regions``.
        """
        validate_name(name, "dataset")
        body = {
            "name": name,
            "description": description,
            "expectations": _schema_json(expectations),
            "region": region,
            "allowed_regions": list(allowed_regions) if allowed_regions is not None else None,
            "privacy": _policy_json(privacy),
        }
        return Dataset.from_json(self.http.json("POST", "/datasets", body))

    def get_dataset(self, name: str) -> Dataset:
        """Return a dataset with its highest version number.

        Raises:
            NotFound: If there is none.
        """
        return Dataset.from_json(self.http.json("GET", _dataset(name)))

    def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by name."""
        return [Dataset.from_json(d) for d in self.http.json("GET", "/datasets")["datasets"]]

    def set_expectations(
        self, name: str, expectations: DatasetSchema | Mapping[str, Any] | str | Path | None
    ) -> Dataset:
        """Replace the expectations every later ingestion of ``name`` is checked against (None: none)."""
        url = f"{_dataset(name)}/expectations"
        return Dataset.from_json(self.http.json("PUT", url, {"expectations": _schema_json(expectations)}))

    def set_privacy(self, name: str, policy: PrivacyPolicy | Mapping[str, Any] | None) -> Dataset:
        """Replace the privacy policy ``protect`` applies to ``name`` by default (None: none)."""
        url = f"{_dataset(name)}/privacy"
        return Dataset.from_json(self.http.json("PUT", url, {"privacy": _policy_json(policy)}))

    def residency(self, name: str) -> Residency:
        """The regions dataset ``name`` may reside in."""
        from steward.data.residency import Residency

        return Residency.from_dict(self.http.json("GET", f"{_dataset(name)}/residency"))

    # -- versions ----------------------------------------------------------------------------------

    def get_version(self, name: str, number: int | None = None) -> DatasetVersion:
        """Return version ``number`` of a dataset, or its highest.

        Raises:
            NotFound: If the dataset or version does not exist.
        """
        return DatasetVersion.from_json(self.http.json("GET", _version(name, number)))

    def get_version_by_id(self, version_id: str) -> DatasetVersion:
        """Return a version by its id (what lineage records).

        Raises:
            NotFound: If there is none.
        """
        if not isinstance(version_id, str) or not version_id:
            raise NotFound(f"dataset version {version_id!r} not found", {"field": "version"})
        return DatasetVersion.from_json(self.http.json("GET", f"/dataset-versions/{segment(version_id)}"))

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """Return every version of a dataset, oldest first."""
        data = self.http.json("GET", f"{_dataset(name)}/versions")
        return [DatasetVersion.from_json(v) for v in data["versions"]]

    def read_table(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """Download a version's data (the server checks it against its digest) as one Arrow table.

        The Parquet bytes are spooled to a temporary file as they arrive, not gathered in memory.

        Raises:
            NotFound: If the version no longer exists on the server.
            InvalidInput: For a column the version does not have.
            ServiceUnavailable: If the download breaks off (a server that found its bytes corrupt
                drops the connection rather than send them).
        """
        import pyarrow.parquet as pq

        params = {"columns": list(columns)} if columns else None
        with (
            tempfile.TemporaryFile(prefix="steward-download-") as sink,
            self.http.stream("GET", f"{_version(version.dataset, version.number)}/data", params) as response,
        ):
            for chunk in response.iter_bytes(_DOWNLOAD_CHUNK_BYTES):
                sink.write(chunk)
            sink.seek(0)
            return pq.read_table(sink)

    # -- ingestion ---------------------------------------------------------------------------------

    def ingest(
        self,
        source: Any,
        dataset: str,
        *,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
        description: str = "",
        region: str | None = None,
        allowed_regions: Sequence[str] | None = None,
        **options: Any,
    ) -> IngestResult:
        """Read ``source`` here and have the server publish what passes the dataset's expectations.

        As the embedded service: files, queries and API pages of one call become one version (their
        batches concatenated here and uploaded once); each micro-batch of a stream is uploaded on its
        own and committed to its stream once the server has published or quarantined it.

        Args:
            source: A path or URL (``.csv``, ``.parquet``, ``.jsonl``, ``s3://…``), ``{"sql": …, "url": …}``,
                ``{"http": …}``, ``{"redis_stream": …}``, a ``Connector``, or an Arrow table or DataFrame.
            dataset: The dataset's name (created on first ingestion).
            expectations: A ``DatasetSchema``, its dict, YAML text or a YAML file (read here).
            privacy: A ``PrivacyPolicy`` or its dict.
            description: For a new dataset.
            region: For a new dataset: its home region.
            allowed_regions: For a new dataset: the regions it may reside in.
            **options: Passed to the connector (``format=`` …); for a table, ``source_info=``.

        Raises:
            InvalidInput: For a malformed source (naming the file and line) or bad expectations.
            NotFound: For a missing file.
            ServiceUnavailable: For an unreachable database, API, stream or server.
            ResidencyViolation: The server's artifact store is outside the dataset's allowed regions.
        """
        from steward.data.connectors import Batch, connector_for
        from steward.data.inputs import as_table
        from steward.data.service import STREAM_KINDS

        url = f"{_dataset(dataset)}/ingest"
        settings = {
            "expectations": _schema_json(expectations),
            "privacy": _policy_json(privacy),
            "description": description,
            "region": region,
            "allowed_regions": list(allowed_regions) if allowed_regions is not None else None,
        }
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        connector: Connector
        if not isinstance(source, str | Mapping) and not hasattr(source, "batches"):
            table = as_table(source)
            info = options.pop("source_info", None)
            if options:
                raise InvalidInput(f"options {sorted(options)} do not apply to a table", {"field": "source"})
            connector = _OneBatch(Batch(table, dict(info or {"kind": "table"})))
        else:
            connector = connector_for(source, **options)
        results: list[IngestResult] = []
        pending: list[Batch] = []
        for batch in connector.batches():
            if batch.source.get("kind") in STREAM_KINDS:
                results.append(self._upload(url, [batch], settings))
            else:
                pending.append(batch)
        if pending:
            results.append(self._upload(url, pending, settings))
        return IngestResult(
            tuple(v for r in results for v in r.versions),
            tuple(b for r in results for b in r.quarantined),
            tuple(x for r in results for x in r.reused),
            tuple(v for r in results for v in r.raw),
        )

    def _upload(self, url: str, batches: list[Batch], settings: Mapping[str, Any]) -> IngestResult:
        import pyarrow.parquet as pq

        from steward.data.inputs import combined_source, concat_tables

        # One table and one source description, made as the embedded service makes them.
        table = batches[0].table if len(batches) == 1 else concat_tables([b.table for b in batches])
        source = combined_source([b.source for b in batches])
        headers = {"Content-Type": PARQUET_TYPE, INGEST_HEADER: _header({**settings, "source": source})}
        with tempfile.TemporaryFile(prefix="steward-upload-") as spool:
            pq.write_table(table, spool, compression=_UPLOAD_COMPRESSION)
            spool.seek(0)
            response = self.http.request("POST", url, content=spool, headers=headers)
        result = IngestResult.from_json(response.json())
        for batch in batches:  # only now: the server has published or quarantined them
            batch.commit()
        return result

    # -- validation, profiles, PII -----------------------------------------------------------------

    def validate_version(
        self,
        name: str,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        number: int | None = None,
    ) -> ValidationReport:
        """Check a stored version against ``expectations`` (the dataset's own by default); publish nothing.

        Raises:
            InvalidInput: The dataset has no expectations and none were given.
        """
        from steward.data.validation import ValidationReport

        body = {"expectations": _schema_json(expectations)}
        return ValidationReport.from_dict(self.http.json("POST", f"{_version(name, number)}/validate", body))

    def diff(self, name: str, old: int, new: int, *, other: str | None = None) -> ProfileDiff:
        """Compare version ``old`` of ``name`` with version ``new`` (of ``other``, if given)."""
        from steward.data.profile import ProfileDiff

        params: dict[str, Any] = {"from": old, "to": new}
        if other is not None:
            params["other"] = other
        return ProfileDiff.from_dict(self.http.json("GET", f"{_dataset(name)}/diff", params=params))

    def scan(
        self, name: str, number: int | None = None, *, sample_rows: int = 10_000, min_share: float = 0.5
    ) -> tuple[DatasetVersion, list[ColumnFinding]]:
        """Scan a version for personal data and record the findings (its PII tags) on it.

        Returns:
            The version, updated, and the findings.
        """
        from steward.data.pii import ColumnFinding

        body = {"sample_rows": sample_rows, "min_share": min_share}
        data = self.http.json("POST", f"{_version(name, number)}/scan", body)
        return DatasetVersion.from_json(data["version"]), [
            ColumnFinding.from_dict(f) for f in data["findings"]
        ]

    def protect(
        self,
        name: str,
        number: int | None = None,
        policy: PrivacyPolicy | Mapping[str, Any] | None = None,
        *,
        target: str | None = None,
    ) -> DatasetVersion:
        """Apply a privacy policy to a version: a new version, whose lineage points to the raw one.

        Raises:
            InvalidInput: No policy was given and the dataset has none.
        """
        body = {"policy": _policy_json(policy), "target": target}
        return DatasetVersion.from_json(self.http.json("POST", f"{_version(name, number)}/protect", body))

    def k_anonymity(
        self, name: str, quasi_identifiers: Sequence[str], number: int | None = None
    ) -> KAnonymityReport:
        """How identifiable a version's rows are through ``quasi_identifiers`` (the smallest group's size)."""
        from steward.data.privacy import KAnonymityReport

        body = {"quasi_identifiers": list(quasi_identifiers)}
        data = self.http.json("POST", f"{_version(name, number)}/k-anonymity", body)
        return KAnonymityReport.from_dict(data)

    # -- quarantine --------------------------------------------------------------------------------

    def list_quarantine(
        self, dataset: str | None = None, status: QuarantineStatus | str | None = QuarantineStatus.HELD
    ) -> list[QuarantinedBatch]:
        """Return quarantined batches (HELD ones by default; ``status=None`` for all), oldest first."""
        params = {"status": _status(status)}
        if dataset is not None:
            params["dataset"] = dataset
        data = self.http.json("GET", "/quarantine", params=params)
        return [QuarantinedBatch.from_json(b) for b in data["batches"]]

    def get_quarantined(self, batch_id: str) -> QuarantinedBatch:
        """Return one quarantined batch with its report.

        Raises:
            NotFound: If there is none with that id.
        """
        return QuarantinedBatch.from_json(self.http.json("GET", _batch(batch_id)))

    def release(self, batch_id: str, reason: str = "") -> DatasetVersion:
        """Publish a HELD batch as it is, despite its failed checks, recording who released it and why.

        Raises:
            Conflict: If it was already released or dropped.
        """
        data = self.http.json("POST", f"{_batch(batch_id)}/release", {"reason": reason})
        return DatasetVersion.from_json(data)

    def drop(self, batch_id: str, reason: str = "") -> QuarantinedBatch:
        """Mark a HELD batch dropped (its data is not published), recording who and why.

        Raises:
            Conflict: If it was already released or dropped.
        """
        return QuarantinedBatch.from_json(
            self.http.json("POST", f"{_batch(batch_id)}/drop", {"reason": reason})
        )


class _OneBatch:
    """An in-memory table as a one-batch source."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def batches(self) -> Iterator[Batch]:
        """Yield the table."""
        yield self.batch
