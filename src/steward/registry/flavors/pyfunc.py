"""The ``pyfunc`` flavor: any model, wrapped in Python code the user writes.

Subclass ``PythonModel``, read your files in ``load_context`` and answer in ``predict``::

    # my_model.py
    from steward.registry.flavors.pyfunc import ModelContext, PythonModel

    class Echo(PythonModel):
        def load_context(self, context: ModelContext) -> None:
            self.words = context.artifacts["vocab"].read_text().split()

        def predict(self, context: ModelContext, model_input: Any) -> Any:
            return [self.words[i] for i in model_input]

    register_model("echo", Echo(), artifacts={"vocab": "vocab.txt"})

Nothing is pickled: the bundle records the class as ``module:QualName``, holds the source files under
``code/`` and the artifacts under ``artifacts/<name>/``, and the loader imports the class, calls it with
no arguments and then ``load_context``. So state belongs in artifacts, not in the instance passed to
``save``. Because loading runs that code, a pyfunc version loads only with ``trust=True``.

Loading puts the bundle's ``code/`` directory first on ``sys.path`` and leaves it there, so imports the
model makes later (inside ``predict``) keep working. Modules of the same name that were imported from
another local directory (an older version of the same code) are evicted from ``sys.modules`` first, so
each load runs the code stored in its own bundle; a model already loaded keeps the module objects it
has, but a module it imports lazily after a newer bundle loads resolves to the newer bundle's code.
"""

from __future__ import annotations

import abc
import importlib
import inspect
import os
import re
import shutil
import sys
import sysconfig
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from steward.errors import InvalidInput, UnsafeArtifact
from steward.registry.flavors import check_options
from steward.registry.flavors.base import BundleReader, SavedFlavor, type_name, unsupported
from steward.registry.safety import check_not_pickle

_ARTIFACT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_IGNORED: Final = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
_IMPORT_LOCK: Final = threading.Lock()


@dataclass
class ModelContext:
    """What a ``PythonModel`` gets at load and predict time.

    Attributes:
        artifacts: Artifact name → its local path (a file or a directory) inside the loaded bundle.
    """

    artifacts: dict[str, Path] = field(default_factory=dict)


class PythonModel(abc.ABC):
    """Base class of pyfunc models; see the module docstring for an example.

    The loader calls the subclass with no arguments, then ``load_context`` once, then ``predict`` for
    every request. Define the subclass at the top level of a module (not in ``__main__``).
    """

    def load_context(self, context: ModelContext) -> None:  # noqa: B027 - an optional hook, not abstract
        """Prepare the model from its artifacts (read weights, open a vocabulary); does nothing by default.

        Args:
            context: The artifact paths of the loaded bundle.
        """

    @abc.abstractmethod
    def predict(self, context: ModelContext, model_input: Any) -> Any:
        """Return predictions for ``model_input`` (a DataFrame or array shaped by the signature).

        Args:
            context: The artifact paths of the loaded bundle.
            model_input: The input.
        """


@dataclass(frozen=True)
class LoadedPythonModel:
    """What loading a pyfunc version returns: the user's model and the context it was loaded with.

    Attributes:
        python_model: The ``PythonModel`` instance, after ``load_context``.
        context: Its artifact paths.
    """

    python_model: PythonModel
    context: ModelContext

    def predict(self, model_input: Any) -> Any:
        """Call ``python_model.predict(context, model_input)``."""
        return self.python_model.predict(self.context, model_input)


