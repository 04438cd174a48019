"""The file connector (CSV, Parquet, JSON lines; local and S3) and ``connector_for``."""

from __future__ import annotations

import csv
import doctest
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steward.data.connectors import (
    Batch,
    FileConnector,
    HttpConnector,
    RedisStreamConnector,
    SqlConnector,
    base,
    connector_for,
)
from steward.errors import InvalidInput, NotFound
from tests.plugins.s3 import S3Artifacts

ROWS = [{"id": 1, "name": "ann", "score": 0.5}, {"id": 2, "name": "bob", "score": 1.5}]


def read(source: Any, **options: Any) -> list[Batch]:
    return list(connector_for(source, **options).batches())


def write(path: Path, fmt: str, rows: list[dict[str, Any]] = ROWS) -> Path:
    table = pa.Table.from_pylist(rows)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text("id,name,score\n" + "".join(f"{r['id']},{r['name']},{r['score']}\n" for r in rows))
    return path


@pytest.mark.parametrize(("ending", "fmt"), [(".csv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl")])
def test_each_format_is_read_by_its_ending(tmp_path: Path, ending: str, fmt: str) -> None:
    path = write(tmp_path / f"data{ending}", fmt)
    (batch,) = read(str(path))
    assert batch.table.to_pylist() == ROWS
    assert batch.source == {"kind": "file", "url": str(path), "format": fmt}
    batch.commit()  # files have nothing to acknowledge


def test_format_option_wins_over_the_ending(tmp_path: Path) -> None:
    path = write(tmp_path / "export.txt", "jsonl")
    (batch,) = read(path, format="jsonl")
    assert batch.table.to_pylist() == ROWS
    with pytest.raises(InvalidInput, match=r"format of .*export\.txt"):
        read(str(path))


def test_a_glob_gives_one_batch_per_file_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b.jsonl", "jsonl", ROWS[1:])
    write(tmp_path / "a.jsonl", "jsonl", ROWS[:1])
    (tmp_path / "ignored.csv").write_text("x\n1\n")
    batches = read(str(tmp_path / "*.jsonl"))
    assert [b.source["url"] for b in batches] == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    assert [b.table.to_pylist() for b in batches] == [ROWS[:1], ROWS[1:]]


def test_compressed_files_are_read_by_their_inner_ending(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv.gz"
    path.write_bytes(gzip.compress(b"id\tname\n1\tann\n"))
    (batch,) = read(str(path))
    assert batch.table.to_pylist() == [{"id": 1, "name": "ann"}]


def test_columns_select_and_a_schema_casts(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code,n,extra\n007,1,x\n010,2,y\n")
    schema = pa.schema([("code", pa.string()), ("n", pa.float32())])
    (batch,) = read(str(path), schema=schema)
    assert batch.table.schema == schema  # exactly the schema's columns, "007" kept as text
    assert batch.table.column("code").to_pylist() == ["007", "010"]
    (batch,) = read(str(path), columns=["n", "code"])
    assert batch.table.column_names == ["n", "code"]
    with pytest.raises(InvalidInput, match="no column 'nope'") as err:
        read(str(path), columns=["nope"])
    assert err.value.details["column"] == "nope"


def test_a_failing_cast_names_the_column(tmp_path: Path) -> None:
    path = write(tmp_path / "data.parquet", "parquet")
    message = r"column 'name' of .*data\.parquet cannot be cast to int64"
    with pytest.raises(InvalidInput, match=message) as err:
        read(str(path), schema=pa.schema([("name", pa.int64())]))
    assert err.value.details["column"] == "name"


def test_a_csv_conversion_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("n\n1\n\n2\nthree\n")
    with pytest.raises(InvalidInput, match=r"data\.csv line 5: .*invalid value 'three'") as err:
        read(str(path), schema={"n": pa.int64()})
    assert err.value.details == {"field": "source", "file": str(path), "line": 5}


def test_a_csv_row_with_the_wrong_number_of_columns_names_the_line(tmp_path: Path) -> None:
    # Blank lines do not count as rows for pyarrow, but they are lines of the file.
    lines = ["a,b", *[f"{i},{i}" for i in range(50_000)], "1,2,3", "4,5"]
    lines[10] = ""
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    message = r"bad CSV in .*wide\.csv line 50002: Expected 2 columns, got 3"
    with pytest.raises(InvalidInput, match=message) as err:
        read(str(path))
    assert err.value.details == {"field": "source", "file": str(path), "line": 50002}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('a,b\n1,"x\n2,y\n', 2, "runs past the end of the line"),
        ('a,b\n1,2\n3,"x"y\n', 3, "text after the closing quote"),
        ('a,b\n1,x"y\n', 2, "quote inside an unquoted field"),
        ('a,b\n1,"x""\n', 2, "runs past the end of the line"),
        ('a,b\n1,"multi\nline"\n2,"open', 4, "never closed"),
    ],
)
def test_bad_csv_quoting_names_the_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=rf"quotes\.csv line {line}: quoting: .*{problem}") as err:
        read(str(path), newlines_in_values="multi" in text)
    assert err.value.details["line"] == line


def test_quoted_line_breaks_are_read_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,note\n1,"two\nlines"\n2,"say ""hi"""\n')
    (batch,) = read(str(path), newlines_in_values=True)
    assert batch.table.to_pylist() == [{"id": 1, "note": "two\nlines"}, {"id": 2, "note": 'say "hi"'}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(alphabet="ab ,\"x'é", max_size=6), min_size=2, max_size=2), max_size=8))
