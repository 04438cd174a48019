"""Derive a strict JSON Schema of KServe's ``InferenceService`` (serving.kserve.io/v1beta1) from the
``kserve`` package on PyPI, to validate exported manifests against.

No PyPI package ships the InferenceService CRD or its OpenAPI document. The ``kserve`` wheel does ship
the Python models generated from that OpenAPI document (``kserve/models/v1beta1_*.py``): each class
lists its fields with their types (``openapi_types``), their JSON names (``attribute_map``), and its
required fields (the setters that refuse ``None``). This script reads those facts out of the wheel
without importing or installing it (``kserve`` pins ``pandas<3``, which Steward cannot take), and writes
one JSON Schema (draft 2020-12) where

- every KServe object is closed (``additionalProperties: false``), so a misspelt field fails;
- every field has its generated type, so ``canaryTrafficPercent: "20"`` fails;
- Kubernetes types (``V1Container``, ``V1ResourceRequirements`` …) are ``$ref`` s into the strict
  Kubernetes definitions that ``kubernetes-validate`` ships, resolved when the test validates.

Regenerate after a KServe release::

    pip download kserve==0.21.0 --no-deps -d /tmp/kserve
    .venv/bin/python -m tests.deploy.derive_kserve_schema /tmp/kserve/kserve-0.21.0-py3-none-any.whl

The result is ``tests/deploy/schemas/inferenceservice-serving.kserve.io-v1beta1.json``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "schemas" / "inferenceservice-serving.kserve.io-v1beta1.json"
K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
"""The ``$id`` of kubernetes-validate's ``_definitions.json``; ``$ref`` s below point into it."""

ROOT = "V1beta1InferenceService"
PRIMITIVES: Mapping[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string"},
    "date": {"type": "string"},
    "object": {},
}
_LIST = re.compile(r"^list\[(?P<item>.+)\]$")
_DICT = re.compile(r"^dict\(str, (?P<value>.+)\)$")
_REQUIRED = re.compile(r"Invalid value for `(?P<attr>\w+)`, must not be `None`")
_K8S_GROUPED = re.compile(r"^K8sIoApi(?P<group>[A-Z][a-z]+)V(?P<ver>\d)(?P<kind>\w+)$")
_K8S_PLAIN = re.compile(r"^V(?P<ver>\d)(?P<kind>[A-Z]\w+)$")
# Where an unqualified Kubernetes type name (V1Container) is looked for, in this order.
_K8S_PREFIXES = ("io.k8s.api.core", "io.k8s.apimachinery.pkg.apis.meta", "io.k8s.api.autoscaling")


class _Model:
    def __init__(self, types: dict[str, str], names: dict[str, str], required: set[str]) -> None:
        self.types, self.names, self.required = types, names, required


