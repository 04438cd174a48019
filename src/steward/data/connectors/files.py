"""Files: CSV, Parquet and JSON lines, local or at any fsspec URL (``s3://`` …), one ``Batch`` per file.

Each file is read whole into memory and parsed by pyarrow before its batch is yielded, so a broken
file never gives a partial table. pyarrow's CSV reader accepts bad quoting silently and its row
numbers skip blank lines, and its JSON reader counts rows per block: this module checks the quoting
itself (vectorised with numpy) and turns every reader error into a physical line of the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from steward.data.connectors.base import Batch, missing_extra
from steward.errors import InvalidInput, NotFound, ServiceUnavailable

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
FORMATS |= {".ndjson": "jsonl"}
"""File name endings and the format they mean (after a compression ending such as ``.gz``)."""
_EXTRAS = {"s3": "s3", "s3a": "s3"}
_NEWLINE, _CR, _QUOTE = 10, 13, 34


class FileConnector:
    """Read CSV, Parquet or JSON-lines files (a path, an fsspec URL or a glob) into Arrow tables.

    Args:
        url: ``data.csv``, ``s3://bucket/key.parquet``, ``logs/*.jsonl``, ``data.csv.gz`` …
        format: ``"csv"``, ``"parquet"`` or ``"jsonl"``; by default from each file's ending.
        columns: Keep only these columns, in this order.
        schema: An Arrow schema (or ``{name: DataType}``) to cast to: the result has exactly its columns.
        endpoint_url: The object store's endpoint (S3-compatible servers), passed to the filesystem.
        storage_options: More options for the fsspec filesystem (``key``, ``secret`` …).
        delimiter: The CSV field separator; ``","`` (``"\\t"`` for ``.tsv``) by default.
        newlines_in_values: Whether quoted CSV values may contain line breaks.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        format: str | None = None,
        columns: Sequence[str] | None = None,
        schema: pa.Schema | Mapping[str, Any] | None = None,
        endpoint_url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        delimiter: str | None = None,
        newlines_in_values: bool = False,
    ) -> None:
        self.url = os.fspath(url)
        if format is not None and format not in set(FORMATS.values()):
            raise InvalidInput(
                f"unknown file format {format!r}: use csv, parquet or jsonl", {"field": "format"}
            )
        self.format = format
        self.columns = list(columns) if columns is not None else None
        self.schema = pa.schema(schema) if isinstance(schema, Mapping) else schema
        self.storage_options = dict(storage_options or {})
        if endpoint_url is not None:
            self.storage_options["endpoint_url"] = endpoint_url
        self.delimiter = delimiter
        self.newlines_in_values = newlines_in_values

    def batches(self) -> Iterator[Batch]:
        """Yield one batch per file, in name order for a glob.

        Raises:
            NotFound: A file, or every match of a glob, is missing.
            InvalidInput: A file cannot be parsed (naming it and the line), or a column is wrong.
            ServiceUnavailable: The filesystem cannot be reached.
        """
        fs, paths = self._files()
        for path in paths:
            name = self.url if len(paths) == 1 and not _is_glob(self.url) else _display(fs, path)
            fmt = self.format or FORMATS.get(_ending(path), "")
            if not fmt:
                raise InvalidInput(
                    f"cannot tell the format of {name}: name it .csv, .parquet or .jsonl, or pass format=",
                    {"field": "format", "file": name},
                )
            data = _read_bytes(fs, path, name)
            table = _parse(data, fmt, name, self, "\t" if _ending(path) == ".tsv" else ",")
            yield Batch(table, {"kind": "file", "url": name, "format": fmt})

    def _files(self) -> tuple[Any, list[str]]:
        from fsspec.core import url_to_fs
        from fsspec.utils import get_protocol

        protocol = get_protocol(self.url)
        try:
            fs, path = url_to_fs(self.url, **(self.storage_options if protocol != "file" else {}))
        except ImportError as exc:
            raise missing_extra(
                f"the filesystem for {protocol}://", _EXTRAS.get(protocol, protocol), exc
            ) from exc
        except ValueError as exc:
            raise InvalidInput(f"cannot read {self.url}: {exc}", {"field": "source"}) from exc
        if not _is_glob(self.url):
            return fs, [path]
        try:
            fs.invalidate_cache()
            found = fs.glob(path, detail=True)
        except Exception as exc:
            raise ServiceUnavailable(f"cannot list {self.url}: {exc}", {"url": self.url}) from exc
        paths = sorted(p for p, info in found.items() if info.get("type") != "directory")
        if not paths:
            raise NotFound(f"no file matches {self.url}", {"field": "source", "file": self.url})
        return fs, paths


