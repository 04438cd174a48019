"""The plain JSON route ``POST /predict/{endpoint}``: request bodies in, predictions out.

A body holds exactly one of:

- ``{"records": [{"age": 41, "plan": "pro"}, ...]}`` — one object per row;
- ``{"columns": {"age": [41, 37], "plan": ["pro", "free"]}}`` — one list per column (or one row of
  scalars);
- ``{"instances": [[41, 1.5], ...]}`` — rows of values in signature order, or records, or for a tensor
  model the tensor itself (its first axis the batch).

and optionally ``"parameters": {...}`` (where an A/B test's sticky key may be given). The answer is
``{"predictions": [...], "model": ..., "version": ..., "request_id": ...}``, one prediction per row.

Malformed bodies are refused with 400 naming the key; input the signature refuses with 422 naming the
column (:mod:`steward.serving.refusals`).

For an endpoint behind a feature service, :func:`columns_of` reads the body's rows (records, columns,
or instances given as records) as columns of entity keys and given inputs, which
:mod:`steward.serving.features` completes from the online store before :func:`decode` runs on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import orjson

from steward.errors import InvalidInput
from steward.serving.refusals import Unprocessable
from steward.serving.runtime import ServedVersion

KINDS: Final = ("records", "columns", "instances")
_NUMPY: Final = orjson.OPT_SERIALIZE_NUMPY


def parse(body: bytes) -> dict[str, Any]:
    """Decode a request body and check its shape (not yet its values).

    Raises:
        InvalidInput: If it is not a JSON object with exactly one of records, columns or instances.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}", {"field": "body"}) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            'the body must be a JSON object: {"records": [...]}, {"columns": {...}} or {"instances": [...]}',
            {"field": "body"},
        )
    given = [kind for kind in KINDS if kind in data]
    if len(given) != 1:
        found = ", ".join(given) if given else "none of them"
        raise InvalidInput(
            f"give exactly one of records, columns or instances (found {found})",
            {"field": given[1] if len(given) > 1 else "records"},
        )
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput("parameters must be a JSON object", {"field": "parameters"})
    return data


def sticky_value(data: Mapping[str, Any], sticky_key: str | None) -> str | None:
    """The request's value of an A/B test's sticky key: in ``parameters``, else at the top level.

    Args:
        data: The parsed body.
        sticky_key: The plan's sticky key (None: the plan routes at random).
    """
    if sticky_key is None:
        return None
    parameters = data.get("parameters") or {}
    value = parameters.get(sticky_key, data.get(sticky_key))
    return None if value is None or isinstance(value, dict | list) else str(value)


def decode(data: Mapping[str, Any], served: ServedVersion) -> tuple[Any, int]:
    """Turn a parsed body into the model-ready input of ``served`` and its number of rows.

    Args:
        data: What :func:`parse` returned.
        served: The version that will answer.

    Raises:
        InvalidInput: For a malformed ``records``/``columns``/``instances`` value (400).
        Unprocessable: If the signature refuses the input (422).
    """
    if "records" in data:
        item = _records(data["records"], served)
    elif "columns" in data:
        item = _columns(data["columns"], served)
    else:
        item = _instances(data["instances"], served)
    return item, len(item)


