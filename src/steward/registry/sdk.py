"""The registry half of the SDK: ``steward.register_model``, ``load_model``, ``set_alias`` …

Packaging happens here, on the caller's side, in both modes: the flavor writes the model to files in
a temporary directory, each file is uploaded (content-addressed), and one call creates the version.
A failure before that call leaves no version behind; uploaded blobs without a version are inert.
"""

from __future__ import annotations

import platform as _platform
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steward.config import Settings
from steward.core.names import validate_name
from steward.core.signature import Signature, infer_signature
from steward.errors import InvalidInput, StewardError
from steward.registry.flavors import detect_flavor, get_flavor
from steward.registry.loading import LoadedModel, load_version
from steward.registry.models import (
    AliasEvent,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    RegistryBackend,
    VersionSpec,
)
from steward.registry.requirements import pinned_requirements
from steward.registry.safety import check_not_pickle, load_trusted_pickle
from steward.tracking import fluent

RegistryResolver = Callable[[], tuple[RegistryBackend, Settings]]
_resolver: RegistryResolver | None = None

__all__ = [
    "alias_history",
    "archive_model_version",
    "delete_alias",
    "export_onnx",
    "get_model",
    "get_model_version",
    "infer_signature",
    "list_model_versions",
    "load_model",
    "register_model",
    "set_alias",
]


def set_registry_resolver(resolver: RegistryResolver) -> None:
    """Install the function that returns the registry backend and settings in use."""
    global _resolver
    _resolver = resolver


def _backend() -> tuple[RegistryBackend, Settings]:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def _upload_dir(
    backend: RegistryBackend, model: str, directory: Path, datasets: Sequence[str] = ()
) -> list[ModelFile]:
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        files.append(backend.upload_file(model, path, path.relative_to(directory).as_posix(), datasets))
    return files


def _unpickle_if_trusted(model: object, trust: bool) -> object:
    if not isinstance(model, str | Path):
        return model
    path = Path(model)
    if not path.exists():
        raise InvalidInput(f"model file {str(path)!r} does not exist", {"field": "model"})
    if not trust:
        check_not_pickle(path, source=str(path))
        return model
    try:
        check_not_pickle(path, source=str(path))
    except StewardError:
        # The caller vouched for this pickle: unpickle it here and store it in a safe format.
        return load_trusted_pickle(path)
    return model


def register_model(
    name: str,
    model: Any,
    flavor: str | None = None,
    *,
    run_id: str | None = None,
    signature: Signature | None = None,
    datasets: Mapping[str, str] | None = None,
    description: str = "",
    version: str | None = None,
    requirements: Iterable[str] = (),
    metrics: Mapping[str, float] | None = None,
    trust: bool = False,
    **flavor_options: Any,
) -> ModelVersion:
    """Register ``model`` as a new version of ``name`` (the model is created on first use).

    The version is ``1.0.0`` first, then a minor bump per registration; a changed input signature
    bumps the major number. Requirements are pinned from what is installed, without loading the model.

    Args:
        name: The registered model's name.
        model: A fitted estimator, ONNX model, torch module, ``PythonModel``, or a path to a model file.
        flavor: ``sklearn``, ``onnx``, ``torch`` or ``pyfunc``; detected from ``model`` if omitted.
        run_id: The run that produced it; the active run if omitted (its metrics are recorded too).
        signature: What inputs the model takes (``steward.infer_signature(X, y)``); enforced on predict.
        datasets: Dataset version ids it was trained on, by role (``{"train": id}``).
        description: Free text.
        version: An explicit SemVer (validated, must be new).
        requirements: Extra requirement specifiers to record.
        metrics: Figures to record with the version (added to the run's).
        trust: Convert a pickle/joblib file you trust (it is unpickled here and stored safely).
        **flavor_options: Passed to the flavor (``predict_fn="predict_proba"``, ``artifacts=``,
            ``code_paths=`` …).

    Raises:
        InvalidInput: For a bad name, SemVer, or an object the flavor cannot save.
        UnsafeArtifact: For a pickle or joblib file without ``trust=True``.
        Conflict: If ``version`` already exists.
    """
    backend, _settings = _backend()
    validate_name(name, "model")
    if run_id is None:
        active = fluent.active_run()
        if active is not None:
            active.buffer.flush()
            run_id = active.id
    model = _unpickle_if_trusted(model, trust)
    chosen = get_flavor(flavor or detect_flavor(model))
    with tempfile.TemporaryDirectory(prefix="steward-model-") as tmp:
        saved = chosen.save(model, Path(tmp), **flavor_options)
        files = _upload_dir(backend, name, Path(tmp), sorted(set((datasets or {}).values())))
    spec = VersionSpec(
        flavor=chosen.name,
        files=files,
        flavor_options=dict(saved.options),
        signature=signature,
        requirements=pinned_requirements(saved.packages, saved.modules, requirements),
        python_version=_platform.python_version(),
        run_id=run_id,
        datasets=dict(datasets or {}),
        metrics=dict(metrics or {}),
        description=description,
        version=version,
    )
    return backend.create_version(name, spec)


def _cache_root(settings: Settings) -> Path:
    return Path(settings.home) / "cache" / "models"


