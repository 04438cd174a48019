"""The ``sklearn`` flavor: fitted scikit-learn estimators and pipelines, stored with skops.

skops writes an object tree (a JSON schema plus ``.npy`` arrays) instead of a pickle, and at load time
rebuilds only the types it is told to trust. Steward trusts skops' own defaults plus the *classes* (and
numpy ufuncs) of scikit-learn, numpy, scipy, ``builtins`` and ``collections``. Anything else — a class
from another library, or any plain function a model refers to (``FunctionTransformer(func=...)``),
even from numpy — is code the model runs, so loading it needs ``trust=True`` after a review.

Files: ``model.skops``. Options: ``predict_fn``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import skops.io
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from steward.errors import InvalidInput, UnsafeArtifact
from steward.registry.flavors import check_options
from steward.registry.flavors.base import BundleReader, SavedFlavor, type_name, unsupported
from steward.registry.safety import check_not_pickle

MODEL_FILE: Final = "model.skops"
PREDICT_FNS: Final = ("predict", "predict_proba", "decision_function", "transform")
"""The estimator methods ``predict_fn`` may name."""
SAFE_MODULES: Final = frozenset({"sklearn", "numpy", "scipy", "builtins", "collections"})
"""Top-level modules whose classes a skops file may use without ``trust=True``."""
PACKAGES: Final = ("scikit-learn", "skops", "numpy", "scipy")


class SklearnFlavor:
    """Save scikit-learn estimators with skops; load them trusting only vetted types.

    ``save`` accepts a fitted estimator or pipeline, or a path to an existing ``.skops`` file (copied
    in). The option ``predict_fn`` (``"predict"`` by default) names the method ``predict`` calls.
    """

    name = "sklearn"
    code_bearing = False

    def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
        """Write ``model`` to ``directory/model.skops``.

        Args:
            model: A fitted estimator or pipeline, or a path to a ``.skops`` file.
            directory: The empty directory to write into.
            **options: ``predict_fn``: one of ``PREDICT_FNS``; the model must have that method.

        Returns:
            The options (``predict_fn``), the packages to pin, and the top-level modules of every
            object inside the model (so a pipeline with an xgboost step adds ``"xgboost"``).

        Raises:
            InvalidInput: For an unfitted estimator, an object that is not an estimator, a missing
                ``predict_fn`` method, a file that is not skops, or a model that refers to code defined
                in ``__main__`` or a lambda (it could not be loaded anywhere else).
            UnsafeArtifact: If ``model`` is (a path to) a pickle or joblib file.
        """
        check_options(self.name, options, ["predict_fn"])
        predict_fn = str(options.get("predict_fn", "predict"))
        if predict_fn not in PREDICT_FNS:
            raise InvalidInput(
                f"predict_fn must be one of {', '.join(PREDICT_FNS)}, not {predict_fn!r}",
                {"field": "predict_fn", "choices": list(PREDICT_FNS)},
            )
        target = directory / MODEL_FILE
        if isinstance(model, str | os.PathLike):
            check_not_pickle(model, source="model")
            untrusted = _copy_skops_file(Path(model), target)
            if all(_auto_trusted(name) for name in untrusted):
                # Safe to load here, so check it like an object; otherwise the check waits for trust.
                _check_estimator(self.name, skops.io.load(target, trusted=untrusted), predict_fn)
        elif isinstance(model, bytes | bytearray | memoryview):
            check_not_pickle(model, source="model")
            raise unsupported(self.name, model, "pass a fitted estimator or the path of a .skops file")
        else:
            _check_estimator(self.name, model, predict_fn)
            try:
                skops.io.dump(model, target)
            except Exception as exc:  # skops raises TypeError, ValueError… for what it cannot persist
                raise unsupported(self.name, model, f"skops cannot store it: {exc}") from exc
            untrusted = skops.io.get_untrusted_types(file=target)
        _refuse_unimportable(untrusted)
        return SavedFlavor(options={"predict_fn": predict_fn}, packages=PACKAGES, modules=_modules(target))

    def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
        """Rebuild the estimator from ``model.skops``.

        Args:
            bundle: The version's files.
            options: The options ``save`` recorded.
            trust: Also trust the types outside the safe list (review them first).

        Returns:
            The estimator.

        Raises:
            UnsafeArtifact: If the file needs types outside the safe list and ``trust`` is False; the
                message lists them.
            InvalidInput: If skops cannot rebuild the model in this environment.
        """
        data = bundle.read_bytes(MODEL_FILE)
        untrusted = skops.io.get_untrusted_types(data=data)
        unvetted = [name for name in untrusted if not _auto_trusted(name)]
        if unvetted and not trust:
            raise UnsafeArtifact(
                "this scikit-learn model uses types that Steward does not trust by default: "
                f"{', '.join(unvetted)}. Loading them runs their code. Review them (they are classes or "
                "functions the model refers to) and, if you trust them, load with "
                "load_model(..., trust=True).",
                {"untrusted_types": unvetted},
            )
        try:
            return skops.io.loads(data, trusted=untrusted)
        except Exception as exc:  # a class missing from this environment, a version skew…
            raise InvalidInput(f"skops cannot rebuild this model here: {exc}", {"flavor": self.name}) from exc

    def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
        """Call the estimator's ``predict_fn`` method on ``data``.

        Raises:
            InvalidInput: If the estimator has no such method.
        """
        predict_fn = str(options.get("predict_fn", "predict"))
        method = getattr(model, predict_fn, None)
        if not callable(method):
            raise InvalidInput(f"{type_name(model)} has no method {predict_fn!r}", {"field": "predict_fn"})
        if not hasattr(model, "feature_names_in_") and hasattr(data, "to_numpy"):
            # Fitted on an array: the signature already put the columns in order, so pass the values
            # (a frame would make scikit-learn warn that the names it never saw are unexpected).
            data = data.to_numpy()
        return method(data)


def _check_estimator(flavor: str, model: object, predict_fn: str) -> None:
    if not isinstance(model, BaseEstimator):
        raise unsupported(flavor, model, "pass a fitted scikit-learn estimator or pipeline")
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise unsupported(flavor, model, "it is not fitted; call fit() before registering it") from exc
    if not callable(getattr(model, predict_fn, None)):
        available = [name for name in PREDICT_FNS if callable(getattr(model, name, None))]
        raise InvalidInput(
            f"{type_name(model)} has no method {predict_fn!r}; it has {', '.join(available) or 'none'}",
            {"field": "predict_fn", "choices": available},
        )


def _copy_skops_file(source: Path, target: Path) -> list[str]:
    """Copy a skops file into the bundle and return the types it needs trusted."""
    if not source.is_file():
        raise InvalidInput(f"model file {str(source)!r} does not exist", {"field": "model"})
    shutil.copyfile(source, target)
    try:
        untrusted: list[str] = skops.io.get_untrusted_types(file=target)
    except Exception as exc:  # not a zip, no schema, a schema from an unknown protocol…
        raise InvalidInput(
            f"{str(source)!r} is not a readable skops file: {exc}", {"field": "model"}
        ) from exc
    return untrusted


def _refuse_unimportable(untrusted: Sequence[str]) -> None:
    """Refuse references to ``__main__``, lambdas and local functions: no other process can import them."""
    bad = [name for name in untrusted if name.startswith("__main__.") or "<" in name]
    if bad:
        raise InvalidInput(
            f"the model refers to {', '.join(bad)}, which cannot be imported where the model is loaded; "
            "define it at the top level of an importable module",
            {"field": "model", "types": bad},
        )


def _modules(skops_file: Path) -> list[str]:
    """The top-level modules of every object in a skops file, from its schema (standard library left out)."""
    with zipfile.ZipFile(skops_file) as archive:
        pending: list[object] = [json.loads(archive.read("schema.json"))]
    found: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            module = node.get("__module__")
            if isinstance(module, str):
                found.add(module.partition(".")[0])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(found - sys.stdlib_module_names)


@functools.lru_cache(maxsize=1024)
def _auto_trusted(name: str) -> bool:
    """Whether the dotted ``name`` is a class or ufunc of a module in ``SAFE_MODULES``."""
    if name.partition(".")[0] not in SAFE_MODULES:
        return False
    obj = _resolve(name)
    return isinstance(obj, type | np.ufunc)


def _resolve(name: str) -> object:
    """Import the longest module prefix of ``name`` and walk the rest as attributes; None if absent."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except Exception:  # not a module at this length (or it fails to import): try a shorter prefix
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, None)
        return obj
    return None
