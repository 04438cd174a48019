"""The ``torch`` flavor: TorchScript programs, and state dicts (weights without code).

A ``torch.jit.ScriptModule`` (from ``torch.jit.script`` or ``torch.jit.trace``) carries its own
TorchScript program, so it loads without the Python class and can predict. A plain ``nn.Module`` is
Python code, which Steward does not pickle: only its ``state_dict()`` is stored, loaded back with
``torch.load(..., weights_only=True)`` (tensors and containers only), and the caller rebuilds the
module and calls ``module.load_state_dict(state)``. Such a version cannot predict on its own; script
the model to get one that can. Needs the ``torch`` extra (``pip install 'steward-ml[torch]'``).

Files: ``model.pt`` (TorchScript) or ``state_dict.pt``. Options: ``format`` (``"torchscript"`` or
``"state_dict"``, recorded), ``module_class`` (recorded for a module's state dict), ``input_dtype``
(the torch dtype ``predict`` converts inputs to; the model's floating dtype by default).
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import torch

from steward.errors import InvalidInput, UnsafeArtifact
from steward.registry.flavors import check_options
from steward.registry.flavors.base import BundleReader, SavedFlavor, unsupported
from steward.registry.safety import check_not_pickle

SCRIPT_FILE: Final = "model.pt"
STATE_FILE: Final = "state_dict.pt"
PACKAGES: Final = ("torch",)


class TorchFlavor:
    """Save TorchScript modules, or the state dict of a plain module or a dict of tensors."""

    name = "torch"
    code_bearing = False

    def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
        """Write ``model`` into ``directory``.

        Args:
            model: A ``torch.jit.ScriptModule`` (saved whole), an ``nn.Module`` (its ``state_dict()``
                is saved) or a dict of name → tensor (saved as is).
            directory: The empty directory to write into.
            **options: ``input_dtype``: a torch dtype name (``"float32"``, ``"int64"``) that
                ``predict`` converts inputs to.

        Returns:
            The options (``format``, and ``module_class`` for a module's state dict), the packages to
            pin, and the top-level module of the module's class.

        Raises:
            InvalidInput: For another kind of object, a state dict holding more than tensors, or an
                unknown ``input_dtype``.
            UnsafeArtifact: If ``model`` is (a path to) a pickle or joblib file.
        """
        check_options(self.name, options, ["input_dtype"])
        recorded: dict[str, Any] = {}
        if "input_dtype" in options:
            recorded["input_dtype"] = str(_dtype(str(options["input_dtype"]))).removeprefix("torch.")
        if isinstance(model, torch.jit.ScriptModule):
            with _jit_deprecation_ignored():
                torch.jit.save(model, str(directory / SCRIPT_FILE))
            return SavedFlavor(options={"format": "torchscript", **recorded}, packages=PACKAGES)
        if isinstance(model, str | os.PathLike | bytes | bytearray | memoryview):
            check_not_pickle(model, source="model")
            raise unsupported(
                self.name, model, "load it with torch.jit.load or torch.load and pass the object"
            )
        modules: tuple[str, ...] = ()
        if isinstance(model, torch.nn.Module):
            cls = type(model)
            recorded["module_class"] = f"{cls.__module__}:{cls.__qualname__}"
            modules = (cls.__module__.partition(".")[0],)
            state: Mapping[Any, Any] = model.state_dict()
        elif isinstance(model, Mapping) and model and all(isinstance(key, str) for key in model):
            state = model
        else:
            raise unsupported(
                self.name, model, "pass a torch.jit.ScriptModule, an nn.Module or a dict of name -> tensor"
            )
        others = sorted(
            f"{key} ({type(value).__name__})" for key, value in state.items() if not torch.is_tensor(value)
        )
        if others:
            raise unsupported(
                self.name, model, f"its state dict holds more than tensors: {', '.join(others[:5])}"
            )
        # An nn.Module's state dict is an OrderedDict carrying version metadata that load_state_dict reads.
        torch.save(state if isinstance(state, OrderedDict) else OrderedDict(state), directory / STATE_FILE)
        return SavedFlavor(options={"format": "state_dict", **recorded}, packages=PACKAGES, modules=modules)

    def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
        """Load the TorchScript module (in eval mode, on the CPU), or the state dict.

        A state dict comes back as an ``OrderedDict`` of CPU tensors: rebuild the module
        (``options["module_class"]`` names its class) and call ``module.load_state_dict(state)``.

        Args:
            bundle: The version's files.
            options: The options ``save`` recorded.
            trust: Not needed: TorchScript runs no Python code and state dicts hold tensors only.

        Returns:
            A ``torch.jit.ScriptModule`` or an ``OrderedDict[str, torch.Tensor]``.

        Raises:
            UnsafeArtifact: If the state dict holds objects other than tensors and containers.
            InvalidInput: For an unknown ``format``.
        """
        fmt = options.get("format")
        if fmt == "torchscript":
            with _jit_deprecation_ignored():
                data = io.BytesIO(bundle.read_bytes(SCRIPT_FILE))
                module = torch.jit.load(data, map_location="cpu")  # type: ignore[no-untyped-call]  # unannotated
            return module.eval()
        if fmt == "state_dict":
            try:
                state = io.BytesIO(bundle.read_bytes(STATE_FILE))
                # weights_only=True unpickles tensors and plain containers only, never code:
                loaded: object = torch.load(state, map_location="cpu", weights_only=True)  # trusted: tensors
            except pickle.UnpicklingError as exc:
                raise UnsafeArtifact(
                    f"the state dict holds objects other than tensors, which Steward does not load: {exc}",
                    {"flavor": self.name},
                ) from exc
            return loaded
        raise InvalidInput(
            f"unknown torch format {fmt!r}", {"field": "format", "choices": ["state_dict", "torchscript"]}
        )

    def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
        """Run a TorchScript module on ``data`` without gradients and return numpy.

        Args:
            model: The loaded ``ScriptModule``.
            data: A numpy array, DataFrame, list or tensor; converted to a tensor of ``input_dtype``
                (by default the module's floating dtype, float32 for a module without parameters).
            options: The options ``save`` recorded.

        Returns:
            A numpy array (a tuple, list or dict of them when the module returns several tensors).

        Raises:
            InvalidInput: For a state-dict version, which has weights but no program to run.
        """
        if options.get("format") != "torchscript" or not isinstance(model, torch.jit.ScriptModule):
            raise InvalidInput(
                f"this torch version holds a state dict of {options.get('module_class') or 'tensors'}: "
                "weights without code, so it cannot predict. Load it, rebuild the module and call "
                "module.load_state_dict(state); to register a model that predicts, register "
                "torch.jit.script(module) instead",
                {"flavor": self.name, "format": options.get("format")},
            )
        dtype = _dtype(str(options["input_dtype"])) if "input_dtype" in options else _float_dtype(model)
        with torch.no_grad():
            return _to_numpy(model(_to_tensor(data, dtype)))


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise InvalidInput(
            f"{name!r} is not a torch dtype (e.g. 'float32', 'int64')", {"field": "input_dtype"}
        )
    return dtype


def _float_dtype(module: torch.nn.Module) -> torch.dtype:
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def _to_tensor(data: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data.to(dtype)
    array = data.to_numpy() if isinstance(data, pd.DataFrame | pd.Series) else np.asarray(data)
    try:
        return torch.as_tensor(np.ascontiguousarray(array)).to(dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"cannot turn the input into a {dtype} tensor: {exc}", {"field": "data"}) from exc


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple | list):
        return type(value)(_to_numpy(item) for item in value)
    if isinstance(value, Mapping):
        return {key: _to_numpy(item) for key, item in value.items()}
    return value


@contextmanager
def _jit_deprecation_ignored() -> Iterator[None]:
    # torch 2.13 deprecates torch.jit.save/load in favour of torch.export. TorchScript is the format
    # the user chose (they already saw the warning from torch.jit.script) and Steward offers no other
    # yet, so repeating it on every save and load tells them nothing they can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.(save|load)` is deprecated", DeprecationWarning)
        yield
