"""The ``onnx`` flavor: ONNX graphs, run with onnxruntime on the CPU.

ONNX is data, not code: a protobuf graph of standard operators, checked with ``onnx.checker`` before it
is stored. Needs the ``onnx`` extra (``pip install 'steward-ml[onnx]'``).

Files: ``model.onnx``. Options: ``output`` (the output ``predict`` returns; the first by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime
import pandas as pd

from steward.errors import InvalidInput
from steward.registry.flavors import check_options
from steward.registry.flavors.base import BundleReader, SavedFlavor, unsupported
from steward.registry.safety import check_not_pickle

MODEL_FILE: Final = "model.onnx"
PACKAGES: Final = ("onnx", "onnxruntime")

_DTYPES: Final[Mapping[str, Any]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64,
    "tensor(uint32)": np.uint32,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxFlavor:
    """Save ONNX models (a ``ModelProto``, its bytes, or a ``.onnx`` path) and run them with onnxruntime."""

    name = "onnx"
    code_bearing = False

    def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
        """Validate ``model`` with ``onnx.checker`` and write it to ``directory/model.onnx``.

        Args:
            model: An ``onnx.ModelProto``, the bytes of one, or the path of a ``.onnx`` file (external
                tensor data next to it is folded in).
            directory: The empty directory to write into.
            **options: ``output``: the name of the graph output ``predict`` returns.

        Returns:
            The options (``output`` when given) and the packages to pin.

        Raises:
            InvalidInput: If ``model`` is not an ONNX model, fails the checker, or has no such output.
            UnsafeArtifact: If ``model`` is (a path to) a pickle or joblib file.
        """
        check_options(self.name, options, ["output"])
        proto = _as_proto(self.name, model)
        try:
            onnx.checker.check_model(proto, full_check=False)
        except (onnx.checker.ValidationError, ValueError) as exc:
            raise InvalidInput(f"the ONNX model is not valid: {exc}", {"field": "model"}) from exc
        recorded: dict[str, Any] = {}
        if "output" in options:
            outputs = [output.name for output in proto.graph.output]
            if options["output"] not in outputs:
                raise InvalidInput(
                    f"the ONNX model has no output {options['output']!r}; "
                    f"its outputs are {', '.join(outputs)}",
                    {"field": "output", "choices": outputs},
                )
            recorded["output"] = str(options["output"])
        data = (
            bytes(model) if isinstance(model, bytes | bytearray | memoryview) else proto.SerializeToString()
        )
        (directory / MODEL_FILE).write_bytes(data)
        return SavedFlavor(options=recorded, packages=PACKAGES)

    def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
        """Open an onnxruntime ``InferenceSession`` on ``model.onnx`` with the CPU provider.

        Args:
            bundle: The version's files.
            options: The options ``save`` recorded.
            trust: Not needed: ONNX graphs run no Python code.

        Returns:
            The ``onnxruntime.InferenceSession``.
        """
        return onnxruntime.InferenceSession(bundle.read_bytes(MODEL_FILE), providers=["CPUExecutionProvider"])

    def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
        """Run the session on ``data`` and return one output (``options["output"]`` or the first).

        Args:
            model: The ``InferenceSession``.
            data: An array or DataFrame for the first input (cast to its element type); a DataFrame
                whose columns name the inputs of a multi-input graph; or a mapping of input name → array.
            options: The options ``save`` recorded.

        Returns:
            The output as a numpy array.
        """
        session: Any = model
        output = options.get("output") or session.get_outputs()[0].name
        return session.run([output], input_feeds(session, data))[0]


def input_feeds(session: Any, data: Any) -> dict[str, Any]:
    """Turn ``data`` into onnxruntime's ``{input name: array}``, each cast to its input's element type.

    Args:
        session: An ``onnxruntime.InferenceSession``.
        data: A mapping of input name → array-like; a DataFrame with a column per input (when the graph
            has several inputs; each column becomes an ``(n, 1)`` array); or one array-like or DataFrame
            for the first input.

    Returns:
        The feeds for ``session.run``.

    Raises:
        InvalidInput: If an input is missing or a value cannot be cast to its input's type.
    """
    inputs = session.get_inputs()
    if isinstance(data, Mapping):
        columns: Mapping[str, Any] = data
    elif isinstance(data, pd.DataFrame) and len(inputs) > 1:
        columns = {name: data[name].to_numpy().reshape(-1, 1) for name in data.columns}
    else:
        value = data.to_numpy() if isinstance(data, pd.DataFrame) else data
        return {inputs[0].name: _cast(inputs[0], value)}
    missing = [node.name for node in inputs if node.name not in columns]
    if missing:
        raise InvalidInput(f"the ONNX model needs the inputs {', '.join(missing)}", {"field": "data"})
    return {node.name: _cast(node, columns[node.name]) for node in inputs}


def _cast(node: Any, value: Any) -> Any:
    dtype = _DTYPES.get(node.type)
    try:
        array = np.asarray(value)
        if dtype is np.object_:
            return array.astype(str).astype(object)
        return array if dtype is None or array.dtype == dtype else array.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input {node.name!r} must be {node.type}: {exc}", {"field": node.name}) from exc


def _as_proto(flavor: str, model: object) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes | bytearray | memoryview):
        check_not_pickle(model, source="model")
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as exc:  # protobuf's DecodeError; protobuf ships no type stubs to name it by
            raise InvalidInput(f"these bytes are not an ONNX model: {exc}", {"field": "model"}) from exc
    if isinstance(model, str | os.PathLike):
        check_not_pickle(model, source="model")
        path = Path(model)
        if not path.is_file():
            raise InvalidInput(f"model file {str(path)!r} does not exist", {"field": "model"})
        try:
            return onnx.load(path)
        except Exception as exc:  # protobuf's DecodeError, OSError for unreadable external data…
            raise InvalidInput(f"{str(path)!r} is not an ONNX model: {exc}", {"field": "model"}) from exc
    raise unsupported(flavor, model, "pass an onnx.ModelProto, its bytes or the path of a .onnx file")