def _is_glob(url: str) -> bool:
    return any(char in url for char in "*?[")


def _display(fs: Any, path: str) -> str:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return path if "file" in protocols else str(fs.unstrip_protocol(path))


def _ending(path: str) -> str:
    """Return a file name's lower-case ending, ignoring a compression ending (``a.csv.gz`` → ``.csv``)."""
    from fsspec.utils import infer_compression

    stem = path[: path.rfind(".")] if infer_compression(path) else path
    return os.path.splitext(stem)[1].lower()


def _read_bytes(fs: Any, path: str, name: str) -> bytes:
    from fsspec.utils import infer_compression

    try:
        with fs.open(path, "rb", compression=infer_compression(path)) as handle:
            return bytes(handle.read())
    except FileNotFoundError as exc:
        raise NotFound(f"no file {name}", {"field": "source", "file": name}) from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise InvalidInput(f"cannot read {name}: {exc}", {"field": "source", "file": name}) from exc
    except Exception as exc:  # network, credentials, a decompression failure: the store's own errors
        raise ServiceUnavailable(f"cannot read {name}: {exc}", {"file": name}) from exc


def _parse(data: bytes, fmt: str, name: str, opts: FileConnector, delimiter: str) -> pa.Table:
    if fmt == "csv":
        table = _read_csv(data, name, opts, opts.delimiter or delimiter)
    elif fmt == "jsonl":
        table = _read_jsonl(data, name, opts.schema)
    else:
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as exc:
            raise _bad("Parquet", name, None, re.sub(r"^Could not open .*?: ", "", str(exc))) from exc
    if opts.columns is not None:
        missing = [c for c in opts.columns if c not in table.column_names]
        if missing:
            raise InvalidInput(
                f"no column {missing[0]!r} in {name}", {"field": "columns", "column": missing[0]}
            )
        table = table.select(opts.columns)
    return _cast(table, opts.schema, name) if opts.schema is not None else table


def _bad(what: str, name: str, line: int | None, message: str) -> InvalidInput:
    where = f"{name} line {line}" if line is not None else name
    return InvalidInput(f"bad {what} in {where}: {message}", {"field": "source", "file": name, "line": line})


