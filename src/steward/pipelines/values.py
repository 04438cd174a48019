"""``steward.Model``: what a training step returns, so the pipeline stores it as a registry bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steward.core.signature import Signature


@dataclass
class Model:
    """A trained model passed between steps: stored in a safe registry format (skops, ONNX …).

    A step annotated ``-> steward.Model`` may return the estimator itself; the pipeline wraps it.
    Attribute access falls through to the native object, so ``model.predict(X)`` works downstream.

    Attributes:
        native: The estimator, ONNX model, torch module or ``PythonModel``.
        flavor: The registry flavor; detected from ``native`` if omitted.
        signature: The inputs it takes, recorded with it (and with a registered version made from it).
        options: Flavor options (``predict_fn="predict_proba"`` …).
    """

    native: Any
    flavor: str | None = None
    signature: Signature | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("native", "flavor", "signature", "options"):
            raise AttributeError(name)
        return getattr(self.native, name)

    def __repr__(self) -> str:
        return f"Model({type(self.native).__name__}, flavor={self.flavor!r})"
