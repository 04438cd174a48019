"""``RemoteFeatureStore``: the ``FeatureBackend`` over a Steward server's REST API (``api/features.py``).

Same signatures, return types and errors as the embedded ``FeatureStore``. Definitions are checked
here and sent as their specs: YAML text is parsed on this side, so the server never opens a path a
client names. Entity rows, pushed rows and training sets travel as Arrow IPC streams (types kept,
nothing turned into JSON on the way); online reads, which are small, use JSON.

A stream-fed view's Redis stream is read here, where the caller runs (as ``RemoteDataService`` reads
its sources), and each micro-batch is pushed to the server and acknowledged only once it answered.
pyarrow is imported on first use, so ``steward.connect("http://…")`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.client.http import HttpClient, segment
from steward.errors import InvalidInput, NotFound, ServiceUnavailable
from steward.features.arrow_stream import ARROW_STREAM_TYPE, ipc_chunks
from steward.features.models import (
    KIND_ENTITY,
    KIND_SERVICE,
    KIND_VIEW,
    ApplyReport,
    Definition,
    MaterializationRun,
    OnlineFeatures,
    SkewReport,
    StoredDefinition,
)

if TYPE_CHECKING:
    import pyarrow as pa

_SECTIONS = {KIND_ENTITY: "entities", KIND_VIEW: "feature_views", KIND_SERVICE: "feature_services"}


LONG_TIMEOUT_S = 3600.0
"""How long a training set or a materialisation may take on the server before the client gives up."""


def document_of(definitions: Sequence[Definition] | Mapping[str, Any] | str) -> dict[str, list[Any]]:
    """The JSON form of a definitions document, checked here as the embedded store checks it.

    Args:
        definitions: Objects, a YAML document's dict, or YAML text.

    Raises:
        InvalidInput: For a malformed document or definition, naming the field.
    """
    from steward.features.specs import check_definition, kind_of, parse_document

    if isinstance(definitions, Mapping | str):
        batch = parse_document(definitions)
    else:
        batch = [check_definition(d) for d in definitions]
    document: dict[str, list[Any]] = {section: [] for section in _SECTIONS.values()}
    for item in batch:
        document[_SECTIONS[kind_of(item)]].append(item.to_spec())
    return document


def _refs(features: Sequence[str]) -> list[str]:
    refs = list(features)
    for ref in refs:
        if not isinstance(ref, str):
            raise InvalidInput(f"{ref!r} is not a feature reference", {"field": "features"})
    return refs


def _read_arrow(content: bytes) -> pa.Table:
    import pyarrow as pa

    try:
        # Read in place: the table's buffers are slices of the response body, not a copy of it.
        with pa.ipc.open_stream(pa.py_buffer(content)) as reader:
            return reader.read_all()
    except pa.ArrowException as exc:
        raise ServiceUnavailable(
            f"the server's answer is not a whole Arrow stream: {exc}", {"content_type": ARROW_STREAM_TYPE}
        ) from None


def _view(name: str) -> str:
    return f"/features/views/{segment(name)}"


class RemoteFeatureStore:
    """The feature store over HTTP: what ``steward.connect("http://…").features`` is.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    # -- definitions -------------------------------------------------------------------------------

    def apply(self, definitions: Sequence[Definition] | Mapping[str, Any] | str) -> ApplyReport:
        """Register definitions, each a new version only if it changed.

        Args:
            definitions: ``Entity``/``FeatureView``/``FeatureService`` objects, a YAML document's dict,
                or YAML text (parsed here).

        Raises:
            InvalidInput: For a malformed definition or a view that does not fit its data.
            NotFound: For a reference to an entity, view, feature or dataset that does not exist.
        """
        return ApplyReport.from_json(self.http.json("POST", "/features/apply", document_of(definitions)))

    def list_definitions(self, kind: str | None = None) -> list[StoredDefinition]:
        """The latest version of every definition (of one kind), by kind and name."""
        params = {"kind": kind} if kind is not None else None
        data = self.http.json("GET", "/features/definitions", params=params)
        return [StoredDefinition.from_json(d) for d in data["definitions"]]

    def get_definition(self, kind: str, name: str, version: int | None = None) -> StoredDefinition:
        """One version of a definition (the latest by default).

        Raises:
            NotFound: If there is no such definition or version.
        """
        params = {"version": version} if version is not None else None
        url = f"/features/definitions/{segment(kind)}/{segment(name)}"
        return StoredDefinition.from_json(self.http.json("GET", url, params=params))

    def definition_history(self, kind: str, name: str) -> list[StoredDefinition]:
        """Every version of a definition, oldest first.

        Raises:
            NotFound: If it was never applied.
        """
        url = f"/features/definitions/{segment(kind)}/{segment(name)}/history"
        return [StoredDefinition.from_json(d) for d in self.http.json("GET", url)["versions"]]

    def _lookup(self, kind: str, name: str) -> StoredDefinition | None:
        try:
            return self.get_definition(kind, name)
        except NotFound:
            return None

    # -- training sets -----------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_rows: Any,
        features: Sequence[str] | str,
        *,
        timestamp: str = "event_timestamp",
        full_feature_names: bool = False,
        save_as: str | None = None,
    ) -> pa.Table:
        """A point-in-time correct training set, built by the server from the uploaded entity rows.

        Args:
            entity_rows: The entity keys and timestamps (DataFrame, Arrow table, dict of lists or
                list of dicts); every row comes back, in order, with its other columns.
            features: ``view:feature`` references (``view`` for all of a view's) or a service's name.
            timestamp: The entity rows' timestamp column.
            full_feature_names: Name the columns ``view__feature``.
            save_as: Also publish the result as a version of this dataset on the server.

        Raises:
            InvalidInput: Entity rows without a key or the timestamp column, a malformed reference.
            NotFound: An unknown view, feature or service.
            Forbidden: Without ``features:read`` (and ``data:read_pii`` for PII-tagged features).
        """
        from steward.features.rows import entity_table

        table = entity_table(entity_rows)
        params: dict[str, Any] = {"timestamp": timestamp, "full_feature_names": full_feature_names}
        if isinstance(features, str):
            params["service"] = features
        else:
            params["features"] = _refs(features)
        if save_as is not None:
            params["save_as"] = save_as
        response = self.http.request(
            "POST", "/features/historical", content=ipc_chunks(table), params=params,
            headers={"Content-Type": ARROW_STREAM_TYPE, "Accept": ARROW_STREAM_TYPE}, timeout=LONG_TIMEOUT_S,
        )  # fmt: skip
        return _read_arrow(response.content)

    # -- online ------------------------------------------------------------------------------------

    def get_online_features(
        self, entity_rows: Any, features: Sequence[str] | str, *, full_feature_names: bool = False
    ) -> OnlineFeatures:
        """The online values of ``features`` for each entity row.

        An entity the store does not have gets nulls and ``NOT_FOUND``; a value older than the view's
        TTL nulls and ``OUTSIDE_TTL`` — never an error.

        Raises:
            InvalidInput: Entity rows without a view's join key.
            NotFound: An unknown view, feature or service.
        """
        from steward.features.rows import entity_columns

        body = {
            "entity_rows": entity_columns(entity_rows),
            "features": features if isinstance(features, str) else _refs(features),
            "full_feature_names": full_feature_names,
        }
        return OnlineFeatures.from_json(self.http.json("POST", "/features/online", body))

    # -- materialisation and pushes ----------------------------------------------------------------

    def materialize(
        self, views: Sequence[str] | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> list[MaterializationRun]:
        """Have the server write the latest values per entity in ``[start, end)`` to its online store.

        ``start`` None continues where each view's last run ended; ``end`` None is now (the server's).

        Raises:
            InvalidInput: ``start`` not before ``end``, or a view that is not online.
            NotFound: An unknown view.
        """
        body = {
            "views": list(views) if views is not None else None,
            "start": start.isoformat() if start is not None else None,
            "end": end.isoformat() if end is not None else None,
        }
        response = self.http.request("POST", "/features/materialize", json=body, timeout=LONG_TIMEOUT_S)
        data = response.json()
        return [MaterializationRun.from_json(r) for r in data["runs"]]

    def list_materializations(self, view: str | None = None) -> list[MaterializationRun]:
        """Past materialisation runs, newest first."""
        params = {"view": view} if view is not None else None
        data = self.http.json("GET", "/features/materializations", params=params)
        return [MaterializationRun.from_json(r) for r in data["runs"]]

    def push(self, view: str, rows: Any) -> int:
        """Write fresh rows of a view (keys, event timestamp, every feature) to the online store.

        Returns:
            How many entities took the new values.

        Raises:
            InvalidInput: A missing column, or a value that does not fit its feature's type.
            NotFound: An unknown view.
        """
        from steward.features.rows import entity_table

        response = self.http.request(
            "POST", f"{_view(view)}/push", content=ipc_chunks(entity_table(rows)),
            headers={"Content-Type": ARROW_STREAM_TYPE},
        )  # fmt: skip
        return int(response.json()["written"])

    def consume_stream(self, view: str, *, max_batches: int | None = None, block_ms: int = 0) -> int:
        """Read a stream-fed view's Redis stream here and push each micro-batch to the server.

        A batch is acknowledged only after the server stored it, so a crash re-delivers it (and
        pushing it again changes nothing: the later event time wins). The consumer has the embedded
        store's name, so either picks up what the other left pending.

        Returns:
            The rows pushed.

        Raises:
            InvalidInput: The view is not fed by a stream, or an entry does not fit the view.
            ServiceUnavailable: The stream's Redis cannot be reached.
        """
        from steward.features.resolve import whole_view
        from steward.features.streams import consume

        selection = whole_view(self._lookup, view)
        return consume(selection, self.push, max_batches=max_batches, block_ms=block_ms)

    # -- consistency -------------------------------------------------------------------------------

    def skew(self, view: str, *, sample: int = 100, tolerance: float = 1e-9, seed: int = 0) -> SkewReport:
        """Compare offline and online values of a view for a sample of its entities (on the server).

        Raises:
            InvalidInput: ``sample`` below 1 or a negative tolerance.
            NotFound: An unknown view.
        """
        params = {"sample": sample, "tolerance": tolerance, "seed": seed}
        return SkewReport.from_json(self.http.json("GET", f"{_view(view)}/skew", params=params))
