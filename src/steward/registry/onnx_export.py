"""Convert a scikit-learn model to ONNX, and prove the conversion predicts what the original does.

skl2onnx converts most estimators, but float32 arithmetic, unsupported options or a custom step can
change the answers. ``sklearn_to_onnx`` therefore runs the converted graph with onnxruntime on a
sample and compares it with the estimator before it hands the bytes back. Needs the ``onnx`` extra.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from steward.errors import InvalidInput
from steward.registry.flavors import missing_extra
from steward.registry.flavors.base import type_name

EXPORTABLE: Final = ("predict", "predict_proba", "transform")
"""The ``predict_fn`` values whose output the exported graph reproduces."""


def sklearn_to_onnx(
    estimator: Any, sample: Any, *, predict_fn: str, rtol: float = 1e-4, atol: float = 1e-5
) -> bytes:
    """Convert a fitted estimator to ONNX and check it against the estimator on ``sample``.

    A numeric sample becomes one float32 input named ``X``; a DataFrame with non-numeric columns
    becomes one input per column (float32, int64 or string). Classifiers are converted without
    ZipMap, so their outputs are ``label`` and ``probabilities`` (an array); ``predict`` is compared
    with ``label`` (exactly) and ``predict_proba`` with ``probabilities``. Other estimators have one
    output, compared with ``predict`` or ``transform``.

    Example:
        >>> onnx_bytes = sklearn_to_onnx(clf, X_test, predict_fn="predict_proba")  # doctest: +SKIP

    Args:
        estimator: A fitted scikit-learn estimator or pipeline.
        sample: Rows like the model's input (numpy array or DataFrame); all are compared.
        predict_fn: The estimator method to reproduce: ``predict``, ``predict_proba`` or ``transform``.
        rtol: Relative tolerance of the comparison (numbers only; labels must match exactly).
        atol: Absolute tolerance of the comparison.

    Returns:
        The serialized ONNX model.

    Raises:
        InvalidInput: If skl2onnx cannot convert the estimator (the message names the type), if
            ``predict_fn`` is not exportable, if the sample is empty, or if the converted model
            disagrees with the estimator (the message gives the largest difference); also when the
            ``onnx`` extra is not installed.
    """
    try:
        import onnxruntime
        import skl2onnx
        from sklearn.base import is_classifier

        from steward.registry.flavors.onnx import input_feeds
    except ImportError as exc:
        raise missing_extra("onnx", exc) from exc

    if predict_fn not in EXPORTABLE:
        raise InvalidInput(
            f"predict_fn {predict_fn!r} cannot be exported to ONNX; choose one of {', '.join(EXPORTABLE)}",
            {"field": "predict_fn", "choices": list(EXPORTABLE)},
        )
    method = getattr(estimator, predict_fn, None)
    if not callable(method):
        raise InvalidInput(f"{type_name(estimator)} has no method {predict_fn!r}", {"field": "predict_fn"})
    converted = _onnx_sample(sample)
    if len(converted) == 0:
        raise InvalidInput("the sample for the ONNX comparison has no rows", {"field": "sample"})

    try:
        classifier = bool(is_classifier(estimator))
    except AttributeError:  # not a scikit-learn estimator (no __sklearn_tags__); skl2onnx refuses it below
        classifier = False
    options = {id(estimator): {"zipmap": False}} if classifier else None
    try:
        model = skl2onnx.to_onnx(estimator, converted[:1], options=options)
    except Exception as exc:  # skl2onnx raises RuntimeError subclasses, NotImplementedError, TypeError…
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(
            f"skl2onnx cannot convert {type_name(estimator)}: {reason}",
            {"field": "model", "type": type_name(estimator)},
        ) from exc
    onnx_bytes: bytes = model.SerializeToString()

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = [node.name for node in session.get_outputs()]
    wanted = _output_name(outputs, classifier, predict_fn)
    actual = np.asarray(session.run([wanted], input_feeds(session, converted))[0])
    expected = np.asarray(method(sample))
    exact = classifier and predict_fn == "predict"
    _compare(type_name(estimator), predict_fn, expected, actual, exact=exact, rtol=rtol, atol=atol)
    return onnx_bytes


def _onnx_sample(sample: Any) -> Any:
    """The sample with the types skl2onnx and onnxruntime expect: float32 numbers, int64, strings."""
    if isinstance(sample, pd.DataFrame):
        if all(pd.api.types.is_numeric_dtype(dtype) for dtype in sample.dtypes):
            return sample.to_numpy(dtype=np.float32)
        columns: dict[Any, pd.Series[Any]] = {}
        for name in sample.columns:
            column = sample[name]
            if pd.api.types.is_float_dtype(column):
                columns[name] = column.astype(np.float32)
            elif pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
                columns[name] = column.astype(np.int64)
            else:
                columns[name] = column.astype(str)
        return pd.DataFrame(columns, index=sample.index)
    array = np.asarray(sample)
    return array.astype(np.float32) if np.issubdtype(array.dtype, np.number) else array


def _output_name(outputs: list[str], classifier: bool, predict_fn: str) -> str:
    if not classifier:
        return outputs[0]
    name = "label" if predict_fn == "predict" else "probabilities"
    if name not in outputs:
        raise InvalidInput(
            f"the converted classifier has outputs {', '.join(outputs)}, not {name!r}", {"field": "model"}
        )
    return name


def _compare(
    what: str, predict_fn: str, expected: Any, actual: Any, *, exact: bool, rtol: float, atol: float
) -> None:
    if expected.size == actual.size:  # a regressor's (n,) against ONNX's (n, 1)
        actual = actual.reshape(expected.shape)
    if expected.shape != actual.shape:
        raise InvalidInput(
            f"the ONNX conversion of {what} returns shape {actual.shape} where {predict_fn} returns "
            f"{expected.shape}",
            {"field": "model"},
        )
    if exact:
        differs = np.flatnonzero(expected.ravel().astype(str) != actual.ravel().astype(str))
        if differs.size:
            row = int(differs[0])
            raise InvalidInput(
                f"the ONNX conversion of {what} predicts other labels than {predict_fn} for {differs.size} "
                f"of {expected.size} rows (first at row {row}: {actual.ravel()[row]!r} instead of "
                f"{expected.ravel()[row]!r})",
                {"field": "model", "mismatches": int(differs.size)},
            )
        return
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    if np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True):
        return
    difference = np.where(np.isnan(actual) & np.isnan(expected), 0.0, np.abs(actual - expected))
    # A NaN on one side only is the worst difference there is.
    worst = np.unravel_index(
        int(np.argmax(np.where(np.isnan(difference), np.inf, difference))), difference.shape
    )
    raise InvalidInput(
        f"the ONNX conversion of {what} disagrees with {predict_fn}: the largest difference is "
        f"{float(difference[worst]):.3g} at {tuple(int(i) for i in worst)} "
        f"({float(actual[worst]):.6g} instead of {float(expected[worst]):.6g}; rtol={rtol}, atol={atol})",
        {"field": "model", "max_abs_diff": float(difference[worst])},
    )
