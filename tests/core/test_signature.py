"""Signatures are inferred from example data, survive JSON, and gate every predict with actionable errors."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer

from steward.core.signature import (
    COLUMN_TYPES,
    ColumnSpec,
    Schema,
    Signature,
    TensorSpec,
    infer_schema,
    infer_signature,
)
from steward.errors import InvalidInput

PEOPLE = Schema(
    columns=(
        ColumnSpec("age", "int64"),
        ColumnSpec("income", "float64"),
        ColumnSpec("city", "string", optional=True),
    )
)
IMAGES = Schema(tensor=TensorSpec("float32", (-1, 2, 3)))


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    bunch = load_breast_cancer(as_frame=True)
    return bunch.data, bunch.target


def refusal(schema: Schema, data: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        schema.enforce(data)
    return info.value


# Inference


def test_breast_cancer_frame_infers_float64_columns_in_order(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, _ = cancer
    schema = infer_schema(features)
    assert schema.kind == "columns"
    assert [c.name for c in schema.columns] == list(features.columns)
    assert {c.type for c in schema.columns} == {"float64"}
    assert not any(c.optional for c in schema.columns)


def test_numpy_matrix_infers_tensor_with_free_batch_axis(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    schema = infer_schema(cancer[0].to_numpy())
    assert schema.kind == "tensor"
    assert schema.tensor == TensorSpec("float64", (-1, 30))
    assert infer_schema(np.arange(5)).tensor == TensorSpec("int64", (-1,))


def test_inference_ignores_row_count_so_schemas_compare_equal(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, target = cancer
    assert infer_signature(features, target) == infer_signature(features.head(10), target.head(10))
    assert infer_schema(features.to_numpy()) == infer_schema(features.to_numpy()[:3])
    assert infer_schema(features) != infer_schema(features.drop(columns=features.columns[0]))


def test_pandas_dtypes_map_to_column_types() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False],
            "small": np.array([1, 2], dtype=np.int8),
            "count": np.array([1, 2], dtype=np.int32),
            "big": [1, 2],
            "ratio": np.array([0.5, 1.5], dtype=np.float32),
            "score": [0.5, np.nan],
            "name": ["a", "b"],
            "blob": [b"x", b"y"],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("UTC"),
            "day": pd.to_datetime(["2024-01-01", "2024-02-01"]).astype("datetime64[s]"),
            "level": pd.Categorical(["lo", "hi"]),
        }
    )
    types = {c.name: c.type for c in infer_schema(frame).columns}
    assert types == {
        "flag": "bool",
        "small": "int32",
        "count": "int32",
        "big": "int64",
        "ratio": "float32",
        "score": "float64",
        "name": "string",
        "blob": "binary",
        "when": "datetime",
        "day": "datetime",
        "level": "string",
    }
    assert set(types.values()) == set(COLUMN_TYPES)


def test_only_nulls_in_non_float_columns_make_them_optional() -> None:
    frame = pd.DataFrame(
        {
            "score": [0.5, np.nan],
            "count": pd.array([1, None], dtype="Int64"),
            "name": pd.Series(["a", None], dtype=object),
            "when": pd.to_datetime(["2024-01-01", None]),
            "full": pd.array([1, 2], dtype="Int64"),
        }
    )
    optional = {c.name: c.optional for c in infer_schema(frame).columns}
    assert optional == {"score": False, "count": True, "name": True, "when": True, "full": False}


def test_a_series_becomes_one_column_named_after_it_or_output() -> None:
    assert infer_schema(pd.Series([0, 1], name="target")).columns == (ColumnSpec("target", "int64"),)
    assert infer_schema(pd.Series([0.1, 0.2])).columns == (ColumnSpec("output", "float64"),)


def test_a_dict_of_lists_and_arrays_infers_columns() -> None:
    schema = infer_schema(
        {"age": [30, None], "income": np.array([1.0, 2.0], dtype=np.float32), "ok": [True, False]}
    )
    assert schema.columns == (
        ColumnSpec("age", "int64", optional=True),
        ColumnSpec("income", "float32"),
        ColumnSpec("ok", "bool"),
    )


def test_a_list_of_records_infers_columns_in_first_seen_order() -> None:
    records = [{"age": 30, "city": "Oslo"}, {"age": 41, "income": 2.5}]
    assert infer_schema(records).columns == (
        ColumnSpec("age", "int64"),
        ColumnSpec("city", "string", optional=True),
        ColumnSpec("income", "float64"),
    )


def test_a_pyarrow_table_infers_columns_keeping_integers_with_nulls() -> None:
    table = pa.table(
        {"age": pa.array([30, None], pa.int64()), "w": pa.array([1.0, 2.0], pa.float32()), "s": ["a", "b"]}
    )
    assert infer_schema(table).columns == (
        ColumnSpec("age", "int64", optional=True),
        ColumnSpec("w", "float32"),
        ColumnSpec("s", "string"),
    )


def test_infer_signature_reads_inputs_and_outputs(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, target = cancer
    signature = infer_signature(features, target.to_numpy())
    assert signature.inputs == infer_schema(features)
    assert signature.outputs == Schema(tensor=TensorSpec("int64", (-1,)))
    assert infer_signature(features).outputs is None


@pytest.mark.parametrize(
    ("data", "given"),
    [
        ({1, 2}, "set"),
        (None, "NoneType"),
        ("text", "str"),
        ([1, 2, 3], "list"),
        (np.array([1, "a", None], dtype=object), "object"),
        (np.float64(3.0), "float64"),
        (np.array(3.0), "0-dimensional"),
        (np.array(["a", "b"]), "<U1"),
    ],
)
def test_unsupported_inputs_are_refused_at_inference_saying_what_was_given(data: Any, given: str) -> None:
    with pytest.raises(InvalidInput) as info:
        infer_schema(data)
    assert given in info.value.message
    assert info.value.details["field"] == "input"


def test_a_column_of_mixed_types_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput) as info:
        infer_schema(pd.DataFrame({"ok": [1, 2], "mixed": pd.Series([1, "a"], dtype=object)}))
    assert "'mixed'" in info.value.message
    assert info.value.details == {"field": "mixed", "found": "mixed-integer"}


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"empty": pd.Series([None, None], dtype=object)}),
        pd.DataFrame({"gap": pd.Series([], dtype=object)}),
        pd.DataFrame({"wait": pd.to_timedelta([1, 2], unit="s")}),
        pd.DataFrame({"huge": np.array([1, 2], dtype=np.uint64)}),
    ],
)
def test_columns_of_unknown_or_unsupported_type_are_refused_naming_them(frame: pd.DataFrame) -> None:
    name = frame.columns[0]
    with pytest.raises(InvalidInput) as info:
        infer_schema(frame)
    assert repr(name) in info.value.message
    assert info.value.details["field"] == name


# Serialisation


def test_signatures_round_trip_through_json() -> None:
    signature = Signature(inputs=PEOPLE, outputs=IMAGES)
    data = json.loads(json.dumps(signature.to_dict()))
    assert Signature.from_dict(data) == signature
    assert Schema.from_dict(json.loads(json.dumps(IMAGES.to_dict()))) == IMAGES


def test_to_dict_omits_false_optional_and_absent_outputs() -> None:
    assert Signature(PEOPLE).to_dict() == {
        "inputs": {
            "columns": [
                {"name": "age", "type": "int64"},
                {"name": "income", "type": "float64"},
                {"name": "city", "type": "string", "optional": True},
            ]
        }
    }
    assert IMAGES.to_dict() == {"tensor": {"dtype": "float32", "shape": [-1, 2, 3]}}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "signature"),
        ({"outputs": PEOPLE.to_dict()}, "signature"),
        ({"inputs": PEOPLE.to_dict(), "extra": 1}, "signature"),
        ({"inputs": {}}, "inputs"),
        ({"inputs": {"columns": [], "tensor": {}}}, "inputs"),
        ({"inputs": {"columns": []}}, "inputs.columns"),
        ({"inputs": {"columns": ["age"]}}, "inputs.columns[0]"),
        ({"inputs": {"columns": [{"name": "age"}]}}, "inputs.columns[0]"),
        ({"inputs": {"columns": [{"name": "age", "type": "int"}]}}, "inputs.columns[0].type"),
        ({"inputs": {"columns": [{"name": "", "type": "int64"}]}}, "inputs.columns[0].name"),
        (
            {"inputs": {"columns": [{"name": "a", "type": "bool", "optional": "yes"}]}},
            "inputs.columns[0].optional",
        ),
        ({"inputs": {"columns": [{"name": "a", "type": "bool"}] * 2}}, "inputs.columns"),
        ({"inputs": {"tensor": {"dtype": "float64"}}}, "inputs.tensor"),
        ({"inputs": {"tensor": {"dtype": "float", "shape": [-1]}}}, "inputs.tensor.dtype"),
        ({"inputs": {"tensor": {"dtype": "object", "shape": [-1]}}}, "inputs.tensor.dtype"),
        ({"inputs": {"tensor": {"dtype": "int64", "shape": [-2]}}}, "inputs.tensor.shape"),
        ({"inputs": {"tensor": {"dtype": "int64", "shape": "-1"}}}, "inputs.tensor.shape"),
        (
            {"inputs": PEOPLE.to_dict(), "outputs": {"tensor": {"dtype": "int64", "shape": [True]}}},
            "outputs.tensor.shape",
        ),
    ],
)
def test_from_dict_refuses_bad_dicts_naming_the_path(data: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Signature.from_dict(data)
    assert info.value.details["field"] == field
    assert field in info.value.message


def test_a_schema_holds_exactly_one_of_columns_or_tensor() -> None:
    with pytest.raises(InvalidInput):
        Schema()
    with pytest.raises(InvalidInput):
        Schema(columns=PEOPLE.columns, tensor=IMAGES.tensor)


def test_describe_gives_one_line_per_column_or_tensor() -> None:
    assert PEOPLE.describe() == ["age: int64", "income: float64", "city: string (optional)"]
    assert Schema(tensor=TensorSpec("float64", (-1, 30))).describe() == ["tensor float64 [-1, 30]"]


# Enforcing a columns schema


def test_enforce_reorders_columns_and_drops_extra_ones() -> None:
    frame = pd.DataFrame({"extra": [1, 2], "city": ["Oslo", "Rome"], "income": [1.5, 2.5], "age": [30, 41]})
    out = PEOPLE.enforce(frame)
    assert list(out.columns) == ["age", "income", "city"]
    assert out["age"].tolist() == [30, 41]
    assert out["city"].tolist() == ["Oslo", "Rome"]


def test_enforce_keeps_a_frame_from_breast_cancer_unchanged(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, _ = cancer
    out = infer_schema(features).enforce(features)
    pd.testing.assert_frame_equal(out, features)


def test_missing_columns_are_all_named() -> None:
    error = refusal(PEOPLE, pd.DataFrame({"income": [1.0]}))
    assert "'age'" in error.message and "'city'" in error.message
    assert error.details == {"field": "input", "missing": ["age", "city"]}


def test_a_string_where_a_number_is_expected_is_refused_naming_column_and_types() -> None:
    error = refusal(PEOPLE, pd.DataFrame({"age": ["30"], "income": [1.0], "city": ["Oslo"]}))
    assert "'age'" in error.message and "int64" in error.message and "string" in error.message
    assert error.details == {"field": "age", "expected": "int64", "found": "string"}


def test_integers_are_accepted_and_converted_for_float_columns() -> None:
    out = PEOPLE.enforce({"age": [30], "income": np.array([1000], dtype=np.int64), "city": ["Oslo"]})
    assert out["income"].dtype == np.float64
    assert out["income"].tolist() == [1000.0]
    schema = Schema(columns=(ColumnSpec("x", "float32"),))
    assert schema.enforce(pd.DataFrame({"x": np.array([1, 2], dtype=np.int64)}))["x"].dtype == np.float32


def test_int32_widens_to_int64_and_float32_to_float64() -> None:
    frame = pd.DataFrame(
        {"age": np.array([30], np.int32), "income": np.array([1.5], np.float32), "city": ["Oslo"]}
    )
    out = PEOPLE.enforce(frame)
    assert out["age"].dtype == np.int64 and out["income"].dtype == np.float64


def test_floats_are_never_cast_to_integers() -> None:
    error = refusal(PEOPLE, pd.DataFrame({"age": [30.0], "income": [1.0], "city": ["Oslo"]}))
    assert "'age'" in error.message and "float64" in error.message
    assert error.details == {"field": "age", "expected": "int64", "found": "float64"}


def test_bool_is_not_a_number() -> None:
    error = refusal(PEOPLE, {"age": [True], "income": [1.0], "city": ["Oslo"]})
    assert error.details == {"field": "age", "expected": "int64", "found": "bool"}


def test_numpy_float64_is_refused_for_a_float32_column_but_json_floats_are_accepted() -> None:
    schema = Schema(columns=(ColumnSpec("x", "float32"), ColumnSpec("n", "int32")))
    error = refusal(schema, pd.DataFrame({"x": [0.5], "n": np.array([1], np.int32)}))
    assert error.details == {"field": "x", "expected": "float32", "found": "float64"}
    out = schema.enforce(json.loads('[{"x": 0.5, "n": 7}]'))
    assert out["x"].dtype == np.float32 and out["n"].dtype == np.int32
    assert out.to_dict("records") == [{"x": 0.5, "n": 7}]


@pytest.mark.parametrize(("column_type", "big"), [("int32", 2**40), ("int64", 2**70), ("int64", -(2**70))])
def test_python_integers_out_of_range_are_refused(column_type: str, big: int) -> None:
    schema = Schema(columns=(ColumnSpec("n", column_type, optional=True),))
    error = refusal(schema, {"n": [1, None, big]})
    assert "'n'" in error.message and column_type in error.message
    assert error.details == {"field": "n"}


def test_nulls_in_a_required_int_column_are_refused() -> None:
    error = refusal(PEOPLE, {"age": [30, None], "income": [1.0, 2.0], "city": ["Oslo", "Rome"]})
    assert "'age'" in error.message
    assert error.details == {"field": "age", "nulls": 1}


def test_optional_columns_take_nulls_and_get_a_nullable_dtype() -> None:
    schema = Schema(columns=(ColumnSpec("n", "int64", optional=True), ColumnSpec("b", "bool", optional=True)))
    out = schema.enforce([{"n": 1, "b": True}, {"n": None, "b": None}])
    assert str(out["n"].dtype) == "Int64" and str(out["b"].dtype) == "boolean"
    assert out["n"].isna().tolist() == [False, True]
    assert str(schema.enforce({"n": [1], "b": [False]})["n"].dtype) == "Int64"


def test_nan_in_a_float_column_is_a_value_not_a_null() -> None:
    out = PEOPLE.enforce({"age": [1], "income": [np.nan], "city": [None]})
    assert np.isnan(out["income"][0])


def test_empty_input_returns_an_empty_frame_of_the_schema_dtypes() -> None:
    expected = {"age": np.dtype("int64"), "income": np.dtype("float64"), "city": np.dtype(object)}
    for empty in (
        [],
        pd.DataFrame({"age": [], "income": [], "city": []}),
        {"age": [], "income": [], "city": []},
    ):
        out = PEOPLE.enforce(empty)
        assert len(out) == 0
        assert out.dtypes.to_dict() == expected


def test_a_single_record_dict_is_one_row() -> None:
    out = PEOPLE.enforce({"city": "Oslo", "age": 30, "income": 1.5})
    assert out.to_dict("records") == [{"age": 30, "income": 1.5, "city": "Oslo"}]


def test_a_numpy_matrix_is_assigned_to_columns_by_position(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, _ = cancer
    out = infer_schema(features).enforce(features.to_numpy()[:5])
    assert list(out.columns) == list(features.columns)
    np.testing.assert_array_equal(out.to_numpy(), features.to_numpy()[:5])


def test_a_numpy_matrix_of_the_wrong_width_is_refused(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    features, _ = cancer
    error = refusal(infer_schema(features), features.to_numpy()[:, :29])
    assert "30 columns" in error.message
    assert error.details == {"field": "input", "expected": 30, "found": [569, 29]}


def test_a_pyarrow_table_is_enforced() -> None:
    table = pa.table({"city": ["Oslo", None], "age": pa.array([30, 41], pa.int32()), "income": [1.0, 2.0]})
    out = PEOPLE.enforce(table)
    assert out.dtypes.to_dict() == {"age": np.int64, "income": np.float64, "city": np.dtype(object)}
    assert out["age"].tolist() == [30, 41]


def test_iso_strings_parse_into_datetime_columns_only_from_python_values() -> None:
    schema = Schema(columns=(ColumnSpec("at", "datetime"),))
    out = schema.enforce({"at": ["2024-05-01T10:00:00", "2024-05-02"]})
    assert out["at"].tolist() == [pd.Timestamp("2024-05-01 10:00"), pd.Timestamp("2024-05-02")]
    assert refusal(schema, {"at": ["next tuesday"]}).details["field"] == "at"
    assert refusal(schema, pd.DataFrame({"at": ["2024-05-01"]})).details["field"] == "at"
    dates = schema.enforce({"at": [dt.date(2024, 5, 1)]})
    assert dates["at"].dtype.kind == "M"


@pytest.mark.parametrize("data", [{1, 2}, "age=3", 42, np.arange(3)])
def test_inputs_a_columns_schema_cannot_take_are_refused(data: Any) -> None:
    error = refusal(PEOPLE, data)
    assert error.details["field"] == "input"


def test_columns_of_different_lengths_are_refused() -> None:
    error = refusal(PEOPLE, {"age": [1, 2], "income": [1.0], "city": ["Oslo"]})
    assert error.details["lengths"] == {"age": 2, "income": 1, "city": 1}


# Enforcing a tensor schema


def test_a_tensor_is_returned_in_the_schema_dtype() -> None:
    batch = np.zeros((4, 2, 3), dtype=np.float32)
    out = IMAGES.enforce(batch)
    assert out.dtype == np.float32 and out.shape == (4, 2, 3)
    ints = IMAGES.enforce(np.ones((1, 2, 3), dtype=np.int64))
    assert ints.dtype == np.float32
    assert IMAGES.enforce(np.zeros((0, 2, 3), dtype=np.float32)).shape == (0, 2, 3)
    assert IMAGES.enforce([]).shape == (0, 2, 3)


def test_a_tensor_from_nested_lists_or_a_frame(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    out = IMAGES.enforce([[[0.5, 1, 2], [3, 4, 5]]])
    assert out.dtype == np.float32 and out.shape == (1, 2, 3)
    features, _ = cancer
    assert infer_schema(features.to_numpy()).enforce(features).shape == (569, 30)


def test_a_tensor_axis_of_the_wrong_size_is_refused_naming_the_axis() -> None:
    error = refusal(IMAGES, np.zeros((4, 2, 4), dtype=np.float32))
    assert "axis 2" in error.message
    assert error.details == {"field": "input", "axis": 2, "expected": 3, "found": 4}


def test_a_tensor_with_the_wrong_number_of_dimensions_is_refused() -> None:
    error = refusal(IMAGES, np.zeros((2, 3), dtype=np.float32))
    assert "[-1, 2, 3]" in error.message and "wrap a single example" in error.message
    assert error.details == {"field": "input", "expected": [-1, 2, 3], "found": [2, 3]}


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        (TensorSpec("float32", (-1,)), np.zeros(2, dtype=np.float64)),
        (TensorSpec("int64", (-1,)), np.zeros(2, dtype=np.float32)),
        (TensorSpec("int64", (-1,)), [0.5, 1.5]),
        (TensorSpec("uint8", (-1,)), [1, 300]),
        (TensorSpec("float64", (-1,)), np.array(["1.0"])),
    ],
)
def test_a_tensor_that_does_not_cast_safely_is_refused(spec: TensorSpec, data: Any) -> None:
    error = refusal(Schema(tensor=spec), data)
    assert spec.dtype in error.message
    assert error.details["field"] == "input"


def test_ragged_lists_and_other_inputs_are_refused_for_a_tensor() -> None:
    assert refusal(IMAGES, [[1.0], [1.0, 2.0]]).details["field"] == "input"
    assert refusal(IMAGES, {"a": [1]}).details == {"field": "input", "found": "dict"}
    assert refusal(IMAGES, np.array([[[1, "a", None]] * 2], dtype=object)).details["found"] == "object"
