"""Model signatures: what a registered model takes in and gives back, and the check run before predict.

A :class:`Signature` pairs an input :class:`Schema` with an optional output one. A schema is either a
list of named, typed columns (tabular models) or one tensor with a dtype and a shape whose batch axis
is ``-1``. :func:`infer_signature` reads them off example data; :meth:`Schema.enforce` turns what a user
sends into exactly what the model expects, or raises :class:`~steward.errors.InvalidInput` with a
message the user can act on and ``details["field"]`` naming the column (or ``"input"``).

Choices the rules below rest on:

- Safe widenings are converted silently (``int32 -> int64``, ``float32 -> float64``) and so are integers
  into float columns or tensors, because integer-valued features in a float model are common. Floats
  are never cast to integers, ``bool`` is not a number, and numeric strings are never parsed.
- Plain Python values (lists, records, a single dict: what JSON decodes to) carry no precision, so
  they may also narrow within their kind: ``int64 -> int32`` (range-checked), ``float64 -> float32``,
  and ISO-8601 strings parse into ``datetime`` columns. NumPy, pandas and Arrow data keep their dtypes
  and get only the safe rules.
- NaN is a value of a float column, never a null; ``optional`` is about nulls in other types. An
  optional column may hold nulls but must be present; optional ``int``/``bool`` columns come back as
  pandas' nullable ``Int32``/``Int64``/``boolean`` dtypes so the dtype never depends on the batch.
- A pandas Series becomes one column named after it, or ``"output"`` when it is unnamed.
- Extra input columns are dropped; ``string`` and ``binary`` columns come back with ``object`` dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from steward.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

COLUMN_TYPES = ("bool", "int32", "int64", "float32", "float64", "string", "binary", "datetime")
"""The types a column of a columns schema may have."""

_FLOATS = ("float32", "float64")
_SAFE = {"int64": {"int32"}, "float32": {"int32", "int64"}, "float64": {"int32", "int64", "float32"}}
_WEAK = {"int32": {"int64"}, "float32": {"float64"}, "datetime": {"string"}}  # extra, for Python values
_OBJECT_KINDS = {  # pandas.api.types.infer_dtype of an object column -> column type
    "string": "string",
    "bytes": "binary",
    "boolean": "bool",
    "integer": "int64",
    "floating": "float64",
    "mixed-integer-float": "float64",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}
_COLUMN_KEYS = {"name", "type", "optional"}
_TYPES_TEXT = ", ".join(COLUMN_TYPES)
_ACCEPTED = "a DataFrame or Series, a dict of columns, a list of records, a pyarrow Table or a numpy array"
_TENSOR_DTYPES = frozenset(np.dtype(c).name for c in "?" + np.typecodes["AllInteger"] + np.typecodes["Float"])
_TENSOR_TEXT = ", ".join(sorted(_TENSOR_DTYPES))


def _refuse(message: str, field_: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, {"field": field_, **details})


@dataclass(frozen=True)
class ColumnSpec:
    """One named, typed column of a columns schema.

    Args:
        name: The column name.
        type: One of :data:`COLUMN_TYPES`.
        optional: Whether the column may hold nulls; a required column with nulls is refused.

    Raises:
        InvalidInput: If the name is empty or the type unknown.
    """

    name: str
    type: str
    optional: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _refuse(f"a column name must be a non-empty string, got {self.name!r}", "name")
        if self.type not in COLUMN_TYPES:
            raise _refuse(f"column {self.name!r} has type {self.type!r}; use one of {_TYPES_TEXT}", "type")
        if not isinstance(self.optional, bool):
            raise _refuse(f"'optional' of column {self.name!r} must be true or false", "optional")


@dataclass(frozen=True)
class TensorSpec:
    """The dtype and shape of a tensor input or output.

    Args:
        dtype: A NumPy dtype name of booleans, integers or floats, e.g. ``"float32"``.
        shape: One size per axis; ``-1`` means any size (the batch axis is ``-1``).

    Raises:
        InvalidInput: If the dtype is not such a name or a size is not an integer >= -1.
    """

    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, str) or self.dtype not in _TENSOR_DTYPES:
            raise _refuse(f"tensor dtype {self.dtype!r} is not one of {_TENSOR_TEXT}", "dtype")
        sizes = self.shape if isinstance(self.shape, list | tuple) else [None]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= -1 for n in sizes):
            raise _refuse(f"tensor shape {self.shape!r} must be a list of sizes, each -1 or >= 0", "shape")
        object.__setattr__(self, "shape", tuple(self.shape))


@dataclass(frozen=True)
class Schema:
    """The inputs or outputs of a model: named columns or one tensor, exactly one of the two.

    Args:
        columns: The columns, in the order a model receives them.
        tensor: The tensor spec.

    Raises:
        InvalidInput: Unless exactly one of ``columns`` / ``tensor`` is set, or if column names repeat.
    """

    columns: tuple[ColumnSpec, ...] = ()
    tensor: TensorSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if bool(self.columns) == (self.tensor is not None):
            raise _refuse("a schema holds either columns or a tensor, exactly one of the two", "schema")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise _refuse(f"column names must be unique, repeated: {', '.join(map(repr, twice))}", "columns")

    @property
    def kind(self) -> str:
        """``"columns"`` or ``"tensor"``."""
        return "tensor" if self.tensor is not None else "columns"

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON/YAML data, e.g. ``{"columns": [{"name": "age", "type": "int64"}]}``."""
        if self.tensor is not None:
            return {"tensor": {"dtype": self.tensor.dtype, "shape": list(self.tensor.shape)}}
        return {
            "columns": [
                {"name": c.name, "type": c.type, **({"optional": True} if c.optional else {})}
                for c in self.columns
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Build a schema from the output of :meth:`to_dict`, checking it.

        Raises:
            InvalidInput: If ``data`` is malformed, with the path (``schema.columns[2]``) as field.
        """
        return _parse_schema(data, "schema")

    def describe(self) -> list[str]:
        """Return one line per column (``"age: int64"``) or for the tensor (``"tensor float64 [-1, 30]"``)."""
        if self.tensor is not None:
            return [f"tensor {self.tensor.dtype} {list(self.tensor.shape)}"]
        return [f"{c.name}: {c.type}{' (optional)' if c.optional else ''}" for c in self.columns]

    def enforce(self, data: Any) -> Any:
        """Turn ``data`` into what the model expects, or refuse it.

        A columns schema accepts a DataFrame, a dict of columns, one record as a dict of scalars, a list
        of records, a pyarrow Table, or a 2-D numpy array whose columns are taken in schema order. It
        returns a DataFrame with exactly the schema's columns, in order. A tensor schema accepts a
        numpy array, nested lists or a DataFrame and returns a numpy array of the schema's dtype.

        Args:
            data: The input of one predict call.

        Returns:
            A ``pandas.DataFrame`` (columns schema) or a ``numpy.ndarray`` (tensor schema).

        Raises:
            InvalidInput: With ``details["field"]`` naming the column at fault, or ``"input"``.
        """
        if self.tensor is not None:
            return _enforce_tensor(self.tensor, data)
        return _enforce_columns(self.columns, data)


@dataclass(frozen=True)
class Signature:
    """What a model takes in and, optionally, what it gives back.

    Args:
        inputs: The input schema, enforced before every predict.
        outputs: The output schema, if known.
    """

    inputs: Schema
    outputs: Schema | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"inputs": {...}, "outputs": {...}}``, without ``outputs`` when there is none."""
        out = {"inputs": self.inputs.to_dict()}
        if self.outputs is not None:
            out["outputs"] = self.outputs.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Build a signature from the output of :meth:`to_dict`, checking it.

        Raises:
            InvalidInput: If ``data`` is malformed; ``details["field"]`` is the path, e.g. ``inputs.tensor``.
        """
        if not isinstance(data, Mapping) or "inputs" not in data or set(data) - {"inputs", "outputs"}:
            raise _refuse("a signature is a mapping with 'inputs' and optionally 'outputs'", "signature")
        outputs = data.get("outputs")
        return cls(
            inputs=_parse_schema(data["inputs"], "inputs"),
            outputs=None if outputs is None else _parse_schema(outputs, "outputs"),
        )


def infer_schema(data: Any) -> Schema:
    """Read a schema off example data.

    A numpy array gives a tensor whose first axis is the batch (``-1``) and whose other axes keep
    their sizes. Everything tabular gives columns; non-float columns with nulls are ``optional``.

    Args:
        data: A pandas DataFrame or Series, a dict of column name to list or 1-D array, a list of
            records, a pyarrow Table, or a numpy array.

    Raises:
        InvalidInput: For any other input, or a column of mixed, unsupported or only null values.
    """
    if isinstance(data, np.ndarray):
        if data.ndim == 0 or data.dtype.kind not in "biuf":
            given = f"a {data.ndim}-dimensional array of dtype {data.dtype}"
            message = f"cannot infer a tensor from {given}: give a batch axis and bool, int or float values"
            raise _refuse(message, "input", found=str(data.dtype))
        return Schema(tensor=TensorSpec(data.dtype.name, (-1, *data.shape[1:])))
    frame, _ = _to_frame(data, "infer a schema from")
    columns = []
    for name in frame.columns:
        series = frame[name]
        found = _classify(name, series)
        if found is None:
            raise _refuse(f"cannot infer the type of column {name!r}: it holds no non-null value", name)
        nulls = found not in _FLOATS and bool(series.isna().any())
        columns.append(ColumnSpec(name, found, optional=nulls))
    if not columns:
        raise _refuse("cannot infer a schema from data with no columns", "input")
    return Schema(columns=tuple(columns))


def infer_signature(inputs: Any, outputs: Any = None) -> Signature:
    """Infer a signature from example inputs and, when given, example outputs (e.g. ``model.predict(X)``).

    Raises:
        InvalidInput: As :func:`infer_schema` does for either argument.
    """
    return Signature(infer_schema(inputs), None if outputs is None else infer_schema(outputs))


def _parse_schema(data: Any, where: str) -> Schema:
    if not isinstance(data, Mapping) or len(data) != 1 or next(iter(data)) not in ("columns", "tensor"):
        raise _refuse(f"{where} must be a mapping with exactly one key, 'columns' or 'tensor'", where)
    try:
        if "tensor" in data:
            spec = data["tensor"]
            if not isinstance(spec, Mapping) or set(spec) != {"dtype", "shape"}:
                raise _refuse("must be a mapping with 'dtype' and 'shape'", "tensor")
            try:
                return Schema(tensor=TensorSpec(spec["dtype"], spec["shape"]))
            except InvalidInput as exc:
                raise _refuse(exc.message, f"tensor.{exc.details['field']}") from None
        items = data["columns"]
        if not isinstance(items, list | tuple) or not items:
            raise _refuse("must be a non-empty list of columns", "columns")
        columns = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not {"name", "type"} <= set(item) <= _COLUMN_KEYS:
                raise _refuse("must be a mapping with 'name', 'type' and maybe 'optional'", f"columns[{i}]")
            try:
                columns.append(ColumnSpec(item["name"], item["type"], item.get("optional", False)))
            except InvalidInput as exc:
                raise _refuse(exc.message, f"columns[{i}].{exc.details['field']}") from None
        return Schema(columns=tuple(columns))
    except InvalidInput as exc:
        path = f"{where}.{exc.details['field']}"
        raise _refuse(f"invalid {path}: {exc.message}", path) from None


def _to_frame(data: Any, doing: str) -> tuple[pd.DataFrame, frozenset[str]]:
    """Return ``data`` as a DataFrame with string column names, and the names of its Python-valued columns."""
    import pandas as pd

    weak: frozenset[str] = frozenset()
    if isinstance(data, pd.Series):
        frame = data.to_frame("output" if data.name is None else str(data.name))
    elif isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        frame, weak = _from_columns(data)
    elif isinstance(data, list | tuple) and all(isinstance(r, Mapping) for r in data):
        names = list(dict.fromkeys(str(k) for r in data for k in r))
        values = {n: [r.get(n) for r in data] for n in names}  # a key absent from a record is a null
        frame = pd.DataFrame(
            {n: pd.Series(v, dtype=object) for n, v in values.items()}, index=range(len(data))
        )
        weak = frozenset(names)
    elif type(data).__module__.startswith("pyarrow") and hasattr(data, "column_names"):  # Table, RecordBatch
        frame = data.to_pandas(integer_object_nulls=True)  # keeps integers with nulls as integers
    else:
        found = type(data).__name__
        raise _refuse(f"cannot {doing} {found}: pass {_ACCEPTED}", "input", found=found)
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    twice = sorted(set(frame.columns[frame.columns.duplicated()]))
    if twice:
        raise _refuse(f"column names repeat in the input: {', '.join(map(repr, twice))}", twice[0])
    return frame, weak


def _from_columns(data: Mapping[Any, Any]) -> tuple[pd.DataFrame, frozenset[str]]:
    import pandas as pd

    sequences = (list, tuple, np.ndarray, pd.Series)
    if not any(isinstance(v, sequences) for v in data.values()):  # one record: {"age": 3, ...}
        data = {k: [v] for k, v in data.items()}
    columns: dict[str, pd.Series] = {}
    weak = set()
    for key, value in data.items():
        name = str(key)
        if isinstance(value, list | tuple):
            columns[name] = pd.Series(list(value), dtype=object)  # Python values: let pandas not guess
            weak.add(name)
        elif isinstance(value, np.ndarray) and value.ndim == 1:
            columns[name] = pd.Series(value)
        elif isinstance(value, pd.Series):
            columns[name] = value.reset_index(drop=True)
        else:
            raise _refuse(f"column {name!r} must be a list or a 1-D array, got {type(value).__name__}", name)
    lengths = {n: len(s) for n, s in columns.items()}
    if len(set(lengths.values())) > 1:
        raise _refuse(f"columns differ in length: {lengths}", "input", lengths=lengths)
    size = next(iter(lengths.values()), 0)
    return pd.DataFrame(columns, index=range(size)), frozenset(weak)


def _classify(name: str, series: pd.Series) -> str | None:
    """Return the column type of ``series``, or None when an object column holds no value to tell by."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    dtype = series.dtype
    kind, size = dtype.kind, getattr(dtype, "itemsize", 0)
    found: str | None = None
    if isinstance(dtype, pd.StringDtype):
        found = "string"
    elif kind == "b":
        found = "bool"
    elif kind == "i" or (kind == "u" and size < 8):
        found = "int32" if size < 4 or (kind == "i" and size == 4) else "int64"
    elif kind == "f" and size <= 8:
        found = "float32" if size <= 4 else "float64"
    elif kind == "M":
        found = "datetime"
    elif kind in "OUS":
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "empty":
            return None
        found = _OBJECT_KINDS.get(inferred)
        if found is None:
            message = f"column {name!r} holds {inferred} values; use one of: {_TYPES_TEXT}"
            raise _refuse(message, name, found=inferred)
    if found is None:
        raise _refuse(f"column {name!r} has dtype {dtype}; use one of: {_TYPES_TEXT}", name, found=str(dtype))
    return found


def _enforce_columns(specs: tuple[ColumnSpec, ...], data: Any) -> pd.DataFrame:
    import pandas as pd

    names = [c.name for c in specs]
    weak: frozenset[str] = frozenset()
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.shape[1] != len(names):
            message = (
                f"a numpy array must be 2-D with {len(names)} columns (signature order), got {data.shape}"
            )
            raise _refuse(message, "input", expected=len(names), found=list(data.shape))
        frame = pd.DataFrame(data, columns=names)
    elif isinstance(data, list | tuple) and not data:
        frame = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    else:
        frame, weak = _to_frame(data, "use as model input")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise _refuse(f"the input lacks column(s) {', '.join(map(repr, missing))}", "input", missing=missing)
    columns = {c.name: _enforce_column(c, frame[c.name], c.name in weak) for c in specs}
    return pd.DataFrame(columns, index=frame.index)


def _enforce_column(spec: ColumnSpec, series: pd.Series, weak: bool) -> pd.Series:
    import pandas as pd

    name, expected = spec.name, spec.type
    found = _classify(name, series) if len(series) else None
    allowed = {expected} | _SAFE.get(expected, set()) | (_WEAK.get(expected, set()) if weak else set())
    if found is not None and found not in allowed:
        hint = "convert the column first"
        if found == "string":
            hint = "strings are never parsed; convert the column first"
        elif found in _FLOATS and expected.startswith("int"):
            hint = "floats are never cast to integers; round and convert the column first"
        message = f"column {name!r} must be {expected}, got {found}: {hint}"
        raise _refuse(message, name, expected=expected, found=found)
    nulls = int(series.isna().sum())
    if nulls and not spec.optional and expected not in _FLOATS:
        message = f"column {name!r} ({expected}) is not optional but holds {nulls} null(s)"
        raise _refuse(message, name, nulls=nulls)
    if expected in _FLOATS:
        return pd.Series(series.to_numpy(dtype=expected, na_value=np.nan), index=series.index)
    if expected.startswith("int") or expected == "bool":
        nullable = {"bool": "boolean", "int32": "Int32", "int64": "Int64"}[expected]
        try:
            return series.astype(pd.api.types.pandas_dtype(nullable if spec.optional else expected))
        except OverflowError:  # Python ints beyond the range; NumPy data never narrows
            raise _refuse(f"column {name!r} holds values outside the {expected} range", name) from None
    if expected in ("string", "binary"):
        return series.astype(object)
    if series.dtype.kind == "M":
        return series
    try:
        return pd.to_datetime(series, format="ISO8601" if found == "string" else None)
    except (ValueError, TypeError) as exc:
        raise _refuse(f"column {name!r} holds values that are not datetimes: {exc}", name) from None


def _enforce_tensor(spec: TensorSpec, data: Any) -> np.ndarray[Any, Any]:
    import pandas as pd

    weak = isinstance(data, list | tuple)
    if isinstance(data, pd.DataFrame | pd.Series):
        data = data.to_numpy()
    elif weak:
        try:
            data = np.asarray(data)
        except ValueError as exc:
            raise _refuse(f"the input lists do not form a tensor: {exc}", "input") from None
        if data.size == 0 and data.ndim == 1 and -1 not in spec.shape[1:]:  # [] is an empty batch
            data = np.empty((0, *spec.shape[1:]), dtype=spec.dtype)
    if not isinstance(data, np.ndarray):
        found = type(data).__name__
        raise _refuse(f"pass a numpy array, nested lists or a DataFrame, not {found}", "input", found=found)
    if data.ndim != len(spec.shape):
        hint = "; wrap a single example in a list" if data.ndim == len(spec.shape) - 1 else ""
        want, got = list(spec.shape), list(data.shape)
        raise _refuse(f"the input must have shape {want}, got {got}{hint}", "input", expected=want, found=got)
    for axis, (size, got_size) in enumerate(zip(spec.shape, data.shape, strict=True)):
        if size not in (-1, got_size):
            message = f"axis {axis} of the input must have size {size}, got {got_size}"
            raise _refuse(message, "input", axis=axis, expected=size, found=got_size)
    found, expected = data.dtype, np.dtype(spec.dtype)
    ok = np.can_cast(found, expected, "safe") or (found.kind in "iu" and expected.kind == "f")
    if weak and not ok and found.kind == expected.kind == "f":
        ok = True  # Python floats have no precision of their own
    elif weak and not ok and found.kind in "iu" and expected.kind in "iu":
        info = np.iinfo(expected)
        ok = data.size == 0 or bool(info.min <= data.min() and data.max() <= info.max)
    if not ok:
        what = f"dtype {found}" if found.kind in "biuf" else f"non-numeric values (dtype {found})"
        message = f"the input has {what}, which does not convert safely to the model's {expected}"
        raise _refuse(message, "input", expected=expected.name, found=found.name)
    return data.astype(expected, copy=False)
