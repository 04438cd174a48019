"""Materialisers: how a step's output becomes bytes in the blob store and back, chosen by type.

Built in: Arrow tables, pandas and polars frames (Parquet), NumPy arrays (``.npy`` without pickles),
``steward.Model`` (a registry bundle in a safe format), dataset and model version handles, and plain
JSON values. Nothing is ever pickled: a type no materialiser takes is an error naming the type.

To add one::

    class PointMaterializer:
        name = "point"
        def handles(self, value): return isinstance(value, Point)
        def save(self, value, blobs):
            data = f"{value.x},{value.y}".encode()
            return OutputRef(self.name, blobs.put_bytes(data).digest, "geo.Point", len(data))
        def load(self, ref, blobs):
            x, y = blobs.get_bytes(ref.digest).decode().split(",")
            return Point(float(x), float(y))

    steward.pipelines.register_materializer(PointMaterializer())
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steward.errors import InvalidInput, NotFound
from steward.pipelines.models import OutputRef
from steward.pipelines.values import Model

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore

INLINE_LIMIT = 2048


class Materializer(Protocol):
    """Turns values of some types into blobs and back. ``name`` is recorded with every output."""

    name: str

    def handles(self, value: Any) -> bool:
        """Whether this materialiser stores ``value``."""
        ...

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Write ``value`` to ``blobs``; return its reference."""
        ...

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read a value this materialiser saved."""
        ...


def type_name(value: Any) -> str:
    """``module.QualName`` of ``value``'s type (``builtins.`` left out)."""
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def is_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON-shaped: None, booleans, numbers, strings, lists and string-keyed dicts."""
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return all(is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v, depth + 1) for k, v in value.items())
    return False


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    return False


class JsonMaterializer:
    """None, booleans, numbers, strings, and lists and string-keyed dicts of them, as JSON."""

    name = "json"

    def handles(self, value: Any) -> bool:
        """JSON-shaped values (tuples are not: they would come back as lists)."""
        return is_json(value)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Write the JSON text (NaN and infinities kept, as Python's json writes them).

        A value of at most ``INLINE_LIMIT`` bytes (and finite) is not written to the blob store: it
        travels in its reference and is kept in the step's row of the metadata database.
        """
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=True)
        data = text.encode()
        if len(data) <= INLINE_LIMIT and not _has_nonfinite(value):
            digest = hashlib.sha256(data).hexdigest()
            return OutputRef(self.name, digest, type_name(value), len(data), inline=value, stored=False)
        ref = blobs.put_bytes(data)
        return OutputRef(self.name, ref.digest, type_name(value), len(data))

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read the value back (from the reference itself when it was small)."""
        if not ref.stored or ref.inline is not None:
            return ref.inline
        return json.loads(blobs.get_bytes(ref.digest))


def _parquet_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _read_parquet(data: bytes) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data))


class ArrowMaterializer:
    """``pyarrow.Table`` as Parquet."""

    name = "arrow"

    def handles(self, value: Any) -> bool:
        """Arrow tables."""
        module = type(value).__module__
        if not module.startswith("pyarrow"):
            return False
        import pyarrow as pa

        return isinstance(value, pa.Table)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Write the table as Parquet (zstd)."""
        data = _parquet_bytes(value)
        ref = blobs.put_bytes(data)
        meta = {"rows": value.num_rows, "columns": value.column_names}
        return OutputRef(self.name, ref.digest, "pyarrow.Table", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read the table."""
        return _read_parquet(blobs.get_bytes(ref.digest))


class PandasMaterializer:
    """``pandas.DataFrame`` as Parquet, its index kept."""

    name = "pandas"

    def handles(self, value: Any) -> bool:
        """pandas frames."""
        if not type(value).__module__.startswith("pandas"):
            return False
        import pandas as pd

        return isinstance(value, pd.DataFrame)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Convert to Arrow (keeping the index) and write Parquet."""
        import pyarrow as pa

        try:
            table = pa.Table.from_pandas(value, preserve_index=None)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise InvalidInput(
                f"this DataFrame cannot be stored as Parquet: {exc}", {"field": "output"}
            ) from exc
        data = _parquet_bytes(table)
        ref = blobs.put_bytes(data)
        meta = {"rows": len(value), "columns": [str(c) for c in value.columns]}
        return OutputRef(self.name, ref.digest, "pandas.DataFrame", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read the frame back."""
        return _read_parquet(blobs.get_bytes(ref.digest)).to_pandas()


class PolarsMaterializer:
    """``polars.DataFrame`` as Parquet."""

    name = "polars"

    def handles(self, value: Any) -> bool:
        """polars frames."""
        if not type(value).__module__.startswith("polars"):
            return False
        import polars as pl

        return isinstance(value, pl.DataFrame)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Write Parquet through Arrow."""
        data = _parquet_bytes(value.to_arrow())
        ref = blobs.put_bytes(data)
        meta = {"rows": value.height, "columns": list(value.columns)}
        return OutputRef(self.name, ref.digest, "polars.DataFrame", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read the frame back."""
        import polars as pl

        return pl.from_arrow(_read_parquet(blobs.get_bytes(ref.digest)))


class NumpyMaterializer:
    """NumPy arrays of plain dtypes as ``.npy`` (object arrays would need pickles: refused)."""

    name = "numpy"

    def handles(self, value: Any) -> bool:
        """Arrays whose dtype is not ``object``."""
        if not type(value).__module__.startswith("numpy"):
            return False
        import numpy as np

        return isinstance(value, np.ndarray) and not value.dtype.hasobject

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Write the ``.npy`` bytes."""
        import numpy as np

        sink = io.BytesIO()
        np.save(sink, value, allow_pickle=False)
        data = sink.getvalue()
        ref = blobs.put_bytes(data)
        meta = {"shape": list(value.shape), "dtype": str(value.dtype)}
        return OutputRef(self.name, ref.digest, "numpy.ndarray", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Read the array (never with pickles allowed)."""
        import numpy as np

        return np.load(io.BytesIO(blobs.get_bytes(ref.digest)), allow_pickle=False)


class _BlobBundle:
    """A ``BundleReader`` over files stored in the blob store (verified by their digests)."""

    def __init__(self, blobs: BlobStore, files: dict[str, str], root: Path) -> None:
        self._blobs = blobs
        self._files = files
        self._root = root

    @property
    def paths(self) -> Sequence[str]:
        return sorted(self._files)

    def read_bytes(self, path: str) -> bytes:
        if path not in self._files:
            raise NotFound(f"the model bundle has no file {path!r}", {"field": "path"})
        return self._blobs.get_bytes(self._files[path])

    def local_dir(self) -> Path:
        for path, digest in self._files.items():
            target = self._root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            self._blobs.download(digest, target)
        return self._root


class ModelMaterializer:
    """``steward.Model`` as a registry bundle: the flavor's safe files, plus a small JSON manifest."""

    name = "model"

    def handles(self, value: Any) -> bool:
        """``steward.Model`` values."""
        return isinstance(value, Model)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Save through the registry flavor (detected when not given) and store every file."""
        from steward.registry.flavors import detect_flavor, get_flavor

        flavor = get_flavor(value.flavor or detect_flavor(value.native))
        with tempfile.TemporaryDirectory(prefix="steward-step-model-") as tmp:
            saved = flavor.save(value.native, Path(tmp), **value.options)
            files = {
                p.relative_to(tmp).as_posix(): blobs.put_file(p).digest
                for p in sorted(Path(tmp).rglob("*"))
                if p.is_file()
            }
        manifest = {
            "flavor": flavor.name,
            "options": dict(saved.options),
            "files": files,
            "signature": value.signature.to_dict() if value.signature is not None else None,
        }
        data = json.dumps(manifest, sort_keys=True).encode()
        ref = blobs.put_bytes(data)
        meta = {"flavor": flavor.name, "model_type": type_name(value.native)}
        return OutputRef(self.name, ref.digest, "steward.Model", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Rebuild the model from its bundle (safe formats only: nothing is unpickled)."""
        from steward.core.signature import Signature
        from steward.registry.flavors import get_flavor

        manifest = json.loads(blobs.get_bytes(ref.digest))
        flavor = get_flavor(manifest["flavor"])
        with tempfile.TemporaryDirectory(prefix="steward-step-model-") as tmp:
            bundle = _BlobBundle(blobs, dict(manifest["files"]), Path(tmp))
            native = flavor.load(bundle, manifest.get("options") or {}, False)
        signature = manifest.get("signature")
        return Model(
            native,
            flavor=flavor.name,
            signature=Signature.from_dict(signature) if signature else None,
            options=dict(manifest.get("options") or {}),
        )


class DatasetVersionMaterializer:
    """A ``DatasetVersion`` handle (not its data), so lineage knows a step read a dataset version."""

    name = "dataset_version"

    def handles(self, value: Any) -> bool:
        """Dataset versions."""
        from steward.data.models import DatasetVersion

        return isinstance(value, DatasetVersion)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Store the version's JSON description."""
        data = json.dumps(value.to_json(), sort_keys=True, default=str).encode()
        ref = blobs.put_bytes(data)
        meta = {"dataset_version_id": value.id, "dataset": value.dataset}
        return OutputRef(self.name, ref.digest, "steward.DatasetVersion", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Rebuild the handle."""
        from steward.data.models import DatasetVersion

        return DatasetVersion.from_json(json.loads(blobs.get_bytes(ref.digest)))


class ModelVersionMaterializer:
    """A registered ``ModelVersion`` handle, so lineage reaches the registry."""

    name = "model_version"

    def handles(self, value: Any) -> bool:
        """Model versions."""
        from steward.registry.models import ModelVersion

        return isinstance(value, ModelVersion)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        """Store the version's JSON description."""
        data = json.dumps(value.to_json(), sort_keys=True, default=str).encode()
        ref = blobs.put_bytes(data)
        meta = {"model_version_id": value.id, "uri": value.uri}
        return OutputRef(self.name, ref.digest, "steward.ModelVersion", len(data), meta=meta)

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        """Rebuild the handle."""
        from steward.registry.models import ModelVersion

        return ModelVersion.from_json(json.loads(blobs.get_bytes(ref.digest)))


_registry: list[Materializer] = [
    JsonMaterializer(),
    PandasMaterializer(),
    ArrowMaterializer(),
    PolarsMaterializer(),
    NumpyMaterializer(),
    ModelMaterializer(),
    DatasetVersionMaterializer(),
    ModelVersionMaterializer(),
]


def register_materializer(materializer: Materializer) -> None:
    """Add a materialiser; it is asked before the built-in ones (so it may take over a type).

    Raises:
        InvalidInput: If its name is taken by another materialiser.
    """
    for existing in _registry:
        if existing.name == materializer.name and existing is not materializer:
            raise InvalidInput(f"a materializer named {materializer.name!r} exists", {"field": "name"})
    if materializer not in _registry:
        _registry.insert(0, materializer)


def materializer_for(value: Any) -> Materializer:
    """The first materialiser that handles ``value``.

    Raises:
        InvalidInput: If none does (naming the type and how to add one).
    """
    for materializer in _registry:
        if materializer.handles(value):
            return materializer
    raise InvalidInput(
        f"no materializer stores values of type {type_name(value)}: return a DataFrame, Arrow table, "
        "NumPy array, steward.Model or JSON value, or add one with steward.pipelines.register_materializer",
        {"field": "output", "type": type_name(value)},
    )


def by_name(name: str) -> Materializer:
    """The materialiser called ``name``.

    Raises:
        NotFound: If none is registered under that name (in this process).
    """
    for materializer in _registry:
        if materializer.name == name:
            return materializer
    raise NotFound(f"no materializer named {name!r} in this process", {"field": "materializer"})


def save(value: Any, blobs: BlobStore) -> OutputRef:
    """Materialise ``value`` with the materialiser its type calls for."""
    return materializer_for(value).save(value, blobs)


def load(ref: OutputRef, blobs: BlobStore) -> Any:
    """Read a materialised value back."""
    return by_name(ref.materializer).load(ref, blobs)
