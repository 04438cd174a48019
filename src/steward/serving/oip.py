"""The Open Inference Protocol v2 (KServe, Triton) over REST: tensors in JSON, and Triton's binary
tensor extension, so that stock clients (``tritonclient.http``) work unchanged.

An inference request is ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}],
"outputs"?: [{"name", "parameters"?}]}``; ``data`` is flat or nested, in row-major order. With the binary
extension the JSON header is followed by raw tensor bytes: the header's length is in the
``Inference-Header-Content-Length`` HTTP header, and each binary input says its size in
``parameters.binary_data_size``; outputs are sent back binary when the request asks for it
(``parameters.binary_data_output``, or ``binary_data`` on a requested output).

How inputs map to a signature:

- a tensor signature takes one input (any name) of its shape; its datatype must convert safely;
- a columns signature takes one 1-D input (or ``[n, 1]``) per column, named after the column; an
  all-numeric one also takes a single ``[n, <columns>]`` input with the columns in signature order.

The model's answer is one output, named after the signature's single output column (else ``output``).
Datatypes are checked against the signature with its own rules (``FP64`` data for a ``float32`` column
is refused, ``INT64`` data for a ``float64`` column is not), with a 422 naming the input.

For an endpoint behind a feature service, the request carries one 1-D tensor per entity key (and may
add tensors for some of the model's inputs); :func:`columns_of` reads them as columns, which
:mod:`steward.serving.features` completes from the online store and checks as the JSON route does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from steward.errors import InvalidInput
from steward.serving.refusals import Unprocessable
from steward.serving.runtime import OutputSpec, ServedVersion

DATATYPES: Final[Mapping[str, Any]] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}  # fmt: skip
"""OIP datatype → NumPy dtype."""

_COLUMN_DATATYPES: Final[Mapping[str, str]] = {
    "bool": "BOOL", "int32": "INT32", "int64": "INT64", "float32": "FP32", "float64": "FP64",
    "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
}  # fmt: skip
HEADER_LENGTH: Final = "inference-header-content-length"
_NUMPY: Final = orjson.OPT_SERIALIZE_NUMPY
_VALUE_TYPES: Final[Mapping[str, frozenset[type]]] = {
    "b": frozenset({bool}),
    "i": frozenset({int}),
    "u": frozenset({int}),
    "f": frozenset({int, float}),
}


def datatype_of(dtype: np.dtype[Any] | str) -> str:
    """The OIP datatype of a NumPy dtype (strings and objects are ``BYTES``)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "iuf":
        prefix = {"i": "INT", "u": "UINT", "f": "FP"}[dtype.kind]
        return f"{prefix}{dtype.itemsize * 8}"
    return "BYTES"


@dataclass
class InferRequest:
    """A parsed inference request.

    Attributes:
        id: The request's ``id``, echoed in the answer.
        parameters: Its ``parameters``.
        inputs: Input name → array (shaped as sent).
        datatypes: Input name → its declared datatype.
        outputs: The outputs asked for (empty: all) and whether each is wanted binary.
        binary_output: Whether outputs not listed are wanted binary.
    """

    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    datatypes: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, bool] = field(default_factory=dict)
    binary_output: bool = False


def _refuse(message: str, field_: str) -> InvalidInput:
    return InvalidInput(message, {"field": field_})


