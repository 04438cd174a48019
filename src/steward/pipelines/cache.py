"""Cache keys: one digest of a step's code, inputs, parameters and declared environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import platform
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steward.pipelines.models import OutputRef

if TYPE_CHECKING:
    from steward.pipelines.dsl import Step

_code_digests: dict[int, str] = {}
_env_digests: dict[tuple[str, ...], str] = {}


def code_digest(step: Step) -> str:
    """A digest of the step function's source (its compiled code when the source is not available)."""
    cached = _code_digests.get(id(step.fn))
    if cached is not None:
        return cached
    try:
        text = textwrap.dedent(inspect.getsource(step.fn))
        material = text.encode()
    except (OSError, TypeError):
        code = step.fn.__code__
        material = code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()
    digest = hashlib.sha256(material).hexdigest()
    _code_digests[id(step.fn)] = digest
    return digest


def environment_digest(step: Step) -> str:
    """A digest of the Python version and the installed versions of the step's declared distributions."""
    cached = _env_digests.get(step.environment)
    if cached is not None:
        return cached
    versions = {"python": platform.python_version()}
    for dist in step.environment:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()
    _env_digests[step.environment] = digest
    return digest


def _spec_material(spec: Any) -> Any:
    if isinstance(spec, OutputRef):
        return {"digest": spec.digest, "materializer": spec.materializer}
    kind, value = spec
    if kind == "value":
        return {"value": value}
    if kind == "list":
        return [_spec_material(s) for s in value]
    return {k: _spec_material(s) for k, s in sorted(value.items())}


def cache_key(step: Step, inputs: Mapping[str, Any]) -> str:
    """The key under which ``step`` run on ``inputs`` (input specs) stores its outputs."""
    material = {
        "step": step.reference,
        "code": code_digest(step),
        "env": environment_digest(step),
        "outputs": step.n_outputs,
        "inputs": {arg: _spec_material(spec) for arg, spec in sorted(inputs.items())},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=repr, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
