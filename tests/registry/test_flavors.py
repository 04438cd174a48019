"""Tests for steward/registry/flavors: each flavor saves, loads back and predicts like the original."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import textwrap
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler, normalize
from sklearn.svm import SVC

from steward.errors import InvalidInput, NotFound, UnsafeArtifact
from steward.registry.flavors import FLAVOR_NAMES, detect_flavor, get_flavor
from steward.registry.flavors.base import SavedFlavor
from steward.registry.flavors.pyfunc import LoadedPythonModel, ModelContext, PythonModel

# torch 2.13 deprecates torch.jit.script/trace in favour of torch.export; TorchScript is still the
# format the torch flavor stores, so the tests build scripted modules on purpose.
JIT_DEPRECATED = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.(script|trace)` is deprecated:DeprecationWarning"
)


class DirBundle:
    """A ``BundleReader`` over the files a flavor saved: held in memory, written back by ``local_dir``."""

    def __init__(self, saved: Path, scratch: Path) -> None:
        self._files = {
            p.relative_to(saved).as_posix(): p.read_bytes() for p in saved.rglob("*") if p.is_file()
        }
        self._scratch = scratch

    @property
    def paths(self) -> Sequence[str]:
        return sorted(self._files)

    def read_bytes(self, path: str) -> bytes:
        if path not in self._files:
            raise NotFound(f"no file {path!r}")
        return self._files[path]

    def local_dir(self) -> Path:
        for path, data in self._files.items():
            (self._scratch / path).parent.mkdir(parents=True, exist_ok=True)
            (self._scratch / path).write_bytes(data)
        return self._scratch


def save_and_load(
    name: str, model: object, tmp_path: Path, *, trust: bool = False, **options: Any
) -> tuple[SavedFlavor, DirBundle, object]:
    """Save with the flavor, drop the saved directory, load from the bundle alone."""
    flavor = get_flavor(name)
    saved_dir = tmp_path / f"saved-{name}"
    saved_dir.mkdir()
    saved = flavor.save(model, saved_dir, **options)
    json.dumps(dict(saved.options))  # the manifest stores them as JSON
    bundle = DirBundle(saved_dir, tmp_path / f"loaded-{name}")
    shutil.rmtree(saved_dir)
    return saved, bundle, flavor.load(bundle, saved.options, trust)


@pytest.fixture
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x, y


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for module files written by a test; sys.path and the modules are restored."""
    code = tmp_path / "code-src"
    code.mkdir()
    monkeypatch.setattr(sys, "path", [str(code), *sys.path])
    before = set(sys.modules)
    yield code
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(directory: Path, name: str, source: str) -> Any:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return importlib.import_module(name)


# --- get_flavor / detect_flavor ---------------------------------------------------------------


def test_unknown_flavor_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown flavor 'keras'") as info:
        get_flavor("keras")
    assert all(name in info.value.message for name in FLAVOR_NAMES)


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "steward.registry.flavors.onnx", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(InvalidInput, match=r"pip install 'steward-ml\[onnx\]'"):
        get_flavor("onnx")


