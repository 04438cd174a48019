"""Model versions loaded for serving: verified, on ONNX Runtime when they can be, warmed up and timed.

:func:`load_served` loads one registered version through ``steward.registry.loading.load_version``, so
its platform signature and every file digest are checked and a bad version is refused before a byte of
it is deserialised. A version with an ``onnx`` format runs on ONNX Runtime when onnxruntime is installed
(a single-threaded session: worker processes give the parallelism, and a spinning thread pool would
compete with the event loop); otherwise its primary flavor runs.

The loaded version is then warmed up on a sample built from its signature (zeros for numbers), which
also times it: a model whose full batch answers within :data:`INLINE_BUDGET_MS` runs in the event loop,
a slower one in its own thread (``steward.serving.batching``). A version whose warm-up fails on such a
sample is not served. Only after all of this does the router let a request reach it.

For scikit-learn estimators fitted on a DataFrame, the fast path hands over an array in signature order:
the signature has already checked the names and put the columns in order, so the estimator's own name
check is redundant. It is switched off on the served copy (plain estimators and pipelines of plain
steps only), which spares building a DataFrame per batch; any other estimator gets a DataFrame.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from steward.core.signature import Schema, Signature
from steward.errors import InvalidInput
from steward.registry.flavors import get_flavor
from steward.registry.loading import LoadedModel, StoredBundle, load_version
from steward.registry.models import PRIMARY_FORMAT, ModelVersion, RegistryBackend
from steward.serving.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS, Batcher
from steward.serving.fastpath import ColumnsCodec
from steward.serving.refusals import Unprocessable

log = logging.getLogger("steward.serving")

INLINE_BUDGET_MS: Final = 2.0
"""A version whose full batch predicts within this many ms in the warm-up runs in the event loop."""

GATHER_FROM_MS: Final = 0.05
"""A version whose single row takes at least this long lets its batches gather (``batching``); below it
the call costs less than the loop pass a gathering batch waits."""

ONNX_FORMAT: Final = "onnx"
_META_ATTRIBUTES: Final = ("transformers", "transformer_list", "estimators", "estimator", "base_estimator")


@dataclass(frozen=True)
class VersionKey:
    """Which registered version: a project's model and version number."""

    project: str
    model: str
    version: str

    def __str__(self) -> str:
        return f"{self.project}/{self.model}/{self.version}"


@dataclass(frozen=True)
class RuntimeOptions:
    """How versions are loaded and batched.

    Args:
        max_batch_size: The most rows a batch gathers.
        max_wait_ms: The longest a batch gathers after its first request (see ``batching``).
        prefer_onnx: Run a version's ``onnx`` format when it has one and onnxruntime is installed.
        trust: Allow code-bearing formats (pyfunc) and unvetted types to load.
        inline_budget_ms: See :data:`INLINE_BUDGET_MS`.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    prefer_onnx: bool = True
    trust: bool = False
    inline_budget_ms: float = INLINE_BUDGET_MS

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise InvalidInput("max_batch_size must be at least 1", {"field": "max_batch_size"})
        if self.max_wait_ms < 0:
            raise InvalidInput("max_wait_ms must not be negative", {"field": "max_wait_ms"})


@dataclass(frozen=True)
class OutputSpec:
    """What a version answers: the output's name, NumPy dtype name and shape (``-1`` for the batch)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


Predict = Callable[[Any], Any]