def parse_infer(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse an inference request body (JSON, or a JSON header followed by binary tensors).

    Args:
        body: The request body.
        header_length: The ``Inference-Header-Content-Length`` header's value, if sent.

    Raises:
        InvalidInput: For malformed JSON or structure, naming the field (``inputs[0].shape`` …).
    """
    if header_length is not None and not 0 < header_length <= len(body):
        raise _refuse(
            f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes",
            HEADER_LENGTH,
        )
    head = body if header_length is None else body[:header_length]
    try:
        data = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise _refuse(f"the request body is not valid JSON: {exc}", "body") from None
    if not isinstance(data, dict):
        raise _refuse('the body must be a JSON object with "inputs"', "body")
    request = InferRequest()
    if "id" in data:
        if not isinstance(data["id"], str):
            raise _refuse("id must be a string", "id")
        request.id = data["id"]
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _refuse("parameters must be an object", "parameters")
    request.parameters = parameters
    request.binary_output = parameters.get("binary_data_output") is True
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _refuse("inputs must be a non-empty list of tensors", "inputs")
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    offset = 0
    for index, tensor in enumerate(inputs):
        where = f"inputs[{index}]"
        name, array, used = _tensor(tensor, where, binary, offset)
        offset += used
        if name in request.inputs:
            raise _refuse(f"input {name!r} is given twice", f"{where}.name")
        request.inputs[name] = array
        request.datatypes[name] = tensor["datatype"]
    if offset != len(binary):
        raise _refuse(f"{len(binary) - offset} bytes of binary data follow the inputs unused", "body")
    outputs = data.get("outputs", [])
    if not isinstance(outputs, list):
        raise _refuse("outputs must be a list", "outputs")
    for index, wanted in enumerate(outputs):
        if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
            raise _refuse("each requested output is an object with a name", f"outputs[{index}]")
        output_parameters = wanted.get("parameters") or {}
        if not isinstance(output_parameters, dict):
            raise _refuse("parameters must be an object", f"outputs[{index}].parameters")
        if "classification" in output_parameters:
            raise _refuse("the classification extension is not supported", f"outputs[{index}].parameters")
        request.outputs[wanted["name"]] = output_parameters.get("binary_data", request.binary_output) is True
    return request


def _tensor(
    tensor: Any, where: str, binary: memoryview, offset: int
) -> tuple[str, np.ndarray[Any, Any], int]:
    if not isinstance(tensor, dict):
        raise _refuse("each input is an object with name, shape, datatype and data", where)
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise _refuse("an input needs a name", f"{where}.name")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise _refuse(f"the shape of input {name!r} must be a list of sizes >= 0", f"{where}.shape")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise _refuse(
            f"input {name!r} has datatype {datatype!r}; use one of {', '.join(DATATYPES)}",
            f"{where}.datatype",
        )
    dtype = np.dtype(DATATYPES[datatype])
    count = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _refuse(f"the parameters of input {name!r} must be an object", f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _refuse(f"binary_data_size of input {name!r} does not fit the body", f"{where}.parameters")
        chunk = binary[offset : offset + size]
        if datatype == "BYTES":
            array = _bytes_tensor(chunk, count, name, where)
        else:
            array = _raw(chunk, dtype, count, name, where)
        return name, array.reshape(shape), size
    if "data" not in tensor:
        raise _refuse(f"input {name!r} has no data", f"{where}.data")
    values = _flatten(tensor["data"])
    if values is None:
        raise _refuse(f"the data of input {name!r} must be a list (flat or nested)", f"{where}.data")
    if len(values) != count:
        raise Unprocessable(
            f"input {name!r} has {len(values)} values but its shape {shape} needs {count}",
            {"field": f"{where}.data", "expected": count, "found": len(values)},
        )
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise Unprocessable(
                f"the data of BYTES input {name!r} must be strings", {"field": f"{where}.data"}
            )
        array = np.empty(count, dtype=object)
        array[:] = values
        return name, array.reshape(shape), 0
    allowed = _VALUE_TYPES[dtype.kind]
    if not set(map(type, values)) <= allowed:
        kinds = {"b": "true or false", "i": "integers", "u": "integers", "f": "numbers"}[dtype.kind]
        raise Unprocessable(
            f"the data of {datatype} input {name!r} must be {kinds}",
            {"field": f"{where}.data", "datatype": datatype},
        )
    try:
        array = np.array(values, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise Unprocessable(
            f"the data of input {name!r} does not fit {datatype}: {exc}", {"field": f"{where}.data"}
        ) from None
    return name, array.reshape(shape), 0


def _flatten(data: Any) -> list[Any] | None:
    if not isinstance(data, list):
        return None
    if not data or not isinstance(data[0], list):
        return data if list not in set(map(type, data)) else None
    flat: list[Any] = []
    for item in data:
        inner = _flatten(item)
        if inner is None:
            return None
        flat.extend(inner)
    return flat


def _raw(chunk: memoryview, dtype: np.dtype[Any], count: int, name: str, where: str) -> np.ndarray[Any, Any]:
    if len(chunk) != count * dtype.itemsize:
        raise Unprocessable(
            f"input {name!r} has {len(chunk)} bytes of data, its shape needs {count * dtype.itemsize}",
            {"field": f"{where}.parameters"},
        )
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype)


def _bytes_tensor(chunk: memoryview, count: int, name: str, where: str) -> np.ndarray[Any, Any]:
    values: list[str | bytes] = []
    position = 0
    raw = bytes(chunk)
    while position < len(raw):
        if position + 4 > len(raw):
            raise _refuse(f"the binary BYTES data of input {name!r} is cut short", f"{where}.parameters")
        length = int.from_bytes(raw[position : position + 4], "little")
        start = position + 4
        if start + length > len(raw):
            raise _refuse(f"the binary BYTES data of input {name!r} is cut short", f"{where}.parameters")
        value = raw[start : start + length]
        try:
            values.append(value.decode("utf-8"))
        except UnicodeDecodeError:  # not text: a binary column's value
            values.append(value)
        position = start + length
    if len(values) != count:
        raise Unprocessable(
            f"input {name!r} has {len(values)} elements but its shape needs {count}",
            {"field": f"{where}.parameters"},
        )
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


# -- inputs to the model --------------------------------------------------------------------------------


def decode(request: InferRequest, served: ServedVersion) -> tuple[Any, int]:
    """Turn the request's tensors into ``served``'s model-ready input and its number of rows.

    Raises:
        Unprocessable: If the tensors do not fit the signature (a wrong datatype, shape or name).
    """
    schema = served.schema
    inputs = request.inputs
    if schema is None:
        if len(inputs) == 1:
            item: Any = next(iter(inputs.values()))
        else:
            import pandas as pd

            item = pd.DataFrame({name: array.reshape(-1) for name, array in inputs.items()})
        return item, len(item)
    if schema.tensor is not None:
        if len(inputs) != 1:
            raise Unprocessable(f"this model takes one tensor input, not {len(inputs)}", {"field": "inputs"})
        name, array = next(iter(inputs.items()))
        item = _enforced(served, array, name)
        return item, len(item)
    names = [column.name for column in schema.columns]
    codec = served.codec
    if len(inputs) == 1:
        name, array = next(iter(inputs.items()))
        if name not in names and array.ndim == 2 and array.shape[1] == len(names):
            fast = codec.from_matrix(array) if codec is not None else None
            item = fast if fast is not None else _enforced(served, array, name)
            return item, len(item)
    types = {column.name: column.type for column in schema.columns}
    columns = {}
    for name, array in inputs.items():
        if name not in names:
            raise Unprocessable(
                f"this model has no input {name!r}; its inputs are "
                f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}",
                {"field": name},
            )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        column_type = types[name]
        if not _fits(array.dtype, column_type):
            raise Unprocessable(
                f"input {name!r} is {request.datatypes[name]}, but column {name!r} is {column_type}: send "
                f"{_COLUMN_DATATYPES[column_type]} (or a datatype that converts to it safely)",
                {"field": name, "expected": _COLUMN_DATATYPES[column_type], "found": request.datatypes[name]},
            )
        if array.ndim != 1:
            raise Unprocessable(
                f"input {name!r} must have shape [n] or [n, 1], not {list(array.shape)}", {"field": name}
            )
        columns[name] = array
    fast = codec.from_arrays(columns) if codec is not None else None
    item = fast if fast is not None else _enforced(served, columns, None)
    return item, len(item)


def columns_of(request: InferRequest) -> dict[str, list[Any]]:
    """The request's tensors as ``{name: [value per row]}``: each one 1-D (or ``[n, 1]``), all of one
    length.

    Raises:
        Unprocessable: For a tensor of another shape, or tensors of different lengths (422).
    """
    columns: dict[str, list[Any]] = {}
    for name, array in request.inputs.items():
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise Unprocessable(
                f"input {name!r} must have shape [n] or [n, 1] (one value per row), not {list(array.shape)}",
                {"field": name},
            )
        columns[name] = array.tolist()
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise Unprocessable(
            "the inputs must all have one value per row, and the same number of rows", {"field": "inputs"}
        )
    if not next(iter(columns.values())):
        raise Unprocessable("the inputs hold no rows", {"field": "inputs"})
    return columns


def _fits(dtype: np.dtype[Any], column_type: str) -> bool:
    """Whether data of ``dtype`` may fill a column of ``column_type`` (safe casts, integers into floats)."""
    if column_type in ("string", "binary", "datetime"):
        return dtype.kind == "O"
    if dtype.kind not in "biuf":
        return False
    expected = np.dtype(column_type)
    return bool(np.can_cast(dtype, expected, "safe")) or (dtype.kind in "iu" and expected.kind == "f")


def _enforced(served: ServedVersion, data: Any, name: str | None) -> Any:
    try:
        return served.enforce(data)
    except Unprocessable as exc:
        if name is None:
            raise
        field_ = exc.details.get("field")
        details = {**exc.details, "field": name if field_ in (None, "input") else field_}
        raise Unprocessable(f"input {name!r}: {exc.message}", details) from None


# -- answers ---------------------------------------------------------------------------------------------


def encode_infer(
    request: InferRequest, answers: Any, output: OutputSpec, endpoint: str, version: str, request_id: str
) -> tuple[bytes, int | None]:
    """Build the inference answer; returns the body and, for a binary answer, the JSON header's length.

    Args:
        request: The request (for the outputs it asked for and its ``id``).
        answers: The model's answers for its rows (an ndarray).
        output: What the version answers (its output's name).
        endpoint: The endpoint (the OIP model name).
        version: The version that answered.
        request_id: The request's id (used when the request has no ``id``).

    Raises:
        InvalidInput: If the request asked for an output the model does not have.
    """
    answers = np.ascontiguousarray(answers)
    if request.outputs and output.name not in request.outputs:
        wanted = next(iter(request.outputs))
        raise _refuse(f"this model has no output {wanted!r}; it answers {output.name!r}", "outputs")
    binary = request.outputs.get(output.name, request.binary_output)
    datatype = datatype_of(answers.dtype)
    tensor: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": list(answers.shape)}
    raw = b""
    if binary:
        if datatype == "BYTES":
            raw = _bytes_of(answers)
        else:
            raw = answers.astype(answers.dtype.newbyteorder("<")).tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
    elif datatype == "BYTES":
        tensor["data"] = [str(value) for value in answers.reshape(-1).tolist()]
    else:
        tensor["data"] = answers.reshape(-1)
    body = {
        "model_name": endpoint,
        "model_version": version,
        "id": request.id if request.id is not None else request_id,
        "outputs": [tensor],
    }
    head = orjson.dumps(body, option=_NUMPY)
    return (head + raw, len(head)) if binary else (head, None)


def _bytes_of(answers: np.ndarray[Any, Any]) -> bytes:
    parts = []
    for value in answers.reshape(-1).tolist():
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(data).to_bytes(4, "little") + data)
    return b"".join(parts)


def inputs_metadata(served: ServedVersion) -> list[dict[str, Any]]:
    """The ``inputs`` of a version's model metadata, from its signature."""
    schema = served.schema
    if schema is None:
        return []
    if schema.tensor is not None:
        tensor = schema.tensor
        return [{"name": "input", "datatype": datatype_of(tensor.dtype), "shape": list(tensor.shape)}]
    return [{"name": c.name, "datatype": _COLUMN_DATATYPES[c.type], "shape": [-1]} for c in schema.columns]


def outputs_metadata(served: ServedVersion) -> list[dict[str, Any]]:
    """The ``outputs`` of a version's model metadata (the dtype and shape the warm-up saw)."""
    output = served.output
    return [{"name": output.name, "datatype": datatype_of(output.dtype), "shape": list(output.shape)}]


def platform_of(served: ServedVersion) -> str:
    """The metadata's ``platform``: ``onnxruntime_onnx`` for ONNX, ``steward_<flavor>`` otherwise."""
    return "onnxruntime_onnx" if served.flavor == "onnx" else f"steward_{served.flavor}"
