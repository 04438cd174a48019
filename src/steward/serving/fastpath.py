"""The fast path from request JSON to the array a model takes, for all-numeric column signatures.

A request to a tabular model names its columns (``{"records": [{"age": 41, ...}]}``). The full check,
:meth:`steward.core.signature.Schema.enforce`, builds a pandas DataFrame for that, which costs about a
hundred microseconds a request. When every column of the signature is a non-optional ``int32``,
``int64``, ``float32`` or ``float64``, :class:`ColumnsCodec` instead reads the values straight into one
NumPy array in signature order, of the dtype the enforced DataFrame's ``to_numpy()`` would have.

It only takes the happy path: plain JSON numbers of the right kind, every column present in every
row. Anything else (a null, a string, a bool, a float where an integer goes, a missing key, a number out
of an ``int32`` column's range) makes it return ``None``, and the caller runs the full check, which
either refuses the input with its usual error naming the column or accepts it (a null in a float
column is NaN). So both paths accept the same inputs, produce the same array and give the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Final

import numpy as np

from steward.core.signature import Schema

NUMERIC_TYPES: Final = frozenset({"int32", "int64", "float32", "float64"})
"""Column types the fast path handles."""

_FLOAT_VALUES: Final = frozenset({int, float})
_INT_VALUES: Final = frozenset({int})
_INT32: Final = np.iinfo(np.int32)


def _types(values: Any) -> set[type]:
    return set(map(type, values))


class ColumnsCodec:
    """Turns JSON values into a model's input array for one all-numeric columns signature.

    Build it with :meth:`for_schema`; every ``from_*`` method returns a C-contiguous 2-D array with one
    column per signature column (in signature order), or ``None`` when the input needs the full check.

    Args:
        names: The signature's column names, in order.
        types: Their column types (each in :data:`NUMERIC_TYPES`).
    """

    def __init__(self, names: Sequence[str], types: Sequence[str]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.types: tuple[str, ...] = tuple(types)
        self.width = len(self.names)
        self.dtype: np.dtype[Any] = np.result_type(*(np.dtype(t) for t in self.types))
        self._all_float = all(t.startswith("float") for t in self.types)
        self._int_columns = [i for i, t in enumerate(self.types) if t.startswith("int")]
        self._int32_columns = [i for i, t in enumerate(self.types) if t == "int32"]
        self._accepted: dict[tuple[np.dtype[Any], str], bool] = {}
        self._accepted_by_all: dict[np.dtype[Any], bool] = {}
        # A float32 column in a float64 array: the enforced frame holds the value rounded to float32.
        self._float32_columns = (
            [i for i, t in enumerate(self.types) if t == "float32"] if self.dtype != np.float32 else []
        )

    @classmethod
    def for_schema(cls, schema: Schema) -> ColumnsCodec | None:
        """Return the codec of ``schema``, or None when it is not an all-numeric columns schema.

        Args:
            schema: A signature's input schema.
        """
        if schema.tensor is not None or not schema.columns:
            return None
        if any(
            c.type not in NUMERIC_TYPES or (c.optional and c.type.startswith("int")) for c in schema.columns
        ):
            return None
        return cls([c.name for c in schema.columns], [c.type for c in schema.columns])

    def from_records(self, records: Sequence[Any]) -> np.ndarray[Any, Any] | None:
        """Read a list of records (``[{"age": 41, ...}, ...]``); extra keys are ignored.

        Args:
            records: What the request's ``records`` holds.
        """
        names = self.names
        try:
            rows = [[record[name] for name in names] for record in records]
        except (KeyError, TypeError):  # a missing column, or a record that is not a mapping
            return None
        return self.from_rows(rows)

    def from_rows(self, rows: Sequence[Any]) -> np.ndarray[Any, Any] | None:
        """Read rows of values in signature order (``[[41, 1.5, ...], ...]``).

        Args:
            rows: A list of lists, one per row.
        """
        if not rows:
            return None
        width = self.width
        for row in rows:
            if type(row) is not list or len(row) != width:
                return None
        if self._all_float:
            values = rows[0] if len(rows) == 1 else chain.from_iterable(rows)
            if not set(map(type, values)) <= _FLOAT_VALUES:
                return None
        else:
            for index, column_type in enumerate(self.types):
                allowed = _INT_VALUES if column_type.startswith("int") else _FLOAT_VALUES
                if not _types(row[index] for row in rows) <= allowed:
                    return None
        return self._finish(rows)

    def from_mapping(self, columns: Mapping[str, Any]) -> np.ndarray[Any, Any] | None:
        """Read a dict of columns (``{"age": [41, 37], ...}``) or one record (``{"age": 41, ...}``).

        Args:
            columns: What the request's ``columns`` holds.
        """
        try:
            values = [columns[name] for name in self.names]
        except (KeyError, TypeError):
            return None
        kinds = _types(values)
        if kinds <= _FLOAT_VALUES:  # one record of scalars
            return self.from_rows([values])
        if kinds != {list}:
            return None
        length = len(values[0])
        if length == 0 or any(len(column) != length for column in values):
            return None
        for column, column_type in zip(values, self.types, strict=True):
            allowed = _INT_VALUES if column_type.startswith("int") else _FLOAT_VALUES
            if not _types(column) <= allowed:
                return None
        try:
            array = np.array(values, dtype=self.dtype).T
        except OverflowError:
            return None
        return self._checked(np.ascontiguousarray(array))

    def accepts(self, dtype: np.dtype[Any], column_type: str) -> bool:
        """Whether typed data of ``dtype`` may go into a column of ``column_type`` (the signature's rules:
        safe casts, and integers into floats).

        Args:
            dtype: The data's NumPy dtype.
            column_type: The column's type.
        """
        key = (dtype, column_type)
        found = self._accepted.get(key)
        if found is None:
            expected = np.dtype(column_type)
            if dtype.kind not in "iuf" or (dtype.kind == "u" and dtype.itemsize >= 8):
                found = False
            else:
                found = bool(np.can_cast(dtype, expected, "safe")) or (
                    dtype.kind in "iu" and expected.kind == "f"
                )
            self._accepted[key] = found
        return found

    def from_arrays(self, arrays: Mapping[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any] | None:
        """Stack typed 1-D arrays, one per column (an Open Inference Protocol request's inputs).

        Args:
            arrays: Column name to a 1-D array of its values.
        """
        try:
            columns = [arrays[name] for name in self.names]
        except KeyError:
            return None
        length = columns[0].shape[0] if columns[0].ndim == 1 else -1
        for column, column_type in zip(columns, self.types, strict=True):
            if column.ndim != 1 or column.shape[0] != length or not self.accepts(column.dtype, column_type):
                return None
        if length == 0:
            return None
        stacked = np.empty((length, self.width), dtype=self.dtype)
        for index, column in enumerate(columns):
            stacked[:, index] = column
        return self._rounded(stacked)

    def from_matrix(self, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        """Take a typed 2-D array whose columns are in signature order.

        Args:
            matrix: An ``(n, width)`` array.
        """
        if matrix.ndim != 2 or matrix.shape[1] != self.width or matrix.shape[0] == 0:
            return None
        accepted = self._accepted_by_all.get(matrix.dtype)
        if accepted is None:
            accepted = self._accepted_by_all[matrix.dtype] = all(
                self.accepts(matrix.dtype, t) for t in self.types
            )
        if not accepted:
            return None
        return self._rounded(np.ascontiguousarray(matrix, dtype=self.dtype))

    def _finish(self, rows: Sequence[Any]) -> np.ndarray[Any, Any] | None:
        try:
            array = np.array(rows, dtype=self.dtype)
        except OverflowError:  # a Python int beyond int64: the full check says so
            return None
        return self._checked(array)

    def _checked(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        if self._int32_columns:
            block = array[:, self._int32_columns]
            if block.size and (block.min() < _INT32.min or block.max() > _INT32.max):
                return None
        return self._rounded(array)

    def _rounded(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self._float32_columns:
            columns = self._float32_columns
            array[:, columns] = array[:, columns].astype(np.float32)
        return array
