"""The data half of the SDK: ``steward.ingest``, ``get_dataset``, ``list_datasets``, ``diff_datasets`` …"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from steward.config import Settings
from steward.data.models import DataBackend, Dataset, DatasetVersion, IngestResult
from steward.errors import InvalidInput, StewardError

if TYPE_CHECKING:  # the service pulls in DuckDB and pyarrow: imported when first used, not with steward
    import pyarrow as pa

    from steward.data.connectors import Connector
    from steward.data.privacy import PrivacyPolicy
    from steward.data.profile import ProfileDiff
    from steward.data.validation import DatasetSchema

DataResolver = Callable[[], "tuple[DataBackend, Settings]"]
_resolver: DataResolver | None = None


def set_data_resolver(resolver: DataResolver) -> None:
    """Install the function that returns the data service and settings in use."""
    global _resolver
    _resolver = resolver


def _service() -> DataBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()[0]


def ingest(
    source: str | Path | Mapping[str, Any] | Connector | Any,
    dataset: str,
    *,
    schema: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
    expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
    privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
    description: str = "",
    region: str | None = None,
    allowed_regions: Sequence[str] | None = None,
    **options: Any,
) -> IngestResult:
    """Read ``source`` into a new version of ``dataset``: validated, profiled, PII-scanned, content-addressed.

    A batch that fails the expectations is not published but kept in quarantine with its report
    (``steward data quarantine list``). Ingesting the same data again returns the same version. With a
    privacy policy the raw version is followed by its protected copy, which ``result.version`` is.

    Args:
        source: A file or URL (``.csv``, ``.parquet``, ``.jsonl``, ``s3://…``), ``{"sql": query, "url": db}``,
            ``{"http": url, …}``, ``{"redis_stream": name, "group": …}``, a ``Connector``, or an Arrow
            table or a DataFrame.
        dataset: The dataset's name (created on first use).
        schema: Checks every ingestion must pass (a ``DatasetSchema``, its dict, YAML text or path).
        expectations: The same as ``schema`` (give one of them).
        privacy: What to do with each kind of personal data (a ``PrivacyPolicy`` or its dict).
        description: For a new dataset.
        region: For a new dataset: its home region (the artifact store's by default).
        allowed_regions: For a new dataset: the regions its data may reside in.
        **options: For the connector (``format=``, ``columns=``, ``endpoint_url=`` …).

    Raises:
        InvalidInput: Both ``schema`` and ``expectations`` were given, or the source is malformed.
        ResidencyViolation: The artifact store is outside the dataset's allowed regions.
    """
    if schema is not None and expectations is not None:
        raise InvalidInput("give the checks as schema= or expectations=, not both", {"field": "schema"})
    return _service().ingest(
        source,
        dataset,
        expectations=schema if schema is not None else expectations,
        privacy=privacy,
        description=description,
        region=region,
        allowed_regions=allowed_regions,
        **options,
    )


def get_dataset(
    name: str,
    version: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    format: Literal["arrow", "pandas", "polars"] = "arrow",
) -> Any:
    """Return the data of a dataset version (the highest if ``version`` is omitted).

    Args:
        name: The dataset.
        version: Its version number.
        columns: Only these columns.
        format: ``arrow`` (a ``pyarrow.Table``), ``pandas`` or ``polars`` (if polars is installed).

    Raises:
        NotFound: If the dataset or version does not exist.
        InvalidInput: For an unknown format, or ``polars`` without polars installed.
    """
    if format not in ("arrow", "pandas", "polars"):
        raise InvalidInput(f"unknown format {format!r}: use arrow, pandas or polars", {"field": "format"})
    if format == "polars":
        try:
            import polars
        except ImportError:
            raise InvalidInput(
                "format='polars' needs polars: pip install polars", {"field": "format"}
            ) from None
    service = _service()
    table: pa.Table = service.read_table(service.get_version(name, version), columns)
    if format == "polars":
        return polars.from_arrow(table)
    return table.to_pandas() if format == "pandas" else table


def get_dataset_version(name: str, version: int | None = None) -> DatasetVersion:
    """Return a version's record: number, content digest, rows, schema, source, profile, region."""
    return _service().get_version(name, version)


def list_datasets() -> list[Dataset]:
    """Return every dataset with its highest version number."""
    return _service().list_datasets()


def diff_datasets(a: str | DatasetVersion, b: str | DatasetVersion) -> ProfileDiff:
    """Compare two dataset versions: schema changes and per-column profile shifts.

    Args:
        a: The version to compare from: ``"name@number"``, or a ``DatasetVersion``.
        b: The version to compare to, likewise (it may be of another dataset).

    Raises:
        InvalidInput: A reference is not ``name@number``.
        NotFound: A version does not exist.
    """
    (name_a, number_a), (name_b, number_b) = _ref(a), _ref(b)
    return _service().diff(name_a, number_a, number_b, other=name_b)


def _ref(ref: str | DatasetVersion) -> tuple[str, int]:
    if isinstance(ref, DatasetVersion):
        return ref.dataset, ref.number
    name, sep, number = str(ref).rpartition("@")
    if not sep or not name or not number.isdigit():
        raise InvalidInput(f"expected a dataset version as name@number, got {ref!r}", {"field": "version"})
    return name, int(number)