class ServedVersion:
    """One loaded, warmed-up model version, with its batcher.

    Attributes:
        key: Which version.
        version: Its registry record.
        format: ``"onnx"`` or ``"model"`` (the primary flavor).
        flavor: The flavor that runs it.
        signature: Its signature (None: inputs are passed to the model unchecked).
        codec: The fast path for all-numeric column signatures, else None.
        output: What it answers (known after the warm-up).
        row_ms: The warm-up's time for one row; ``batch_ms`` for a full batch.
        batcher: Where requests queue.
        inflight: Requests that picked this version and have not finished.
    """

    def __init__(
        self,
        key: VersionKey,
        loaded: LoadedModel,
        fmt: str,
        predict: Predict,
        options: RuntimeOptions,
        on_batch: Callable[[ServedVersion, int, int], None] | None = None,
    ) -> None:
        self.key = key
        self.version: ModelVersion = loaded.version
        self.format = fmt
        self.flavor = loaded.flavor
        self.signature: Signature | None = loaded.signature
        self.codec = ColumnsCodec.for_schema(self.signature.inputs) if self.signature else None
        self.output = OutputSpec(_output_name(self.signature), "float64", (-1,))
        self.row_ms = 0.0
        self.batch_ms = 0.0
        self.inflight = 0
        self.retired = False
        self.closed = False
        self._predict = predict
        self._options = options
        self._loaded: LoadedModel | None = loaded
        callback = None if on_batch is None else (lambda rows, requests: on_batch(self, rows, requests))
        self.batcher = Batcher(
            self.run_items,
            max_batch_size=options.max_batch_size,
            max_wait_ms=options.max_wait_ms,
            on_batch=callback,
            name=f"{key.model}-{key.version}",
        )

    def __repr__(self) -> str:
        return f"ServedVersion({self.key}, format={self.format!r}, inline={self.batcher.inline})"

    @property
    def schema(self) -> Schema | None:
        """The input schema, if the version has a signature."""
        return self.signature.inputs if self.signature is not None else None

    def enforce(self, data: Any) -> Any:
        """Check ``data`` with the signature's full rules and return the model-ready item.

        For an all-numeric columns signature the item is the same array the fast path gives.

        Raises:
            Unprocessable: When the signature refuses it, naming the field.
        """
        if self.signature is None:
            return data
        try:
            enforced = self.signature.inputs.enforce(data)
        except Unprocessable:
            raise
        except InvalidInput as exc:
            raise Unprocessable(exc.message, exc.details) from None
        if self.codec is not None:
            return np.ascontiguousarray(enforced.to_numpy(dtype=self.codec.dtype))
        return enforced

    async def predict(self, item: Any, rows: int) -> Any:
        """Run one request's item through the batcher and return its rows' answers (an ndarray).

        Raises:
            Exception: What the model raised on it.
        """
        return await self.batcher.submit(item, rows)

    def run_items(self, items: Sequence[Any]) -> list[Any]:
        """Run one batch: join the items, predict once, split the answers by item.

        Args:
            items: Model-ready items (arrays, or DataFrames for signatures off the fast path).

        Raises:
            RuntimeError: If the model returns a different number of answers than rows.
        """
        if len(items) == 1:
            return [self._answer(items[0], _rows(items[0]))]
        sizes = [_rows(item) for item in items]
        if all(isinstance(item, np.ndarray) for item in items):
            joined: Any = np.concatenate(items)
        else:
            import pandas as pd

            joined = pd.concat(items, ignore_index=True)
        answers = self._answer(joined, sum(sizes))
        out = []
        start = 0
        for size in sizes:
            out.append(answers[start : start + size])
            start += size
        return out

    def _answer(self, item: Any, rows: int) -> Any:
        answers = self._predict(item)
        if not isinstance(answers, np.ndarray):
            answers = answers.to_numpy() if hasattr(answers, "to_numpy") else np.asarray(answers)
        if answers.ndim == 0 or answers.shape[0] != rows:
            found = "a scalar" if answers.ndim == 0 else f"{answers.shape[0]} answers"
            raise RuntimeError(f"the model returned {found} for {rows} rows")
        return answers

    def warm_up(self) -> None:
        """Predict a sample built from the signature, time it and choose inline or threaded batches.

        Raises:
            InvalidInput: If the version cannot predict a sample its own signature allows (numbers only;
                for other signatures a failed warm-up is logged and the version runs in a thread).
        """
        sample = _sample(self, 1)
        if sample is None:
            self.batcher.inline = False
            return
        try:
            first = self.run_items([sample])[0]
            self.row_ms = _best_ms(lambda: self.run_items([sample]))
            batch = _sample(self, self._options.max_batch_size)
            self.batch_ms = _best_ms(lambda: self.run_items([batch]))
        except Exception as exc:
            schema = self.schema
            numeric = self.codec is not None or (schema is not None and schema.tensor is not None)
            if numeric:
                raise InvalidInput(
                    f"{self.version.uri} fails on a sample its signature allows: {type(exc).__name__}: {exc}",
                    {"field": "version"},
                ) from exc
            log.warning("warm-up of %s failed (%s); it runs in a thread", self.key, exc)
            self.batcher.inline = False
            return
        self.output = OutputSpec(self.output.name, first.dtype.name, (-1, *first.shape[1:]))
        self.batcher.inline = self.batch_ms <= self._options.inline_budget_ms
        self.batcher.gather = self.row_ms >= GATHER_FROM_MS

    def close(self) -> None:
        """Drop the model and stop the batcher's thread (call when no request uses it any more)."""
        self.closed = True
        self.batcher.close()
        self._loaded = None
        self._predict = _unloaded


