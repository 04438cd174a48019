"""The flavor plug point: how one kind of model is written to files and read back safely.

A flavor never stores or loads a pickle. Formats that can run code when loaded (``pyfunc``) say so
with ``code_bearing = True`` and load only with ``trust=True``.

Implementing one::

    class TextFlavor:
        name = "text"
        code_bearing = False

        def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
            if not isinstance(model, str):
                raise unsupported(self.name, model)
            (directory / "model.txt").write_text(model)
            return SavedFlavor(options={}, packages=[])

        def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
            return bundle.read_bytes("model.txt").decode()

        def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
            return [model] * len(data)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from steward.errors import InvalidInput


@dataclass(frozen=True)
class SavedFlavor:
    """What ``Flavor.save`` reports besides the files it wrote.

    Attributes:
        options: JSON-ready settings the loader needs (recorded in the manifest as ``flavor_options``),
            e.g. ``{"predict_fn": "predict_proba"}`` or ``{"format": "torchscript"}``.
        packages: Distribution names the model needs to load (``"scikit-learn"``, ``"onnxruntime"``);
            the registry pins each to its installed version in the manifest's requirements.
        modules: Top-level module names the saved object's classes come from (``"xgboost"``); the
            registry maps them to distributions and pins those too.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    packages: Sequence[str] = ()
    modules: Sequence[str] = ()


class BundleReader(Protocol):
    """Read access to a stored model version's files; every byte returned is digest-verified."""

    @property
    def paths(self) -> Sequence[str]:
        """The bundle's file paths (relative, ``/``-separated), sorted."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """Return one file's bytes after checking them against the manifest's digest.

        Raises:
            NotFound: If the bundle has no such file.
            IntegrityError: If the stored bytes do not match the digest.
        """
        ...

    def local_dir(self) -> Path:
        """Write every file of the bundle (verified) under one directory and return it."""
        ...


class Flavor(Protocol):
    """One model format. ``name`` is what users pass as ``flavor=``."""

    name: str
    code_bearing: bool

    def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
        """Write ``model`` as files into the empty ``directory``.

        Raises:
            InvalidInput: If this flavor cannot save an object of that type (use ``unsupported``), or
                for an unknown option.
            UnsafeArtifact: If ``model`` is (a path to) a pickle or joblib file.
        """
        ...

    def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
        """Rebuild the native model object (an estimator, an ``InferenceSession`` …) from ``bundle``.

        Raises:
            UnsafeArtifact: If loading would run code or trust unvetted types and ``trust`` is False.
        """
        ...

    def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
        """Run the native model on ``data``, already shaped by the signature (a DataFrame or array)."""
        ...


def type_name(obj: object) -> str:
    """Return ``module.QualName`` of ``obj``'s type, for messages."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def unsupported(flavor: str, obj: object, hint: str = "") -> InvalidInput:
    """The error for an object a flavor cannot save: it names the flavor and the object's type."""
    message = f"flavor {flavor!r} cannot save an object of type {type_name(obj)}"
    return InvalidInput(message + (f": {hint}" if hint else ""), {"field": "model", "flavor": flavor})
