"""Model flavors by name: ``sklearn`` (skops), ``onnx``, ``torch`` and ``pyfunc``.

Each flavor lives in its own module, imported the first time ``get_flavor`` asks for it, so onnx,
onnxruntime and torch are imported only by a process that uses them. ``detect_flavor`` picks the
flavor for an object without importing any of them: an object can only be a ``torch.nn.Module`` if
torch is already imported.

>>> get_flavor("sklearn").name
'sklearn'
"""

from __future__ import annotations

import importlib
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from steward.errors import InvalidInput
from steward.registry.flavors.base import Flavor, type_name
from steward.registry.safety import check_not_pickle

_FLAVORS: Final[dict[str, tuple[str, str, str | None]]] = {
    # name: (module, class, the extra that installs its dependencies)
    "onnx": ("steward.registry.flavors.onnx", "OnnxFlavor", "onnx"),
    "pyfunc": ("steward.registry.flavors.pyfunc", "PyfuncFlavor", None),
    "sklearn": ("steward.registry.flavors.sklearn", "SklearnFlavor", None),
    "torch": ("steward.registry.flavors.torch", "TorchFlavor", "torch"),
}

FLAVOR_NAMES: Final = tuple(_FLAVORS)
"""The names ``get_flavor`` knows, sorted."""

_ONNX_FIRST_BYTE: Final = 0x08  # ModelProto's first field, ir_version (field 1, varint), is written first


def get_flavor(name: str) -> Flavor:
    """Return the flavor called ``name``, importing its module on first use.

    Args:
        name: ``"sklearn"``, ``"onnx"``, ``"torch"`` or ``"pyfunc"``.

    Returns:
        The flavor (a new, stateless instance).

    Raises:
        InvalidInput: If no flavor has that name, or its optional dependencies are not installed (the
            message names the extra to install).
    """
    if name not in _FLAVORS:
        raise InvalidInput(
            f"unknown flavor {name!r}; the flavors are {', '.join(FLAVOR_NAMES)}",
            {"field": "flavor", "choices": list(FLAVOR_NAMES)},
        )
    module_name, class_name, extra = _FLAVORS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or (exc.name or "").partition(".")[0] == "steward":
            raise
        raise missing_extra(extra, exc) from exc
    flavor: Flavor = getattr(module, class_name)()
    return flavor


def missing_extra(extra: str, exc: ImportError) -> InvalidInput:
    """The error for an optional dependency that is not installed; it names the extra to install.

    Args:
        extra: The extra of ``steward-ml`` that installs the dependency (``"onnx"``, ``"torch"``).
        exc: The failed import.

    Returns:
        The error to raise.
    """
    return InvalidInput(
        f"this needs the optional dependency {exc.name or extra!r}: pip install 'steward-ml[{extra}]'",
        {"extra": extra, "module": exc.name},
    )


def detect_flavor(model: object) -> str:
    """Return the name of the flavor that saves ``model``.

    Objects: a ``PythonModel`` → ``pyfunc``; a scikit-learn estimator → ``sklearn``; an
    ``onnx.ModelProto`` → ``onnx``; a ``torch.nn.Module`` (scripted or not) or a dict of tensors →
    ``torch``. Files and bytes: ``.onnx`` or bytes that start like an ONNX model → ``onnx``;
    ``.skops`` or a zip holding a skops schema → ``sklearn``.

    Args:
        model: The object, or a path to (or the bytes of) a saved model.

    Returns:
        A name that ``get_flavor`` accepts.

    Raises:
        InvalidInput: If no flavor recognises ``model``; the message names its type and the flavors.
        UnsafeArtifact: If ``model`` is (a path to) a pickle or joblib file.
    """
    if isinstance(model, str | os.PathLike | bytes | bytearray | memoryview):
        check_not_pickle(model, source="model")
        return _detect_serialized(model)
    found = _detect_object(model)
    if found is None:
        raise InvalidInput(
            f"cannot tell which flavor saves an object of type {type_name(model)}; pass flavor= one of "
            f"{', '.join(FLAVOR_NAMES)} (pyfunc wraps anything in a PythonModel subclass)",
            {"field": "model", "type": type_name(model), "choices": list(FLAVOR_NAMES)},
        )
    return found


def _detect_object(model: object) -> str | None:
    from steward.registry.flavors.pyfunc import PythonModel  # standard library only: cheap

    if isinstance(model, PythonModel) or (isinstance(model, type) and issubclass(model, PythonModel)):
        return "pyfunc"
    # Each library is looked up in sys.modules rather than imported: if it is not imported yet, no
    # object of its types can exist.
    sklearn_base = sys.modules.get("sklearn.base")
    if sklearn_base is not None and isinstance(model, sklearn_base.BaseEstimator):
        return "sklearn"
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(model, onnx.ModelProto):
        return "onnx"
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(model, torch.nn.Module):
            return "torch"
        if isinstance(model, dict) and model and all(isinstance(v, torch.Tensor) for v in model.values()):
            return "torch"
    return None


def _detect_serialized(model: str | os.PathLike[str] | bytes | bytearray | memoryview) -> str:
    if isinstance(model, bytes | bytearray | memoryview):
        if bytes(model[:1]) == bytes([_ONNX_FIRST_BYTE]):
            return "onnx"
        raise InvalidInput(
            "cannot tell which flavor saves these bytes: only ONNX models are accepted as bytes; pass "
            "the model object, or flavor= one of " + ", ".join(FLAVOR_NAMES),
            {"field": "model", "choices": list(FLAVOR_NAMES)},
        )
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".skops"):
        return "onnx" if suffix == ".onnx" else "sklearn"
    if not path.is_file():
        raise InvalidInput(f"model file {str(path)!r} does not exist", {"field": "model"})
    with path.open("rb") as file:
        first = file.read(1)
    if first == bytes([_ONNX_FIRST_BYTE]):
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "schema.json" in archive.namelist():
                return "sklearn"
    raise InvalidInput(
        f"cannot tell the format of {str(path)!r}: files are accepted as ONNX (.onnx) or skops (.skops); "
        "load other formats yourself and pass the model object, or pass flavor= one of "
        + ", ".join(FLAVOR_NAMES),
        {"field": "model", "choices": list(FLAVOR_NAMES)},
    )


def check_options(flavor: str, options: Mapping[str, object], allowed: Iterable[str]) -> None:
    """Refuse options a flavor does not know.

    Args:
        flavor: The flavor's name, for the message.
        options: The options passed to ``save``.
        allowed: The option names the flavor accepts.

    Raises:
        InvalidInput: If ``options`` has a name outside ``allowed``; the message lists the accepted ones.
    """
    known = sorted(allowed)
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "none"
        raise InvalidInput(
            f"flavor {flavor!r} has no option {unknown[0]!r}; its options are: {accepted}",
            {"field": unknown[0], "flavor": flavor, "choices": known},
        )