def _unloaded(_item: Any) -> Any:
    raise RuntimeError("this model version was unloaded")


def _rows(item: Any) -> int:
    return len(item)


def _best_ms(action: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def _output_name(signature: Signature | None) -> str:
    outputs = signature.outputs if signature is not None else None
    if outputs is not None and len(outputs.columns) == 1:
        return outputs.columns[0].name
    return "output"


_DEFAULTS: Final[Mapping[str, Any]] = {
    "bool": False, "int32": 0, "int64": 0, "float32": 0.0, "float64": 0.0,
    "string": "", "binary": b"", "datetime": "1970-01-01T00:00:00",
}  # fmt: skip


def _sample(served: ServedVersion, rows: int) -> Any:
    """A model-ready input of ``rows`` rows built from the signature, or None without a signature."""
    schema = served.schema
    if schema is None:
        return None
    if served.codec is not None:
        return np.zeros((rows, served.codec.width), dtype=served.codec.dtype)
    if schema.tensor is not None:
        shape = tuple(rows if axis == 0 else max(size, 1) for axis, size in enumerate(schema.tensor.shape))
        return np.zeros(shape, dtype=schema.tensor.dtype)
    return served.enforce({c.name: [_DEFAULTS[c.type]] * rows for c in schema.columns})


# -- loading ------------------------------------------------------------------------------------------


def onnx_available() -> bool:
    """Whether onnxruntime can be imported here."""
    return importlib.util.find_spec("onnxruntime") is not None


def load_served(
    backend: RegistryBackend,
    version: ModelVersion,
    cache_root: Path,
    project: str,
    options: RuntimeOptions | None = None,
    on_batch: Callable[[ServedVersion, int, int], None] | None = None,
) -> ServedVersion:
    """Load, verify and warm up one version for serving.

    Args:
        backend: The registry the version is read from.
        version: The resolved version.
        cache_root: Where bundles are materialised.
        project: The project the version belongs to (part of its key).
        options: Batching and loading choices.
        on_batch: Called after each batch with the version, its rows and its requests (metrics).

    Returns:
        The version, ready for requests.

    Raises:
        IntegrityError: If the version fails verification (unsigned, altered).
        UnsafeArtifact: If it needs ``trust`` to load.
        InvalidInput: If it cannot be rebuilt here, or fails its warm-up.
    """
    options = options or RuntimeOptions()
    fmt = ONNX_FORMAT if options.prefer_onnx and ONNX_FORMAT in version.formats and onnx_available() else None
    fmt = fmt or PRIMARY_FORMAT
    loaded = load_version(backend, version, cache_root, fmt, options.trust)
    manifest = version.manifest if fmt == PRIMARY_FORMAT else version.formats[fmt]
    flavor_options = dict(manifest.get("flavor_options") or {})
    codec = ColumnsCodec.for_schema(loaded.signature.inputs) if loaded.signature else None
    names = codec.names if codec is not None else None
    if loaded.flavor == "onnx":
        predict = _onnx_predict(StoredBundle(backend, version, fmt, cache_root), loaded, flavor_options)
    elif loaded.flavor == "sklearn":
        predict = _sklearn_predict(loaded, flavor_options, names)
    else:
        predict = _flavor_predict(loaded, flavor_options, names)
    served = ServedVersion(
        VersionKey(project, version.model, version.version), loaded, fmt, predict, options, on_batch
    )
    served.warm_up()
    log.info(
        "loaded %s (%s, %s): %.3f ms a row, %.3f ms a batch of %d; batches run %s%s",
        served.key,
        fmt,
        loaded.flavor,
        served.row_ms,
        served.batch_ms,
        options.max_batch_size,
        "in the event loop" if served.batcher.inline else "in a thread",
        " and gather" if served.batcher.gather else "",
    )
    return served


def _onnx_predict(bundle: StoredBundle, loaded: LoadedModel, options: Mapping[str, Any]) -> Predict:
    import onnxruntime

    from steward.registry.flavors.onnx import MODEL_FILE, input_feeds

    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        bundle.read_bytes(MODEL_FILE), settings, providers=["CPUExecutionProvider"]
    )
    inputs = session.get_inputs()
    output = str(options.get("output") or session.get_outputs()[0].name)
    single = inputs[0].name if len(inputs) == 1 else None
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(inputs[0].type)
    outputs = [output]

    def predict(item: Any) -> Any:
        if single is not None and dtype is not None and isinstance(item, np.ndarray):
            return session.run(outputs, {single: item.astype(dtype, copy=False)})[0]
        return session.run(outputs, input_feeds(session, item))[0]

    return predict