def test_flavors_import_heavy_libraries_only_when_used() -> None:
    # skops imports every scikit-learn module (sklearn.utils.all_estimators), and scikit-learn's
    # array-API shims import torch when it is installed: after the sklearn flavor, only onnx is checked.
    code = """if True:
        import sys
        from steward.registry import flavors

        heavy = ("torch", "onnx", "onnxruntime", "sklearn", "skops")
        flavors.get_flavor("pyfunc")
        flavors.detect_flavor(b"\\x08\\x07")
        print(sorted(m for m in heavy if m in sys.modules))
        flavors.get_flavor("sklearn")
        print(sorted(m for m in ("onnx", "onnxruntime") if m in sys.modules))
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["[]", "[]"]


@JIT_DEPRECATED
def test_detect_flavor_recognises_each_kind(cancer: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    import torch
    from skl2onnx import to_onnx

    x, y = cancer
    clf = LogisticRegression(max_iter=5000).fit(x, y)
    proto = to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}})
    (tmp_path / "m.onnx").write_bytes(proto.SerializeToString())
    skops.io.dump(clf, tmp_path / "m.skops")
    shutil.copy(tmp_path / "m.skops", tmp_path / "no-extension")
    net = torch.nn.Linear(2, 1)

    class Model(PythonModel):
        def predict(self, context: ModelContext, model_input: Any) -> Any:
            return model_input

    assert detect_flavor(clf) == "sklearn"
    assert detect_flavor(proto) == detect_flavor(proto.SerializeToString()) == "onnx"
    assert detect_flavor(tmp_path / "m.onnx") == detect_flavor(str(tmp_path / "m.onnx")) == "onnx"
    assert detect_flavor(tmp_path / "m.skops") == detect_flavor(tmp_path / "no-extension") == "sklearn"
    assert detect_flavor(net) == detect_flavor(torch.jit.script(net)) == "torch"
    assert detect_flavor({"w": torch.zeros(2)}) == "torch"
    assert detect_flavor(Model()) == "pyfunc"


def test_detect_flavor_refuses_unknown_objects_and_pickles(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"builtins\.object.*onnx, pyfunc, sklearn, torch"):
        detect_flavor(object())
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(UnsafeArtifact, match="skops"):
        detect_flavor(tmp_path / "model.pkl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match=r"cannot tell the format"):
        detect_flavor(tmp_path / "notes.txt")


# --- sklearn ------------------------------------------------------------------------------------


def test_sklearn_round_trip_predicts_like_the_original(
    cancer: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    saved, _, model = save_and_load("sklearn", pipe, tmp_path, predict_fn="predict_proba")
    assert saved.options == {"predict_fn": "predict_proba"}
    assert list(saved.packages) == ["scikit-learn", "skops", "numpy", "scipy"]
    assert {"sklearn", "numpy"} <= set(saved.modules)
    np.testing.assert_array_equal(
        get_flavor("sklearn").predict(model, x, saved.options), pipe.predict_proba(x)
    )


def test_sklearn_trees_load_without_trust_and_skops_files_are_copied_in(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    skops.io.dump(forest, tmp_path / "forest.skops")
    saved, bundle, model = save_and_load("sklearn", tmp_path / "forest.skops", tmp_path)
    assert bundle.paths == ["model.skops"]
    np.testing.assert_array_equal(get_flavor("sklearn").predict(model, x, saved.options), forest.predict(x))


def test_sklearn_refuses_what_it_cannot_store(tmp_path: Path, cancer: tuple[np.ndarray, np.ndarray]) -> None:
    flavor = get_flavor("sklearn")
    with pytest.raises(InvalidInput, match=r"flavor 'sklearn' cannot save an object of type builtins\.dict"):
        flavor.save({"coef": [1, 2]}, tmp_path)
    with pytest.raises(InvalidInput, match=r"LogisticRegression.*not fitted"):
        flavor.save(LogisticRegression(), tmp_path)
    x, y = cancer
    with pytest.raises(InvalidInput, match=r"no method 'predict_proba'"):
        flavor.save(SVC().fit(x[:100], y[:100]), tmp_path, predict_fn="predict_proba")
    with pytest.raises(InvalidInput, match=r"no option 'n_jobs'"):
        flavor.save(SVC().fit(x[:100], y[:100]), tmp_path, n_jobs=2)
    with pytest.raises(InvalidInput, match=r"lambda"):
        flavor.save(FunctionTransformer(lambda v: v).fit(x), tmp_path, predict_fn="transform")
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04.")
    with pytest.raises(UnsafeArtifact, match="skops"):
        flavor.save(tmp_path / "model.joblib", tmp_path)


def test_sklearn_custom_class_needs_trust(
    importable: Path, tmp_path: Path, cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    steps = write_module(
        importable,
        "steward_test_custom_steps",
        """
        import numpy as np
        from sklearn.base import BaseEstimator, TransformerMixin

        class Doubler(TransformerMixin, BaseEstimator):
            def fit(self, x, y=None):
                self.fitted_ = True
                return self

            def transform(self, x):
                return np.asarray(x) * 2.0
        """,
    )
    x, y = cancer
    pipe = make_pipeline(steps.Doubler(), StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    flavor = get_flavor("sklearn")
    saved = flavor.save(pipe, tmp_path)
    assert "steward_test_custom_steps" in saved.modules
    bundle = DirBundle(tmp_path, tmp_path / "loaded")
    with pytest.raises(UnsafeArtifact, match=r"steward_test_custom_steps\.Doubler.*trust=True") as info:
        flavor.load(bundle, saved.options, trust=False)
    assert info.value.details["untrusted_types"] == ["steward_test_custom_steps.Doubler"]
    model = flavor.load(bundle, saved.options, trust=True)
    np.testing.assert_array_equal(flavor.predict(model, x, saved.options), pipe.predict(x))


def test_sklearn_functions_the_model_calls_need_trust(
    tmp_path: Path, cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = cancer
    transformer = FunctionTransformer(normalize).fit(x)
    saved, bundle, _ = save_and_load("sklearn", transformer, tmp_path, trust=True, predict_fn="transform")
    with pytest.raises(UnsafeArtifact, match=r"sklearn\.preprocessing\._data\.normalize"):
        get_flavor("sklearn").load(bundle, saved.options, trust=False)


# --- onnx ---------------------------------------------------------------------------------------


@pytest.fixture
def iris_onnx() -> tuple[Any, LogisticRegression, np.ndarray]:
    from skl2onnx import to_onnx

    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    return to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}}), clf, x


@pytest.mark.parametrize("given", ["proto", "bytes", "path"])
def test_onnx_round_trip_predicts_like_the_original(
    given: str, iris_onnx: tuple[Any, LogisticRegression, np.ndarray], tmp_path: Path
) -> None:
    proto, clf, x = iris_onnx
    (tmp_path / "iris.onnx").write_bytes(proto.SerializeToString())
    model = {"proto": proto, "bytes": proto.SerializeToString(), "path": tmp_path / "iris.onnx"}[given]
    saved, bundle, session = save_and_load("onnx", model, tmp_path)
    assert bundle.paths == ["model.onnx"] and list(saved.packages) == ["onnx", "onnxruntime"]
    flavor = get_flavor("onnx")
    np.testing.assert_array_equal(flavor.predict(session, x, saved.options), clf.predict(x))  # float64 in
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    probabilities = flavor.predict(session, frame, {"output": "probabilities"})
    np.testing.assert_allclose(probabilities, clf.predict_proba(x), atol=1e-5)


def test_onnx_output_option_and_invalid_models(
    iris_onnx: tuple[Any, LogisticRegression, np.ndarray], tmp_path: Path
) -> None:
    proto, clf, x = iris_onnx
    saved, _, session = save_and_load("onnx", proto, tmp_path, output="probabilities")
    assert saved.options == {"output": "probabilities"}
    np.testing.assert_allclose(
        get_flavor("onnx").predict(session, x, saved.options), clf.predict_proba(x), atol=1e-5
    )
    flavor = get_flavor("onnx")
    with pytest.raises(InvalidInput, match=r"no output 'scores'.*label, probabilities"):
        flavor.save(proto, tmp_path, output="scores")
    with pytest.raises(InvalidInput, match=r"ONNX model is not valid|not an ONNX model"):
        flavor.save(b"\x08\x07\x12\x03abc", tmp_path)
    with pytest.raises(InvalidInput, match=r"flavor 'onnx' cannot save an object of type builtins\.list"):
        flavor.save([1, 2], tmp_path)
    with pytest.raises(UnsafeArtifact):
        flavor.save(b"\x80\x05\x95.", tmp_path)


# --- torch --------------------------------------------------------------------------------------


def _net() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


@JIT_DEPRECATED
def test_torchscript_round_trip_predicts_like_the_original(tmp_path: Path) -> None:
    import torch

    net = _net().eval()
    x = np.random.default_rng(0).normal(size=(16, 4))
    saved, bundle, module = save_and_load("torch", torch.jit.script(net), tmp_path)
    assert saved.options == {"format": "torchscript"} and bundle.paths == ["model.pt"]
    with torch.no_grad():
        expected = net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    flavor = get_flavor("torch")
    np.testing.assert_allclose(flavor.predict(module, x, saved.options), expected, rtol=1e-6)
    np.testing.assert_allclose(flavor.predict(module, pd.DataFrame(x), saved.options), expected, rtol=1e-6)


def test_torch_module_is_stored_as_its_state_dict(tmp_path: Path) -> None:
    import torch

    net = _net()
    saved, bundle, state = save_and_load("torch", net, tmp_path)
    assert saved.options == {"format": "state_dict", "module_class": "torch.nn.modules.container:Sequential"}
    assert bundle.paths == ["state_dict.pt"] and list(saved.modules) == ["torch"]
    assert isinstance(state, OrderedDict) and all(isinstance(t, torch.Tensor) for t in state.values())
    rebuilt = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    rebuilt.load_state_dict(state)
    x = torch.ones(2, 4)
    assert torch.equal(rebuilt(x), net(x))
    with pytest.raises(InvalidInput, match=r"torch\.jit\.script"):
        get_flavor("torch").predict(state, x.numpy(), saved.options)


def test_torch_dict_of_tensors_and_unsupported_objects(tmp_path: Path) -> None:
    import torch

    weights = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    saved, _, state = save_and_load("torch", weights, tmp_path)
    assert saved.options == {"format": "state_dict"}
    assert isinstance(state, dict) and torch.equal(state["w"], weights["w"])
    flavor = get_flavor("torch")
    with pytest.raises(InvalidInput, match=r"flavor 'torch' cannot save an object of type builtins\.list"):
        flavor.save([torch.zeros(1)], tmp_path)
    with pytest.raises(InvalidInput, match=r"more than tensors"):
        flavor.save({"w": torch.zeros(1), "note": "hi"}, tmp_path)
    (tmp_path / "weights.pkl").write_bytes(b"\x80\x02.")
    with pytest.raises(UnsafeArtifact, match="skops"):
        flavor.save(tmp_path / "weights.pkl", tmp_path)


# --- pyfunc -------------------------------------------------------------------------------------

ADD_OFFSET = """
from steward.registry.flavors.pyfunc import PythonModel


