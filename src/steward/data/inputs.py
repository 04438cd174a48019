"""What the data service accepts, made uniform: expectations, policies, tables, and source descriptions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from steward.data.connectors import Batch
from steward.data.models import DatasetVersion, QuarantinedBatch
from steward.data.privacy import PrivacyPolicy
from steward.data.validation import DatasetSchema
from steward.errors import InvalidInput


def schema_of(table: pa.Table) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema]


def lineage_source(source: Mapping[str, Any]) -> str:
    kind = str(source.get("kind", "source"))
    where = source.get("url") or source.get("stream") or source.get("query") or ""
    return f"{kind}:{where}"[:128]


def as_policy(policy: PrivacyPolicy | Mapping[str, Any] | None) -> PrivacyPolicy | None:
    """Accept a privacy policy as a ``PrivacyPolicy`` or its dict."""
    if policy is None or isinstance(policy, PrivacyPolicy):
        return policy
    if isinstance(policy, Mapping):
        return PrivacyPolicy.from_dict(policy)
    raise InvalidInput(
        f"expected a PrivacyPolicy or its dict, got {type(policy).__name__}", {"field": "privacy"}
    )


def as_table(data: Any) -> pa.Table:
    """Accept an Arrow table or a pandas (or polars) DataFrame as an Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "to_arrow"):  # polars
        return pa.table(data.to_arrow())
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidInput(
        f"expected an Arrow table or a DataFrame, got {type(data).__name__}", {"field": "table"}
    )


def as_schema(expectations: DatasetSchema | Mapping[str, Any] | str | Path | None) -> DatasetSchema | None:
    """Accept expectations as a ``DatasetSchema``, a dict, YAML text or a YAML file path."""
    if expectations is None or isinstance(expectations, DatasetSchema):
        return expectations
    if isinstance(expectations, Mapping):
        return DatasetSchema.from_dict(expectations)
    return DatasetSchema.from_yaml(expectations)


@dataclass
class Outcome:
    versions: list[DatasetVersion] = field(default_factory=list)
    quarantined: list[QuarantinedBatch] = field(default_factory=list)
    reused: list[bool] = field(default_factory=list)
    raw: list[DatasetVersion] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TableSource:
    """An in-memory table as a one-batch source."""

    table: pa.Table
    info: Mapping[str, Any] | None = None

    def batches(self) -> Iterator[Batch]:
        """Yield the table."""
        yield Batch(self.table, dict(self.info or {"kind": "table"}))


def combined_source(sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One description for the batches of one version: each distinct part once, with a batch count."""
    if len(sources) == 1:
        return dict(sources[0])
    parts: list[dict[str, Any]] = []
    for source in sources:
        if dict(source) not in parts:
            parts.append(dict(source))
    if len(parts) == 1:  # a query or an API read in chunks
        return {**parts[0], "batches": len(sources)}
    return {"kind": "batches", "parts": parts}


def text_digest(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def concat_tables(tables: Iterable[pa.Table]) -> pa.Table:
    parts = list(tables)
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"the source's parts do not share one schema: {exc}", {"field": "source"}) from exc