def _sklearn_predict(loaded: LoadedModel, options: Mapping[str, Any], names: Sequence[str] | None) -> Predict:
    estimator = loaded.native
    method = getattr(estimator, str(options.get("predict_fn", "predict")), None)
    if names is None or not callable(method):  # off the fast path: the flavor takes what enforce gave
        return _flavor_predict(loaded, options, names)
    if _drop_name_check(estimator, names):
        return method  # type: ignore[no-any-return]
    frame_of = _frame_maker(names)
    return lambda item: method(frame_of(item))


def _flavor_predict(loaded: LoadedModel, options: Mapping[str, Any], names: Sequence[str] | None) -> Predict:
    flavor = get_flavor(loaded.flavor)
    native = loaded.native
    frame_of = _frame_maker(names) if names is not None else None

    def predict(item: Any) -> Any:
        if frame_of is not None and isinstance(item, np.ndarray):
            item = frame_of(item)
        return flavor.predict(native, item, options)

    return predict


def _frame_maker(names: Sequence[str]) -> Callable[[np.ndarray[Any, Any]], Any]:
    import pandas as pd

    columns = list(names)
    return lambda array: pd.DataFrame(array, columns=columns, copy=False)


def _drop_name_check(estimator: Any, names: Sequence[str]) -> bool:
    """Switch off the feature-name check of a plain estimator, or of a pipeline of plain steps, whose
    fitted names are the signature's in order; return whether the estimator now takes arrays (one fitted
    on an array always does)."""
    steps = [step for _, step in getattr(estimator, "steps", [("", estimator)])]
    steps = [step for step in steps if step not in (None, "passthrough")]
    fitted = [step for step in steps if "feature_names_in_" in vars(step)]
    if not fitted:
        return True
    for step in steps:
        if any(hasattr(step, name) for name in _META_ATTRIBUTES) or hasattr(step, "steps"):
            return False
        config = getattr(step, "_sklearn_output_config", {})
        if any(value not in (None, "default") for value in config.values()):
            return False
    if list(vars(steps[0]).get("feature_names_in_", ())) != list(names):
        return False
    for step in fitted:
        del step.feature_names_in_
    return True