def columns_of(data: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The rows of a parsed body as ``{column: [value per row]}`` (a key a record lacks is None).

    Args:
        data: What :func:`parse` returned.

    Raises:
        InvalidInput: For a malformed ``records``/``columns``/``instances`` value (400).
        Unprocessable: For instances given as rows of values: without names the entity keys cannot be
            told apart (422).
    """
    if "columns" in data:
        columns = data["columns"]
        if not isinstance(columns, dict) or not columns:
            raise InvalidInput(
                "columns must be an object of column name to a list of values", {"field": "columns"}
            )
        lists = [isinstance(values, list) for values in columns.values()]
        if not any(lists):  # one row of scalars
            return {str(name): [value] for name, value in columns.items()}
        if not all(lists) or len({len(values) for values in columns.values()}) != 1:
            raise InvalidInput(
                "the columns must all be lists of one length (or all scalars, for one row)",
                {"field": "columns"},
            )
        if not next(iter(columns.values())):
            raise InvalidInput("the columns hold no rows", {"field": "columns"})
        return {str(name): values for name, values in columns.items()}
    kind = "records" if "records" in data else "instances"
    rows = data[kind]
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"{kind} must be a non-empty list of objects, one per row", {"field": kind})
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            if kind == "instances" and isinstance(row, list):
                raise Unprocessable(
                    "this endpoint completes requests from a feature service: send records or columns "
                    "that name the entity keys, not rows of values",
                    {"field": f"instances[{index}]"},
                )
            raise InvalidInput(f"{kind}[{index}] is not an object", {"field": f"{kind}[{index}]"})
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: [row.get(name) for row in rows] for name in names}


def _records(records: Any, served: ServedVersion) -> Any:
    if not isinstance(records, list) or not records:
        raise InvalidInput("records must be a non-empty list of objects, one per row", {"field": "records"})
    schema = served.schema
    if schema is not None and schema.tensor is not None:
        raise Unprocessable('this model takes a tensor: send {"instances": [...]}', {"field": "records"})
    if served.codec is not None:
        fast = served.codec.from_records(records)
        if fast is not None:
            return fast
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{index}] is not an object", {"field": f"records[{index}]"})
    if schema is None:
        import pandas as pd

        return pd.DataFrame.from_records(records)
    return served.enforce(records)


def _columns(columns: Any, served: ServedVersion) -> Any:
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput(
            "columns must be an object of column name to a list of values", {"field": "columns"}
        )
    schema = served.schema
    if schema is not None and schema.tensor is not None:
        raise Unprocessable('this model takes a tensor: send {"instances": [...]}', {"field": "columns"})
    if served.codec is not None:
        fast = served.codec.from_mapping(columns)
        if fast is not None:
            return fast
    if schema is None:
        import pandas as pd

        try:
            return pd.DataFrame(columns)
        except ValueError as exc:
            raise InvalidInput(f"the columns do not form a table: {exc}", {"field": "columns"}) from None
    return served.enforce(columns)


def _instances(instances: Any, served: ServedVersion) -> Any:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("instances must be a non-empty list, one entry per row", {"field": "instances"})
    schema = served.schema
    if schema is None:
        try:
            return np.asarray(instances)
        except ValueError as exc:
            raise InvalidInput(f"the instances do not form an array: {exc}", {"field": "instances"}) from None
    if schema.tensor is not None:
        return served.enforce(instances)
    if all(isinstance(row, dict) for row in instances):
        return _records(instances, served)
    if served.codec is not None:
        fast = served.codec.from_rows(instances)
        if fast is not None:
            return fast
    names = [column.name for column in schema.columns]
    for index, row in enumerate(instances):
        if not isinstance(row, list) or len(row) != len(names):
            raise Unprocessable(
                f"instances[{index}] must be a list of {len(names)} values in signature order "
                f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}) or an object",
                {"field": f"instances[{index}]", "expected": len(names)},
            )
    return served.enforce([dict(zip(names, row, strict=True)) for row in instances])


def encode(predictions: Any, model: str, version: str, request_id: str) -> bytes:
    """The answer's JSON bytes.

    Args:
        predictions: The rows' answers (an ndarray, first axis the rows).
        model: The registered model.
        version: The version that answered.
        request_id: The request's id.
    """
    answer = {"predictions": predictions, "model": model, "version": version, "request_id": request_id}
    if isinstance(predictions, np.ndarray) and predictions.dtype.kind in "biuf":
        answer["predictions"] = np.ascontiguousarray(predictions)
        return orjson.dumps(answer, option=_NUMPY)
    answer["predictions"] = predictions.tolist() if isinstance(predictions, np.ndarray) else predictions
    return orjson.dumps(answer, default=str)
