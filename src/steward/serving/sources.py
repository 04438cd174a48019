"""Traffic sources for ``steward serve``: fixed model references, or a config file naming several.

- :class:`ReferenceSource` serves ``churn@production``, ``churn/1.2.0`` or ``churn`` (its newest READY
  version), each as an endpoint named after the model (``name=ref`` names it otherwise). Aliases are
  resolved again at every poll, so moving ``production`` swaps the served version, blue-green: the new
  version loads and warms up while the old one answers, then takes all traffic at once.
- :class:`ConfigSource` reads a YAML or JSON file (read again when it changes) such as::

      project: default            # optional: the project of every endpoint below
      endpoints:
        churn: churn@production   # an endpoint serving one reference
        fraud:                    # or a traffic split across versions
          model: fraud
          sticky_key: user_id
          arms:
            - {version: 1.4.0, role: stable, weight: 0.9}
            - {alias: staging, role: canary, weight: 0.1}
            - {version: 1.5.0, role: shadow}
        risk:                     # requests carry entity keys; the inputs come from the online store
          ref: risk@production
          feature_service: risk_features

  ``endpoints`` may also be a list of references. ``feature_service`` may be given to a split or a ``ref``
  mapping. A broken edit is reported and the last good plans
  stay in force.

A plan's ``revision`` grows each time what it resolves to changes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import yaml

from steward.core.acting import Acting, acting
from steward.core.names import validate_name
from steward.errors import InvalidInput, NotFound, StewardError
from steward.registry.models import RegistryBackend
from steward.serving.models import Arm, TrafficPlan

log = logging.getLogger("steward.serving")

_REFERENCE: Final = re.compile(
    r"^(?:(?P<endpoint>[A-Za-z0-9][A-Za-z0-9._-]{0,127})=)?(?:models:/)?"
    r"(?P<model>[A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:/(?P<version>[^/@\s]+)|@(?P<alias>[^/@\s]+))?$"
)
_ARM_KEYS: Final = frozenset({"version", "alias", "role", "weight"})
_ENDPOINT_KEYS: Final = frozenset({"model", "project", "sticky_key", "arms", "ref", "feature_service"})


@dataclass(frozen=True)
class Reference:
    """A model version by number, alias, or (neither) its newest READY version.

    Attributes:
        endpoint: The endpoint serving it.
        model: The registered model.
        version: A version number, or None.
        alias: An alias (``production``), or None.
    """

    endpoint: str
    model: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        """The ``models:/`` reference the registry resolves."""
        if self.version is not None:
            return f"models:/{self.model}/{self.version}"
        return f"models:/{self.model}@{self.alias}" if self.alias else f"models:/{self.model}"


def parse_reference(text: str, field: str = "reference") -> Reference:
    """Parse ``churn@production``, ``churn/1.2.0``, ``churn``, ``models:/churn@production`` or
    ``name=churn@production``.

    Args:
        text: The reference.
        field: What to name in the error.

    Raises:
        InvalidInput: For anything else.
    """
    match = _REFERENCE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"invalid model reference {text!r}: use NAME@ALIAS, NAME/VERSION or NAME (its newest version), "
            "optionally as ENDPOINT=REFERENCE",
            {"field": field},
        )
    model = match["model"]
    return Reference(match["endpoint"] or model, model, match["version"], match["alias"])


class _Revisions:
    """Numbers each endpoint's plan: the revision grows whenever the plan's content changes."""

    def __init__(self) -> None:
        self._last: dict[str, TrafficPlan] = {}

    def number(self, plan: TrafficPlan) -> TrafficPlan:
        last = self._last.get(plan.endpoint)
        if last is not None and replace(last, revision=plan.revision) == plan:
            return last
        numbered = replace(plan, revision=0 if last is None else last.revision + 1)
        self._last[plan.endpoint] = numbered
        return numbered


class ReferenceSource:
    """Plans for fixed references: one endpoint per reference, all traffic to what it resolves to.

    Args:
        registry: Where references are resolved.
        references: ``churn@production``-style references (see :func:`parse_reference`).
        project: The project the models belong to.
        actor: Who resolves them (recorded nowhere; the registry asks for an acting identity).
        feature_service: The feature service whose online features complete the requests to every
            reference's endpoint (None: requests carry the model's inputs).

    Raises:
        InvalidInput: For a malformed reference or feature service name, or two references serving one
            endpoint name.
    """

    def __init__(
        self,
        registry: RegistryBackend,
        references: Sequence[str],
        project: str,
        actor: str = "steward-serve",
        feature_service: str | None = None,
    ) -> None:
        self._registry = registry
        self.references = [parse_reference(text, f"references[{i}]") for i, text in enumerate(references)]
        if not self.references:
            raise InvalidInput("name at least one model to serve", {"field": "references"})
        _refuse_repeats([ref.endpoint for ref in self.references])
        self.project = validate_name(project, "project")
        self.feature_service = (
            validate_name(feature_service, "feature_service") if feature_service is not None else None
        )
        self._actor = actor
        self._revisions = _Revisions()

    def plans(self) -> list[TrafficPlan]:
        """Resolve every reference now and return one plan per endpoint.

        Raises:
            NotFound: If a model, version or alias does not exist.
        """
        with acting(Acting(self._actor, self.project)):
            resolved = [(ref, self._registry.resolve(ref.uri).version) for ref in self.references]
        return [
            self._revisions.number(
                TrafficPlan(
                    ref.endpoint,
                    ref.model,
                    (Arm(version, "stable", 1.0),),
                    self.project,
                    feature_service=self.feature_service,
                )
            )
            for ref, version in resolved
        ]


class ConfigSource:
    """Plans from a YAML or JSON file naming several endpoints (format in the module docstring).

    Args:
        registry: Where versions and aliases are resolved.
        path: The file.
        project: The project of endpoints the file does not place (the file's ``project`` first).
        actor: Who resolves them.

    Raises:
        InvalidInput: If the file is malformed (``details["field"]`` is the path inside it).
        NotFound: If the file does not exist.
    """

    def __init__(
        self, registry: RegistryBackend, path: Path, project: str = "default", actor: str = "steward-serve"
    ) -> None:
        self._registry = registry
        self.path = Path(path)
        self._project = project
        self._actor = actor
        self._revisions = _Revisions()
        self._stamp: tuple[int, int] | None = None
        self._specs: list[_EndpointSpec] = []
        self._read()

    def plans(self) -> list[TrafficPlan]:
        """Read the file again if it changed, resolve every alias now and return the plans.

        Raises:
            InvalidInput: If the file became malformed.
            NotFound: If a model, version or alias does not exist.
        """
        self._read()
        plans = []
        for spec in self._specs:
            with acting(Acting(self._actor, spec.project)):
                arms = tuple(
                    Arm(self._resolve(spec.model, version, alias, spec.field), role, weight)
                    for version, alias, role, weight in spec.arms
                )
            try:
                plan = TrafficPlan(
                    spec.name, spec.model, arms, spec.project, spec.sticky_key,
                    feature_service=spec.feature_service,
                )  # fmt: skip
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{self.path}: endpoint {spec.name!r}: {exc.message}", {"field": f"{spec.field}.arms"}
                ) from None
            plans.append(self._revisions.number(plan))
        return plans

    def _resolve(self, model: str, version: str | None, alias: str | None, field: str) -> str:
        uri = (
            f"models:/{model}/{version}"
            if version
            else f"models:/{model}@{alias}"
            if alias
            else f"models:/{model}"
        )
        try:
            return self._registry.resolve(uri).version
        except NotFound as exc:
            raise NotFound(f"{self.path}: {field}: {exc.message}", {"field": field}) from None

    def _read(self) -> None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            raise NotFound(f"config file {str(self.path)!r} does not exist", {"field": "config"}) from None
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp == self._stamp:
            return
        text = self.path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if self.path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise InvalidInput(
                f"{self.path} is not valid {self.path.suffix.lstrip('.') or 'YAML'}: {exc}",
                {"field": "config"},
            ) from None
        specs = _parse_config(data, self._project, str(self.path))
        self._specs = specs
        self._stamp = stamp


@dataclass(frozen=True)
class _EndpointSpec:
    name: str
    model: str
    project: str
    sticky_key: str | None
    arms: tuple[tuple[str | None, str | None, str, float], ...]
    field: str
    feature_service: str | None = None


def _parse_config(data: Any, project: str, where: str) -> list[_EndpointSpec]:
    def refuse(message: str, field: str) -> InvalidInput:
        return InvalidInput(f"{where}: {field}: {message}", {"field": field})

    if not isinstance(data, Mapping) or "endpoints" not in data:
        raise refuse("the file must be a mapping with 'endpoints' (and optionally 'project')", "endpoints")
    unknown = set(data) - {"endpoints", "project"}
    if unknown:
        raise refuse(f"unknown keys {', '.join(sorted(map(str, unknown)))}", sorted(map(str, unknown))[0])
    default_project = data.get("project", project)
    if not isinstance(default_project, str):
        raise refuse("must be a project name", "project")
    entries = data["endpoints"]
    items: list[tuple[str | None, Any]]
    if isinstance(entries, Mapping):
        items = [(str(name), value) for name, value in entries.items()]
    elif isinstance(entries, list):
        items = [(None, value) for value in entries]
    else:
        raise refuse("must be a mapping of endpoint names, or a list of references", "endpoints")
    if not items:
        raise refuse("names no endpoint", "endpoints")
    specs = []
    for index, (name, value) in enumerate(items):
        field = f"endpoints.{name}" if name is not None else f"endpoints[{index}]"
        try:
            specs.append(_parse_endpoint(name, value, default_project, field))
        except StewardError as exc:
            if exc.details.get("field", "").startswith("endpoints"):
                raise InvalidInput(f"{where}: {exc.message}", exc.details) from None
            raise refuse(exc.message, field) from None
    _refuse_repeats([spec.name for spec in specs])
    return specs


def _parse_endpoint(name: str | None, value: Any, project: str, field: str) -> _EndpointSpec:
    if isinstance(value, str):
        ref = parse_reference(value, field)
        endpoint = validate_name(name, "endpoint") if name is not None else ref.endpoint
        return _EndpointSpec(
            endpoint,
            ref.model,
            validate_name(project, "project"),
            None,
            ((ref.version, ref.alias, "stable", 1.0),),
            field,
        )
    if not isinstance(value, Mapping):
        raise InvalidInput("must be a reference or a mapping with 'model' and 'arms'", {"field": field})
    unknown = set(value) - _ENDPOINT_KEYS
    if unknown:
        raise InvalidInput(f"unknown keys {', '.join(sorted(map(str, unknown)))}", {"field": field})
    service = value.get("feature_service")
    if service is not None:
        try:
            validate_name(service, "feature_service")
        except InvalidInput as exc:
            raise InvalidInput(exc.message, {"field": f"{field}.feature_service"}) from None
    if "ref" in value:
        spec = _parse_endpoint(name, value["ref"], str(value.get("project", project)), f"{field}.ref")
        return replace(spec, sticky_key=value.get("sticky_key"), field=field, feature_service=service)
    model = validate_name(value.get("model"), "model")
    endpoint = validate_name(name if name is not None else model, "endpoint")
    arms_data = value.get("arms")
    if not isinstance(arms_data, list) or not arms_data:
        raise InvalidInput("'arms' must be a non-empty list", {"field": f"{field}.arms"})
    arms = []
    for index, arm in enumerate(arms_data):
        where = f"{field}.arms[{index}]"
        if (
            not isinstance(arm, Mapping)
            or not set(arm) <= _ARM_KEYS
            or ("version" in arm) == ("alias" in arm)
        ):
            raise InvalidInput(
                "an arm is {version|alias, role, weight}: exactly one of version or alias", {"field": where}
            )
        weight = arm.get("weight", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidInput("weight must be a number in [0, 1]", {"field": f"{where}.weight"})
        version = str(arm["version"]) if "version" in arm else None
        alias = str(arm["alias"]) if "alias" in arm else None
        role = str(arm.get("role", "stable"))
        try:
            Arm("0", role, float(weight))  # the contract's own checks of role and weight
        except InvalidInput as exc:
            raise InvalidInput(
                exc.message, {"field": f"{where}.{exc.details.get('field', 'role')}"}
            ) from None
        arms.append((version, alias, role, float(weight)))
    sticky = value.get("sticky_key")
    if sticky is not None and not isinstance(sticky, str):
        raise InvalidInput("sticky_key must be a string", {"field": f"{field}.sticky_key"})
    project_name = validate_name(value.get("project", project), "project")
    return _EndpointSpec(endpoint, model, project_name, sticky, tuple(arms), field, service)


def _refuse_repeats(names: Sequence[str]) -> None:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(
            f"endpoint {twice[0]!r} is named twice; give one of them another name with NAME=REFERENCE",
            {"field": "endpoint"},
        )