def _read_models(wheel: zipfile.ZipFile) -> dict[str, _Model]:
    models: dict[str, _Model] = {}
    for info in wheel.infolist():
        if not re.fullmatch(r"kserve/models/[a-z0-9_]+\.py", info.filename):
            continue
        source = wheel.read(info).decode("utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                models[node.name] = _class_facts(node, source)
    return models


def _class_facts(node: ast.ClassDef, source: str) -> _Model:
    found: dict[str, dict[str, str]] = {}
    for item in node.body:
        if not isinstance(item, ast.Assign):
            continue
        target = item.targets[0]
        if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
            found[target.id] = ast.literal_eval(item.value)
    segment = ast.get_source_segment(source, node) or ""
    required = {m["attr"] for m in _REQUIRED.finditer(segment)}
    return _Model(found.get("openapi_types", {}), found.get("attribute_map", {}), required)


def _k8s_ref(name: str, definitions: Mapping[str, Any]) -> dict[str, Any] | None:
    # ResourceQuantity and KServe's MetricQuantity are Kubernetes quantities ("500m", 2) without a model.
    if name in ("ResourceQuantity", "V1beta1MetricQuantity"):
        return {"$ref": f"{K8S_DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    if grouped := _K8S_GROUPED.match(name):
        key = f"io.k8s.api.{grouped['group'].lower()}.v{grouped['ver']}.{grouped['kind']}"
        return {"$ref": f"{K8S_DEFINITIONS}#/$defs/{key}"} if key in definitions else None
    if plain := _K8S_PLAIN.match(name):
        for prefix in _K8S_PREFIXES:
            key = f"{prefix}.v{plain['ver']}.{plain['kind']}"
            if key in definitions:
                return {"$ref": f"{K8S_DEFINITIONS}#/$defs/{key}"}
    return None


def derive(wheel_path: Path, k8s_definitions: Mapping[str, Any]) -> dict[str, Any]:
    """Return the InferenceService schema derived from the kserve wheel at ``wheel_path``.

    Raises:
        SystemExit: If a type name resolves neither to a KServe model nor to a Kubernetes definition.
    """
    with zipfile.ZipFile(wheel_path) as wheel:
        models = _read_models(wheel)
    defs: dict[str, Any] = {}
    pending = [ROOT]

    def schema_of(type_name: str) -> dict[str, Any]:
        if type_name in PRIMITIVES:
            return dict(PRIMITIVES[type_name])
        if item := _LIST.match(type_name):
            return {"type": "array", "items": schema_of(item["item"])}
        if value := _DICT.match(type_name):
            return {"type": "object", "additionalProperties": schema_of(value["value"])}
        if type_name in models:
            pending.append(type_name)
            return {"$ref": f"#/$defs/{type_name}"}
        if (ref := _k8s_ref(type_name, k8s_definitions)) is not None:
            return ref
        if type_name.startswith("Knative"):
            # Knative's types appear only under ``status``, which no exported manifest writes.
            return {"description": f"{type_name}: not modelled by the kserve SDK"}
        raise SystemExit(f"cannot resolve type {type_name!r}")

    while pending:
        name = pending.pop()
        if name in defs:
            continue
        model = models[name]
        defs[name] = {}  # a placeholder, so recursive types terminate
        properties = {model.names[attr]: schema_of(kind) for attr, kind in sorted(model.types.items())}
        defs[name] = {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
            "required": sorted(model.names[attr] for attr in model.required),
        }
    root = defs[ROOT]
    # The generated model types apiVersion and kind as plain strings; the CRD serves one group/version.
    root["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    root["properties"]["kind"] = {"const": "InferenceService"}
    root["required"] = sorted({*root["required"], "apiVersion", "kind", "metadata", "spec"})
    digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://steward.invalid/schemas/inferenceservice-serving.kserve.io-v1beta1.json",
        "description": (
            f"Derived by tests/deploy/derive_kserve_schema.py from {wheel_path.name} "
            f"(sha256 {digest}): the generated models of KServe's Python SDK."
        ),
        "$ref": f"#/$defs/{ROOT}",
        "$defs": dict(sorted(defs.items())),
    }


def _k8s_definitions() -> Mapping[str, Any]:
    import importlib.resources

    files = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    latest = max(
        (p.name for p in files.iterdir() if p.name.endswith("-local-strict")),
        key=lambda n: tuple(int(x) for x in n[1:].split("-")[0].split(".")),
    )
    definitions: Mapping[str, Any] = json.loads((files / latest / "_definitions.json").read_text())["$defs"]
    return definitions


def main(argv: list[str]) -> None:
    """Write the schema derived from the wheel named in ``argv[0]`` to ``OUTPUT``."""
    if len(argv) != 1:
        raise SystemExit("usage: python -m tests.deploy.derive_kserve_schema KSERVE_WHEEL")
    schema = derive(Path(argv[0]), _k8s_definitions())
    OUTPUT.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(schema['$defs'])} KServe types)")


if __name__ == "__main__":
    main(sys.argv[1:])