def test_any_csv_that_python_writes_reads_back_unchanged(tmp_path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["p", "q"], *rows])
    path = tmp_path / "written.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    (batch,) = read(str(path), schema={"p": pa.string(), "q": pa.string()})
    assert [[r["p"], r["q"]] for r in batch.table.to_pylist()] == rows


def test_a_truncated_parquet_file_is_invalid_input_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.parquet", "parquet")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InvalidInput, match=r"bad Parquet in .*cut\.parquet") as err:
        read(str(path))
    assert err.value.details["file"] == str(path)


def test_an_invalid_json_line_is_named_past_the_reader_blocks(tmp_path: Path) -> None:
    lines = [json.dumps({"a": i, "b": "x"}) for i in range(60_000)]
    lines[45_000] = '{"a": 1, "b": '
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=r"bad JSON in .*events\.jsonl line 45001: Expecting value") as err:
        read(str(path))
    assert err.value.details["line"] == 45_001


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}\n{"a": "x"}\n', "field /a changed from number to string"),
        ('{"a": 1}\n[1]\n', "expected a JSON object, got array"),
    ],
)
def test_json_lines_that_do_not_fit_a_table_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=rf"mixed\.jsonl line 2: {message}"):
        read(str(path))


def test_a_missing_file_or_an_empty_glob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"no file .*absent\.csv"):
        read(str(tmp_path / "absent.csv"))
    with pytest.raises(NotFound, match=r"no file matches .*\*\.parquet"):
        read(str(tmp_path / "*.parquet"))


def test_a_broken_file_in_a_glob_fails_after_the_good_ones(tmp_path: Path) -> None:
    write(tmp_path / "1.csv", "csv")
    (tmp_path / "2.csv").write_text("a,b\n1\n")
    batches: Iterator[Batch] = connector_for(str(tmp_path / "*.csv")).batches()
    assert next(batches).table.num_rows == 2
    with pytest.raises(InvalidInput, match=r"2\.csv line 2"):
        next(batches)


@pytest.mark.s3
def test_files_on_s3_are_read_through_the_endpoint(s3_artifacts: S3Artifacts, tmp_path: Path) -> None:
    from s3fs import S3FileSystem

    fs = S3FileSystem(endpoint_url=s3_artifacts.endpoint_url, skip_instance_cache=True)
    fs.put(str(write(tmp_path / "a.parquet", "parquet")), f"{s3_artifacts.url}/part-a.parquet")
    fs.put(str(write(tmp_path / "b.csv", "csv")), f"{s3_artifacts.url}/part-b.csv")
    endpoint = s3_artifacts.endpoint_url
    (batch,) = read(f"{s3_artifacts.url}/part-a.parquet", endpoint_url=endpoint)
    assert batch.table.to_pylist() == ROWS
    assert batch.source == {"kind": "file", "url": f"{s3_artifacts.url}/part-a.parquet", "format": "parquet"}
    batches = read({"file": f"{s3_artifacts.url}/part-*", "endpoint_url": endpoint})
    assert [b.source["format"] for b in batches] == ["parquet", "csv"]
    assert batches[1].source["url"] == f"{s3_artifacts.url}/part-b.csv"
    with pytest.raises(NotFound, match=r"missing\.csv"):
        read(f"{s3_artifacts.url}/missing.csv", endpoint_url=endpoint)


# -- connector_for -----------------------------------------------------------------------------------


def test_connector_for_picks_the_connector_by_kind() -> None:
    assert isinstance(connector_for("data.csv"), FileConnector)
    sql = connector_for({"sql": "select 1", "url": "postgresql://u:secret@db/x"}, batch_rows=10)
    assert isinstance(sql, SqlConnector) and sql.batch_rows == 10 and "secret" not in sql.url
    http = connector_for({"http": "https://api.example/items", "records_path": "items"})
    assert isinstance(http, HttpConnector) and http.records_path == "items"
    stream = connector_for({"redis_stream": "events", "url": "redis://localhost", "group": "g"})
    assert isinstance(stream, RedisStreamConnector)
    assert stream.checkpoint_key == "steward:ckpt:events:g"


def test_connector_for_returns_a_connector_object_itself() -> None:
    class Custom:
        def batches(self) -> Iterator[Batch]:
            yield Batch(pa.table({"x": [1]}), {"kind": "custom"})

    custom = Custom()
    assert connector_for(custom) is custom
    with pytest.raises(InvalidInput, match="cannot apply to a connector object"):
        connector_for(custom, format="csv")


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ({"sql": "select 1"}, {}, "a sql source needs url"),
        ({"sql": "select 1", "http": "x", "url": "sqlite://"}, {}, "exactly one of the keys"),
        ({"table": "t"}, {}, "exactly one of the keys"),
        ("data.csv", {"sheet": 1}, "unknown option.*sheet"),
        ({"redis_stream": "s", "url": "redis://x"}, {}, "needs group"),
        (42, {}, "cannot read a source of type int"),
    ],
)
def test_connector_for_refuses_what_it_cannot_read(
    source: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        connector_for(source, **options)


def test_the_connector_protocol_example_runs() -> None:
    result = doctest.testmod(base, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