class PyfuncFlavor:
    """Save a ``PythonModel`` as its class reference, source files and artifacts; load it only if trusted."""

    name = "pyfunc"
    code_bearing = True

    def save(self, model: object, directory: Path, **options: Any) -> SavedFlavor:
        """Write the model's code and artifacts into ``directory``.

        Args:
            model: A ``PythonModel`` instance (or subclass); only its class is recorded.
            directory: The empty directory to write into.
            **options: ``artifacts``: name → path of a file or directory, copied under
                ``artifacts/<name>/``. ``code_paths``: ``.py`` files or package directories, copied under
                ``code/``; without it, the class's module is copied when it is a single file outside
                site-packages.

        Returns:
            The options (``python_model``, ``artifacts``, ``code_paths``), no packages (pass the
            requirements yourself), and the class's top-level module when its code is not bundled.

        Raises:
            InvalidInput: If ``model`` is not a ``PythonModel``, its class is defined in ``__main__`` or
                inside a function, it needs constructor arguments, or a path does not exist.
            UnsafeArtifact: If a copied file is a pickle or joblib file.
        """
        check_options(self.name, options, ["artifacts", "code_paths"])
        if isinstance(model, str | os.PathLike | bytes | bytearray | memoryview):
            check_not_pickle(model, source="model")
        cls = model if isinstance(model, type) else type(model)
        if not issubclass(cls, PythonModel):
            raise unsupported(self.name, model, "wrap it in a subclass of steward's PythonModel")
        reference = _class_reference(cls)
        code_dir, artifact_dir = directory / "code", directory / "artifacts"
        code_paths = options.get("code_paths")
        if code_paths is None:
            code_paths = _own_file(cls)
        elif isinstance(code_paths, str | os.PathLike):
            code_paths = [code_paths]
        copied = [_copy_code(Path(path), code_dir, directory) for path in code_paths]
        recorded = {
            name: _copy_artifact(name, Path(path), artifact_dir, directory)
            for name, path in dict(options.get("artifacts") or {}).items()
        }
        top_level = cls.__module__.partition(".")[0]
        shipped = any(Path(path).stem == top_level or Path(path).name == top_level for path in copied)
        return SavedFlavor(
            options={"python_model": reference, "artifacts": recorded, "code_paths": copied},
            packages=(),
            modules=() if shipped else (top_level,),
        )

    def load(self, bundle: BundleReader, options: Mapping[str, Any], trust: bool) -> object:
        """Import the model's class from the bundle's code, instantiate it and call ``load_context``.

        Args:
            bundle: The version's files.
            options: The options ``save`` recorded.
            trust: Must be True: loading runs the model's code.

        Returns:
            A ``LoadedPythonModel``.

        Raises:
            UnsafeArtifact: If ``trust`` is False.
            InvalidInput: If the class cannot be imported, or its constructor or ``load_context`` fails.
        """
        reference = str(options["python_model"])
        if not trust:
            raise UnsafeArtifact(
                f"pyfunc models are Python code ({reference}) that runs when loaded; review the code in "
                "the bundle and load it with load_model(..., trust=True)",
                {"flavor": self.name, "python_model": reference},
            )
        root = bundle.local_dir()
        cls = _import_class(reference, root / "code")
        context = ModelContext(
            {name: root / rel for name, rel in dict(options.get("artifacts") or {}).items()}
        )
        try:
            instance = cls()
            instance.load_context(context)
        except Exception as exc:  # the user's code: any exception, reported with the model it came from
            raise InvalidInput(
                f"{reference} failed to load: {type(exc).__name__}: {exc}", {"python_model": reference}
            ) from exc
        return LoadedPythonModel(instance, context)

    def predict(self, model: object, data: Any, options: Mapping[str, Any]) -> Any:
        """Call the model's ``predict(context, data)``.

        Raises:
            InvalidInput: If ``model`` is not a loaded pyfunc model.
        """
        if isinstance(model, LoadedPythonModel):
            return model.predict(data)
        if isinstance(model, PythonModel):
            return model.predict(ModelContext(), data)
        raise InvalidInput(f"flavor 'pyfunc' cannot predict with {type_name(model)}", {"flavor": self.name})


