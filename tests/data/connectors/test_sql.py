"""The SQL connector on SQLite and on the local PostgreSQL: batches, types, errors, masked secrets."""

from __future__ import annotations

import datetime as dt
import gc
import json
import traceback
import warnings
from collections.abc import Generator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from steward.config import load_settings
from steward.data.connectors import Batch, SqlConnector, connector_for
from steward.data.service import DataService
from steward.errors import InvalidInput, NotFound, ServiceUnavailable
from steward.store.platform import Platform
from tests.services import free_port

PASSWORD = "s3cret-Pw"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of the test's own: a SQLite file, or a fresh schema of the local PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataService]:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    yield DataService(platform)
    platform.close()


def execute(url: str, *statements: str) -> list[Any]:
    """Run statements in one transaction; return the rows of the last one (if it returns any)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                result = conn.execute(text(statement))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    assert url.startswith("postgresql+psycopg://postgres@")
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def make_items(url: str, n: int) -> None:
    score = "double precision" if is_postgres(url) else "real"
    values = ", ".join(f"({i}, 'item-{i}', {i / 4})" for i in range(1, n + 1))
    execute(
        url,
        f"create table items (id integer, name text, score {score})",
        f"insert into items values {values}",
    )


def read(url: str, query: str, **options: Any) -> list[Batch]:
    return list(connector_for({"sql": query, "url": url, **options}).batches())


def test_a_query_streams_in_batches_of_batch_rows_with_one_schema(db_url: str) -> None:
    make_items(db_url, 25)
    batches = read(db_url, "select id, name, score from items order by id", batch_rows=10)
    assert [b.table.num_rows for b in batches] == [10, 10, 5]
    assert len({b.table.schema for b in batches}) == 1
    rows = [row for b in batches for row in b.table.to_pylist()]
    assert rows == [{"id": i, "name": f"item-{i}", "score": i / 4} for i in range(1, 26)]
    assert batches[0].source == {
        "kind": "sql",
        "url": db_url,
        "query": "select id, name, score from items order by id",
    }


def test_placeholders_take_their_values_from_params(db_url: str) -> None:
    make_items(db_url, 5)
    (batch,) = read(db_url, "select id from items where id >= :low order by id", params={"low": 4})
    assert batch.table.column("id").to_pylist() == [4, 5]
    with pytest.raises(InvalidInput, match="low"):
        read(db_url, "select id from items where id >= :low")


def test_sqlite_columns_become_arrow_types(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'types.db'}"
    execute(
        url,
        "create table t (i integer, f real, s text, b blob, empty integer, at timestamp)",
        "insert into t values (1, 1.5, 'a', x'00ff', null, '2024-05-06 07:08:09'),"
        " (null, null, null, null, null, null)",
    )
    (batch,) = read(url, "select * from t")
    schema = batch.table.schema
    assert [str(t) for t in schema.types] == ["int64", "double", "string", "binary", "null", "string"]
    assert batch.table.to_pylist()[0] == {
        "i": 1, "f": 1.5, "s": "a", "b": b"\x00\xff", "empty": None, "at": "2024-05-06 07:08:09",
    }  # fmt: skip


@pytest.mark.postgres
def test_postgres_columns_take_their_declared_types_even_in_an_all_null_batch(postgres_url: str) -> None:
    execute(
        postgres_url,
        "create table t (pos int, i int, b bigint, s smallint, f double precision, r real, t text,"
        " v varchar(4), ok boolean, day date, ts timestamp, tz timestamptz, price numeric(10, 2),"
        " j jsonb, u uuid)",
        "insert into t values (1" + ", null" * 14 + "),"
        " (2, 7, 8, 9, 1.5, 2.5, 'x', 'y', true, '2024-05-06', '2024-05-06 07:08:09',"
        " '2024-05-06 09:08:09+02', 12.5, '{\"a\"\\: 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
    )
    batches = read(postgres_url, "select * from t order by pos", batch_rows=1)
    assert len(batches) == 2 and batches[0].table.schema == batches[1].table.schema
    types = {f.name: str(f.type) for f in batches[0].table.schema}
    assert types == {
        "pos": "int32", "i": "int32", "b": "int64", "s": "int16", "f": "double", "r": "float",
        "t": "string", "v": "string", "ok": "bool", "day": "date32[day]", "ts": "timestamp[us]",
        "tz": "timestamp[us, tz=UTC]", "price": "decimal128(10, 2)", "j": "string", "u": "string",
    }  # fmt: skip
    assert batches[0].table.to_pylist()[0] == {"pos": 1} | {name: None for name in types if name != "pos"}
    row = batches[1].table.to_pylist()[0]
    assert row["ts"] == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert row["tz"] == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert row["price"] == Decimal("12.50") and json.loads(row["j"]) == {"a": 1}
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def test_numbers_are_never_truncated_when_later_batches_need_a_wider_type(
    db_url: str, data: DataService
) -> None:
    # SQLite's NUMERIC keeps 10 an integer and 10.5 a real; PostgreSQL's bare numeric has no fixed scale.
    execute(db_url, "create table prices (pos integer, amount numeric)")
    execute(db_url, "insert into prices values (1, 10), (2, 10.5), (3, 11), (4, 0.125)")
    batches = read(db_url, "select amount from prices order by pos", batch_rows=1)
    assert [v for b in batches for v in b.table.column("amount").to_pylist()] == [10, 10.5, 11, 0.125]
    version = data.ingest(
        {"sql": "select amount from prices order by pos", "url": db_url}, "prices", batch_rows=1
    ).version
    assert version is not None
    assert data.read_table(version).column("amount").to_pylist() == [10, 10.5, 11, 0.125]
    widest = "decimal128(31, 3)" if is_postgres(db_url) else "double"
    assert [c["type"] for c in version.arrow_schema] == [widest]


def test_an_all_null_first_batch_does_not_untype_the_version(db_url: str, data: DataService) -> None:
    execute(
        db_url, "create table t (pos integer, n bigint)", "insert into t values (1, null), (2, 5), (3, 6)"
    )
    result = data.ingest({"sql": "select n from t order by pos", "url": db_url}, "nums", batch_rows=1)
    assert result.version is not None
    assert list(result.version.arrow_schema) == [{"name": "n", "type": "int64", "nullable": True}]
    assert data.read_table(result.version).column("n").to_pylist() == [None, 5, 6]


def test_a_column_mixing_numbers_and_text_is_invalid_input_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    execute(url, "create table t (pos integer, v)", "insert into t values (1, 1), (2, 'one')")
    with pytest.raises(InvalidInput, match="column 'v'"):
        read(url, "select v from t order by pos")
    with pytest.raises(
        InvalidInput, match="column 'v' of the query changes type: string values after rows of type int64"
    ):
        read(url, "select v from t order by pos", batch_rows=1)


def test_an_empty_result_is_one_empty_batch_with_the_columns(db_url: str) -> None:
    make_items(db_url, 3)
    (batch,) = read(db_url, "select id, name from items where id > 100")
    assert batch.table.num_rows == 0 and batch.table.column_names == ["id", "name"]
    if is_postgres(db_url):
        assert [str(t) for t in batch.table.schema.types] == ["int32", "string"]


def test_ingesting_a_query_publishes_one_version_with_the_query_as_source(
    db_url: str, data: DataService
) -> None:
    make_items(db_url, 12)
    url = with_password(db_url) if is_postgres(db_url) else db_url
    result = data.ingest({"sql": "select * from items order by id", "url": url}, "items", batch_rows=5)
    version = result.version
    assert version is not None and len(result.versions) == 1 and version.rows == 12
    assert data.read_table(version).column("id").to_pylist() == list(range(1, 13))
    assert PASSWORD not in json.dumps(version.source)
    assert "select * from items order by id" in json.dumps(version.source)
    if is_postgres(db_url):
        assert "postgres:***@" in json.dumps(version.source)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("select * from no_such_table", "no_such_table"),
        ("selec id from items", "syntax error"),
        ("select nope from items", "nope"),
    ],
)
def test_a_bad_query_is_invalid_input_naming_the_problem(db_url: str, query: str, problem: str) -> None:
    make_items(db_url, 1)
    url = with_password(db_url) if is_postgres(db_url) else db_url
    with pytest.raises(InvalidInput, match="the database refused the query") as caught:
        read(url, query)
    assert problem in caught.value.message and caught.value.details == {"field": "query"}
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize("statement", ["delete from items", "drop table items", "update items set id = 0"])
def test_a_statement_that_writes_is_refused_and_changes_nothing(db_url: str, statement: str) -> None:
    make_items(db_url, 3)
    with pytest.raises(InvalidInput):
        read(db_url, statement)
    assert execute(db_url, "select id from items order by id") == [(1,), (2,), (3,)]


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{{port}}/test",
        f"postgresql+psycopg://postgres@127.0.0.1:{{port}}/test?password={PASSWORD}",
    ],
    ids=["in-netloc", "in-query"],
)
def test_an_unreachable_database_is_service_unavailable_without_the_password(
    url: str, data: DataService
) -> None:
    port = free_port()
    url = url.format(port=port)
    with pytest.raises(
        ServiceUnavailable, match=f"cannot connect to .*127.0.0.1:{port}/test.*refused"
    ) as caught:
        data.ingest({"sql": "select 1", "url": url}, "unreachable")
    assert "***" in unquote(caught.value.message)
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))
    assert PASSWORD not in json.dumps(caught.value.details)
    with pytest.raises(NotFound):
        data.get_version("unreachable")


def test_a_sqlite_file_that_cannot_be_opened_is_service_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match=r"cannot connect to sqlite:///.*unable to open"):
        read(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", "select 1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql+psycopg://u:{PASSWORD}@host:port/db", "not a database URL \\(its port is not a number"),
        ("just words", "not a database URL"),
        ("nosuchdb://host/db", "SQLAlchemy knows no database 'nosuchdb'"),
        (f"mssql+pymssql://u:{PASSWORD}@host/db", "the pymssql driver .* is not installed"),
    ],
)
def test_a_url_that_names_no_usable_database_is_invalid_input(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        read(url, "select 1")
    assert PASSWORD not in "".join(traceback.format_exception(caught.value))


@pytest.mark.postgres
def test_a_reader_that_stops_early_leaves_no_cursor_or_connection_open(postgres_url: str) -> None:
    tag = f"steward-test-{free_port()}"
    url = f"{postgres_url}&application_name={tag}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = cast(
            "Generator[Batch, None, None]",
            SqlConnector(url, "select generate_series(1, 100) as x", batch_rows=10).batches(),
        )
        assert next(reader).table.column("x").to_pylist() == list(range(1, 11))
        reader.close()
        with pytest.raises(InvalidInput):  # fails at the first row, while the cursor is open
            list(SqlConnector(url, "select 1 / (x - 1) from generate_series(1, 5) as x").batches())
        del reader
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    count = f"select count(*) from pg_stat_activity where application_name = '{tag}'"
    assert execute(postgres_url, count) == [(0,)]