class AddOffset(PythonModel):
    def load_context(self, context):
        self.offset = float(context.artifacts["offset"].read_text())

    def predict(self, context, model_input):
        return [x + self.offset for x in model_input]
"""


def test_pyfunc_loads_only_with_trust_from_its_own_code(importable: Path, tmp_path: Path) -> None:
    module = write_module(importable, "steward_test_add_offset", ADD_OFFSET)
    (tmp_path / "offset.txt").write_text("10")
    flavor = get_flavor("pyfunc")
    assert flavor.code_bearing
    saved_dir = tmp_path / "saved"
    saved_dir.mkdir()
    saved = flavor.save(module.AddOffset(), saved_dir, artifacts={"offset": tmp_path / "offset.txt"})
    assert saved.options == {
        "python_model": "steward_test_add_offset:AddOffset",
        "artifacts": {"offset": "artifacts/offset/offset.txt"},
        "code_paths": ["code/steward_test_add_offset.py"],
    }
    assert list(saved.packages) == [] and list(saved.modules) == []
    bundle = DirBundle(saved_dir, tmp_path / "loaded")
    with pytest.raises(UnsafeArtifact, match=r"Python code.*trust=True"):
        flavor.load(bundle, saved.options, trust=False)

    (importable / "steward_test_add_offset.py").unlink()  # only the bundle's copy is left to import
    loaded = flavor.load(bundle, saved.options, trust=True)
    assert isinstance(loaded, LoadedPythonModel)
    assert Path(sys.modules["steward_test_add_offset"].__file__ or "").is_relative_to(tmp_path / "loaded")
    assert flavor.predict(loaded, [1, 2], saved.options) == [11.0, 12.0]


def test_pyfunc_code_paths_may_be_packages(importable: Path, tmp_path: Path) -> None:
    package = importable / "steward_test_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        ADD_OFFSET.replace('float(context.artifacts["offset"].read_text())', "1.5")
    )
    importlib.invalidate_caches()
    cls = importlib.import_module("steward_test_pkg.model").AddOffset
    saved, bundle, loaded = save_and_load("pyfunc", cls, tmp_path, trust=True, code_paths=[package])
    assert saved.options["code_paths"] == ["code/steward_test_pkg"]
    assert "code/steward_test_pkg/model.py" in bundle.paths
    assert get_flavor("pyfunc").predict(loaded, [1], saved.options) == [2.5]


def test_pyfunc_refusals(importable: Path, tmp_path: Path) -> None:
    def predict(self: Any, context: ModelContext, model_input: Any) -> Any:
        return model_input

    flavor = get_flavor("pyfunc")
    in_main = type("Scratch", (PythonModel,), {"predict": predict, "__module__": "__main__"})
    with pytest.raises(InvalidInput, match=r"__main__.*move the class into a module.*code_paths"):
        flavor.save(in_main(), tmp_path)
    with pytest.raises(InvalidInput, match=r"flavor 'pyfunc' cannot save an object of type builtins\.int"):
        flavor.save(3, tmp_path)
    module = write_module(
        importable,
        "steward_test_needs_args",
        """
        from steward.registry.flavors.pyfunc import PythonModel

        class NeedsArgs(PythonModel):
            def __init__(self, weights):
                self.weights = weights

            def predict(self, context, model_input):
                return model_input
        """,
    )
    with pytest.raises(InvalidInput, match=r"constructible with no arguments"):
        flavor.save(module.NeedsArgs([1]), tmp_path)
    (tmp_path / "tokenizer.pkl").write_bytes(b"\x80\x04.")
    add = write_module(importable, "steward_test_add_offset2", ADD_OFFSET)
    with pytest.raises(UnsafeArtifact, match=r"artifact 'tok'.*skops"):
        flavor.save(add.AddOffset(), tmp_path / "out", artifacts={"tok": tmp_path / "tokenizer.pkl"})
