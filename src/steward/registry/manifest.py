"""The bundle manifest, ``steward-model.yaml``: what a version is, built from what the client sent and
what the registry knows (number, run, time), plus the lineage edges a new version leaves."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from steward.core.time import from_ms
from steward.errors import InvalidInput
from steward.registry.flavors import FLAVOR_NAMES
from steward.registry.models import MANIFEST_NAME, ModelFile, VersionSpec

MANIFEST_FORMAT = 1
"""Bumped when the manifest's layout changes incompatibly."""
_FILE_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9._\-/ ]{1,512}$")


def check_files(files: Sequence[ModelFile]) -> list[ModelFile]:
    """Return ``files`` sorted by path, after checking the paths are relative, plain and unique.

    Raises:
        InvalidInput: For no files, an absolute path, ``..``, odd characters, or a path listed twice.
    """
    if not files:
        raise InvalidInput("a model version needs at least one file", {"field": "files"})
    seen: set[str] = set()
    for f in files:
        if not _FILE_PATH.match(f.path) or f.path == MANIFEST_NAME:
            raise InvalidInput(f"invalid bundle file path {f.path!r}", {"field": "files", "path": f.path})
        if f.path in seen:
            raise InvalidInput(f"bundle file {f.path!r} listed twice", {"field": "files", "path": f.path})
        seen.add(f.path)
    return sorted(files, key=lambda f: f.path)


def check_flavor(flavor: str) -> str:
    """Return ``flavor`` if Steward can load it.

    Raises:
        InvalidInput: For an unknown flavor name.
    """
    if flavor not in FLAVOR_NAMES:
        raise InvalidInput(
            f"unknown flavor {flavor!r}: use one of {', '.join(FLAVOR_NAMES)}", {"field": "flavor"}
        )
    return flavor


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The ``steward-model.yaml`` text of a manifest (keys in a fixed, readable order)."""
    # libyaml's emitter when PyYAML has it: the pure-Python one takes ~25 ms for a 30-column signature.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(dict(manifest), Dumper=dumper, sort_keys=False, allow_unicode=True)
    return text.encode()


def version_manifest(
    model: str,
    version: str,
    spec: VersionSpec,
    files: Sequence[ModelFile],
    run: Mapping[str, Any] | None,
    run_metrics: Mapping[str, float],
    now: int,
    actor: str,
) -> dict[str, Any]:
    """The manifest of a new version's primary bundle.

    Args:
        run: Facts of the producing run (id, name, experiment, git commit), if any.
        run_metrics: The run's latest metrics; ``spec.metrics`` wins where both name a key.
        now: Creation time, Unix ms.
    """
    return {
        "steward_model": MANIFEST_FORMAT,
        "name": model,
        "version": version,
        "flavor": spec.flavor,
        "flavor_options": dict(spec.flavor_options),
        "files": [f.to_json() for f in files],
        "signature": spec.signature.to_dict() if spec.signature else None,
        "requirements": list(spec.requirements),
        "python_version": spec.python_version,
        "run": dict(run) if run is not None else None,
        "datasets": dict(spec.datasets),
        "metrics": {**run_metrics, **spec.metrics},
        "description": spec.description,
        "created_at": from_ms(now).isoformat(),
        "created_by": actor,
    }


def format_manifest(
    primary: Mapping[str, Any],
    name: str,
    flavor: str,
    options: Mapping[str, Any],
    files: Sequence[ModelFile],
    now: int,
    actor: str,
) -> dict[str, Any]:
    """The manifest of a further format (``onnx`` …) of a version; it keeps the version's signature.

    ``options["requirements"]``, if present, becomes the format's requirements.
    """
    flavor_options = {k: v for k, v in options.items() if k != "requirements"}
    return {
        "steward_model": MANIFEST_FORMAT,
        "name": primary["name"],
        "version": primary["version"],
        "format": name,
        "flavor": flavor,
        "flavor_options": flavor_options,
        "files": [f.to_json() for f in files],
        "signature": primary.get("signature"),
        "requirements": list(options.get("requirements") or ()),
        "created_at": from_ms(now).isoformat(),
        "created_by": actor,
    }


def lineage_edges(version_id: str, spec: VersionSpec, now: int) -> list[dict[str, Any]]:
    """The arrows into a new version: each dataset version it was ``trained_on`` and the run that
    ``produced`` it."""

    def edge(kind: str, source: str, relation: str, role: str = "") -> dict[str, Any]:
        return {
            "source_kind": kind,
            "source_id": source,
            "target_kind": "model_version",
            "target_id": version_id,
            "relation": relation,
            "role": role,
            "created_at": now,
        }

    edges = [edge("dataset_version", d, "trained_on", r) for r, d in sorted(spec.datasets.items())]
    if spec.run_id is not None:
        edges.append(edge("run", spec.run_id, "produced"))
    return edges