def _cast(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            raise InvalidInput(
                f"no column {field.name!r} in {name}", {"field": "schema", "column": field.name}
            )
        try:
            arrays.append(table.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(
                f"column {field.name!r} of {name} cannot be cast to {field.type}: {exc}",
                {"field": "schema", "file": name, "column": field.name},
            ) from exc
    return pa.Table.from_arrays(arrays, schema=schema)


# -- CSV ---------------------------------------------------------------------------------------------


def _read_csv(data: bytes, name: str, opts: FileConnector, delimiter: str) -> pa.Table:
    buf = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(buf == _QUOTE) if data.find(b'"') >= 0 else np.empty(0, dtype=np.intp)
    newlines = np.flatnonzero(buf == _NEWLINE)
    problem = _quoting_problem(buf, quotes, newlines, ord(delimiter), opts.newlines_in_values)
    if problem is not None:
        raise _bad("CSV", name, problem[0], f"quoting: {problem[1]}")
    parse = pa_csv.ParseOptions(
        delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
        newlines_in_values=opts.newlines_in_values, ignore_empty_lines=True,
    )  # fmt: skip
    types = {f.name: f.type for f in opts.schema} if opts.schema is not None else {}
    convert = pa_csv.ConvertOptions(column_types=types)
    try:
        return pa_csv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "Row #" not in message:  # only the single-threaded reader knows the row
            try:
                read = pa_csv.ReadOptions(use_threads=False)
                pa_csv.read_csv(pa.BufferReader(data), read, parse_options=parse, convert_options=convert)
            except pa.ArrowInvalid as again:
                message = str(again)
        found = re.search(r"Row #(\d+)", message)
        line = _line_of_row(buf, quotes, newlines, int(found.group(1))) if found else None
        text = re.sub(r"^CSV parse error: |Row #\d+: ", "", message)
        raise _bad("CSV", name, line, text) from exc


def _quoting_problem(
    buf: Any, quotes: Any, newlines: Any, delimiter: int, newlines_in_values: bool
) -> tuple[int, str] | None:
    """Return the line and a description of the first quote that breaks RFC 4180, or ``None``.

    Quotes alternate opening and closing. An opening quote starts a field (or, right after a closing
    one, is the second half of a doubled quote); a closing quote ends the field.
    """
    if quotes.size == 0:
        return None
    bom = 3 if bytes(buf[:3]) == b"\xef\xbb\xbf" else 0
    opens, closes = quotes[0::2], quotes[1::2]
    before = buf[np.maximum(opens - 1, 0)]
    bad_open = opens[~(_field_edge(before, delimiter) | (opens == bom))]
    after = buf[np.minimum(closes + 1, buf.size - 1)]
    bad_close = closes[~(_field_edge(after, delimiter) | (closes == buf.size - 1))]
    found: list[tuple[int, str]] = []
    if bad_open.size:
        found.append((int(bad_open[0]), "a quote inside an unquoted field (quote the whole field)"))
    if bad_close.size:
        found.append((int(bad_close[0]), "text after the closing quote of a field"))
    inside = newlines[np.searchsorted(quotes, newlines) % 2 == 1]
    if not newlines_in_values and inside.size:
        # The more useful of the two readings: without newlines in values, an open quote ends at the line.
        message = "a quoted field runs past the end of the line (newlines_in_values=True allows it)"
        found.append((int(inside[0]), message))
    elif quotes.size % 2:
        found.append((int(quotes[-1]), "a quoted field is never closed"))
    if not found:
        return None
    position, message = min(found)
    return int(np.searchsorted(newlines, position)) + 1, message


def _field_edge(chars: Any, delimiter: int) -> Any:
    """Which characters may touch a quote: a delimiter, a line end, or the other half of a doubled quote."""
    return (chars == delimiter) | (chars == _NEWLINE) | (chars == _CR) | (chars == _QUOTE)


def _line_of_row(buf: Any, quotes: Any, newlines: Any, row: int) -> int | None:
    """Map pyarrow's 1-based row number (blank lines not counted) to the file's line number."""
    ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0] if quotes.size else newlines
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [buf.size]))
    length = stops - starts
    first = buf[np.minimum(starts, max(buf.size - 1, 0))] if buf.size else np.zeros_like(starts)
    nonblank = starts[(length > 1) | ((length == 1) & (first != _CR))]
    if not 1 <= row <= nonblank.size:
        return None
    return int(np.searchsorted(newlines, nonblank[row - 1])) + 1


# -- JSON lines --------------------------------------------------------------------------------------


def _read_jsonl(data: bytes, name: str, schema: pa.Schema | None) -> pa.Table:
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    try:
        return pa_json.read_json(pa.BufferReader(data), parse_options=parse)
    except pa.ArrowInvalid as exc:
        # pyarrow counts rows per block and reads objects across lines: find the line ourselves.
        line, message = _jsonl_problem(data, str(exc))
        raise _bad("JSON", name, line, message) from exc


def _jsonl_problem(data: bytes, arrow_message: str) -> tuple[int | None, str]:
    path = re.search(r"Column\((/[^)]*)\)", arrow_message)
    keys = [k for k in path.group(1).split("/") if k] if path else []
    kind_seen: str | None = None
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            return number, f"{exc.msg} at column {exc.colno}"
        except ValueError as exc:
            return number, str(exc)
        if not isinstance(record, dict):
            return number, f"expected a JSON object, got {_json_kind(record)}"
        value: Any = record
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if keys and value is not None:
            kind = _json_kind(value)
            if kind_seen is not None and kind != kind_seen:
                return number, f"field {path.group(1) if path else ''} changed from {kind_seen} to {kind}"
            kind_seen = kind
    return None, re.sub(r"^JSON parse error: | in row \d+$", "", arrow_message)


def _json_kind(value: Any) -> str:
    kinds = ((bool, "boolean"), (int | float, "number"), (str, "string"), (dict, "object"), (list, "array"))
    return next(kind for python, kind in kinds if isinstance(value, python))