def _class_reference(cls: type) -> str:
    if cls.__module__ == "__main__":
        raise InvalidInput(
            f"{cls.__qualname__} is defined in __main__, which cannot be imported where the model is "
            "loaded: move the class into a module (my_model.py) and pass code_paths=['my_model.py']",
            {"field": "model"},
        )
    if "<locals>" in cls.__qualname__:
        raise InvalidInput(
            f"{cls.__qualname__} is defined inside a function; define it at the top level of a module",
            {"field": "model"},
        )
    try:
        inspect.signature(cls).bind()
    except TypeError as exc:
        raise InvalidInput(
            f"{cls.__qualname__} must be constructible with no arguments (the loader calls "
            f"{cls.__qualname__}()); read state in load_context from artifacts instead: {exc}",
            {"field": "model"},
        ) from exc
    except ValueError:  # no signature to inspect (a C-level __init__): let the loader find out
        pass
    return f"{cls.__module__}:{cls.__qualname__}"


def _own_file(cls: type) -> list[Path]:
    """The class's module file, when it is a top-level single-file module outside installed packages."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if "." in cls.__module__ or not file or not file.endswith(".py") or Path(file).name == "__init__.py":
        return []
    return [] if _installed(Path(file)) else [Path(file)]


def _installed(path: Path) -> bool:
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    stdlib = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")}
    return any(path.resolve().is_relative_to(root) for root in stdlib)


def _copy_code(source: Path, code_dir: Path, root: Path) -> str:
    """Copy a ``.py`` file or a package directory into ``code/``; return its bundle path."""
    _check_source(source, "code path")
    if source.is_file() and source.suffix != ".py":
        raise InvalidInput(
            f"code path {str(source)!r} is neither a .py file nor a directory", {"field": "code_paths"}
        )
    if source.stem in sys.stdlib_module_names:
        raise InvalidInput(
            f"code path {str(source)!r} would shadow the standard library module {source.stem!r}; rename it",
            {"field": "code_paths"},
        )
    target = code_dir / source.name
    if target.exists():
        raise InvalidInput(f"two code paths are named {source.name!r}", {"field": "code_paths"})
    _copy(source, target)
    return target.relative_to(root).as_posix()


def _copy_artifact(name: object, source: Path, artifact_dir: Path, root: Path) -> str:
    """Copy a file to ``artifacts/<name>/<file name>``, or a directory's content to ``artifacts/<name>/``."""
    if not isinstance(name, str) or not _ARTIFACT_NAME.match(name):
        raise InvalidInput(
            f"artifact name {name!r} must match {_ARTIFACT_NAME.pattern}",
            {"field": "artifacts", "name": name},
        )
    _check_source(source, f"artifact {name!r}")
    target = artifact_dir / name / source.name if source.is_file() else artifact_dir / name
    _copy(source, target)
    return target.relative_to(root).as_posix()


def _check_source(source: Path, what: str) -> None:
    if not source.exists():
        raise InvalidInput(f"{what} {str(source)!r} does not exist", {"field": what})
    for file in [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file()):
        check_not_pickle(file, source=f"{what} ({str(file)!r})")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copyfile(source, target)
    else:
        shutil.copytree(source, target, ignore=_IGNORED)


def _import_class(reference: str, code_dir: Path) -> type[PythonModel]:
    module_name, _, qualname = reference.partition(":")
    with _IMPORT_LOCK:
        if code_dir.is_dir():
            _activate(code_dir)
        try:
            obj: object = importlib.import_module(module_name)
            for attribute in qualname.split("."):
                obj = getattr(obj, attribute)
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot import {reference}: {exc}. Register the model with code_paths= holding its module, "
                "or install the package that provides it",
                {"python_model": reference},
            ) from exc
    if not (isinstance(obj, type) and issubclass(obj, PythonModel)):
        raise InvalidInput(f"{reference} is not a PythonModel subclass", {"python_model": reference})
    return obj


def _activate(code_dir: Path) -> None:
    """Put ``code_dir`` first on ``sys.path`` and evict same-named modules imported from elsewhere."""
    names = {p.stem if p.suffix == ".py" else p.name for p in code_dir.iterdir()}
    for loaded in [name for name in sys.modules if name.partition(".")[0] in names]:
        file = getattr(sys.modules[loaded], "__file__", None)
        if (
            file
            and not _installed(Path(file))
            and not Path(file).resolve().is_relative_to(code_dir.resolve())
        ):
            del sys.modules[loaded]
    entry = str(code_dir)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