def load_model(uri: str, *, trust: bool = False, format: str = "model") -> LoadedModel:
    """Load a registered version: ``models:/churn/1.1.0``, ``models:/churn@staging`` or ``models:/churn``.

    Every file is checked against the digest its manifest records before it is used.

    Args:
        uri: Which version.
        trust: Allow a code-bearing format (``pyfunc``) or types outside the safe list.
        format: ``"model"`` (as registered) or a further format such as ``"onnx"``.

    Raises:
        NotFound: If the model, version, alias or format does not exist.
        UnsafeArtifact: If the version needs ``trust=True`` to load.
        IntegrityError: If a stored file was altered.
    """
    backend, settings = _backend()
    version = backend.resolve(uri)
    return load_version(backend, version, _cache_root(settings), format, trust)


def get_model_version(uri: str) -> ModelVersion:
    """Return the version a ``models:/…`` reference resolves to (number, status, aliases, manifest)."""
    backend, _ = _backend()
    return backend.resolve(uri)


def get_model(name: str) -> RegisteredModel:
    """Return a registered model with its highest version and aliases."""
    backend, _ = _backend()
    return backend.get_model(name)


def list_model_versions(name: str) -> list[ModelVersion]:
    """Return every version of a model, lowest first."""
    backend, _ = _backend()
    return backend.list_versions(name)


def set_alias(name: str, alias: str, version: str, reason: str = "") -> ModelVersion:
    """Point ``alias`` (``staging``, ``production`` …) at ``version``; the move is atomic and recorded.

    Raises:
        Conflict: If the version is archived.
        NotFound: If the model or version does not exist.
    """
    backend, _ = _backend()
    return backend.set_alias(name, alias, version, reason)


def delete_alias(name: str, alias: str, reason: str = "") -> None:
    """Remove an alias (recorded in its history)."""
    backend, _ = _backend()
    backend.delete_alias(name, alias, reason)


def alias_history(name: str, alias: str | None = None) -> list[AliasEvent]:
    """Return every recorded move of a model's aliases: who, when, from which version to which, why."""
    backend, _ = _backend()
    return backend.alias_history(name, alias)


def archive_model_version(name: str, version: str, reason: str = "") -> ModelVersion:
    """Archive a version: it stays loadable but can no longer take an alias."""
    backend, _ = _backend()
    return backend.archive_version(name, version, reason)


def _sample_from_signature(signature: Signature | None, rows: int = 256) -> Any:
    """Random inputs shaped by the signature, to check a conversion when no sample is given."""
    if signature is None:
        raise InvalidInput(
            "export_onnx needs sample inputs: pass sample= or register the model with a signature",
            {"field": "sample"},
        )
    rng = np.random.default_rng(0)
    inputs = signature.inputs
    if inputs.tensor is not None:
        shape = tuple(rows if size == -1 else size for size in inputs.tensor.shape)
        return rng.normal(size=shape).astype(inputs.tensor.dtype)
    import pandas as pd

    data: dict[str, Any] = {}
    for column in inputs.columns:
        if column.type.startswith("float"):
            data[column.name] = rng.normal(size=rows).astype(column.type)
        elif column.type.startswith("int"):
            data[column.name] = rng.integers(0, 10, size=rows).astype(column.type)
        else:
            raise InvalidInput(
                f"cannot make sample values for column {column.name!r} of type {column.type}: pass sample=",
                {"field": "sample"},
            )
    return pd.DataFrame(data)


def export_onnx(uri: str, sample: Any = None, *, rtol: float = 1e-4, atol: float = 1e-5) -> ModelVersion:
    """Convert a scikit-learn version to ONNX and attach it to the same version as format ``onnx``.

    The converted model must predict what the original does on ``sample`` (or on random inputs shaped
    by the signature) within ``rtol``/``atol``. Load it with ``load_model(uri, format="onnx")``.

    Raises:
        InvalidInput: If the version is not scikit-learn, cannot be converted, or the predictions differ.
        Conflict: If the version already has an ONNX format.
    """
    from steward.registry.onnx_export import sklearn_to_onnx

    backend, settings = _backend()
    version = backend.resolve(uri)
    if version.flavor != "sklearn":
        raise InvalidInput(
            f"export_onnx converts scikit-learn versions; {version.uri} is {version.flavor!r}",
            {"field": "uri"},
        )
    loaded = load_version(backend, version, _cache_root(settings))
    if sample is None:
        sample = _sample_from_signature(version.signature)
    elif version.signature is not None:
        sample = version.signature.inputs.enforce(sample)
    predict_fn = str(version.manifest.get("flavor_options", {}).get("predict_fn", "predict"))
    onnx_bytes = sklearn_to_onnx(loaded.native, sample, predict_fn=predict_fn, rtol=rtol, atol=atol)
    onnx_flavor = get_flavor("onnx")
    # skl2onnx names a classifier's outputs "label" then "probabilities"; a regressor or transformer
    # has one output. The first output is what predict/transform give; predict_proba needs the second.
    choice = {"output": "probabilities"} if predict_fn == "predict_proba" else {}
    with tempfile.TemporaryDirectory(prefix="steward-onnx-") as tmp:
        saved = onnx_flavor.save(onnx_bytes, Path(tmp), **choice)
        files = _upload_dir(backend, version.model, Path(tmp), sorted(set(version.datasets.values())))
    options: dict[str, Any] = {
        **saved.options,
        "requirements": pinned_requirements(saved.packages, saved.modules),
    }
    return backend.add_format(version.model, version.version, "onnx", "onnx", options, files)
