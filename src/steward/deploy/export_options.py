"""What every export target shares: the options, their checks, names, labels and the server's command.

``ExportOptions`` holds what a user may choose (image, namespace, replicas, resources …) with defaults
that run a small production service; ``check`` refuses bad values with an ``InvalidInput`` naming the
option. Everything here is pure: it reads a ``ModelVersion`` and the options, and returns values.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Final

from steward.core.names import NAME_PATTERN
from steward.errors import Conflict, InvalidInput
from steward.registry.models import ModelVersion, VersionStatus

CONTAINER_PORT: Final = 8080
"""The port ``steward serve`` listens on inside the container."""

LIVE_PATH: Final = "/v2/health/live"
"""The Open Inference Protocol's liveness route: the process answers."""

READY_PATH: Final = "/v2/health/ready"
"""The Open Inference Protocol's readiness route: every model is loaded and warm."""

STEWARD_HOME: Final = "/var/lib/steward"
"""Where the server keeps its cache in the container (an ``emptyDir`` on Kubernetes)."""

LABEL_PREFIX: Final = "steward.dev/"
"""The prefix of Steward's own labels and annotations (``steward.dev/model``)."""

SECRET_KEYS: Final = ("STEWARD_DB", "STEWARD_ARTIFACTS", "STEWARD_URI", "STEWARD_TOKEN")
"""The settings the Secret holds: the metadata and artifact URLs (embedded), or a server and a token."""

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035: Service names
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # RFC 1123
_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"  # registry host[:port]/
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"  # repository path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"  # :tag and/or @digest
)
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][0-9]+)?$"
)
_SUFFIXES: Mapping[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ExportOptions:
    """How to deploy an exported model version. Every field has a default that runs a small service.

    Attributes:
        name: The name of the Kubernetes objects; derived from the model's name if omitted.
        namespace: The Kubernetes namespace.
        image: The container image; ``steward-<name>:<version>`` (what the docker target builds) if omitted.
        image_pull_policy: ``IfNotPresent``, ``Always`` or ``Never``.
        replicas: The Deployment's starting replicas; ``min_replicas`` if omitted.
        min_replicas: The autoscaler's floor (at least 1).
        max_replicas: The autoscaler's ceiling (at least ``min_replicas``).
        target_cpu: The average CPU use, in percent of the request, the autoscaler aims for.
        cpu_request: The CPU each replica is guaranteed (a Kubernetes quantity: ``500m``, ``1``).
        cpu_limit: The most CPU a replica may use; None for no limit.
        memory_request: The memory each replica is guaranteed (``512Mi``).
        memory_limit: The most memory a replica may use before it is restarted; None for no limit.
        service_port: The port the Service takes requests on (it forwards them to the pods' port 8080).
        canary_traffic_percent: KServe only: the share of traffic (0 to 100) the new revision takes while the
            previous one keeps the rest; None routes all traffic to it.
        secret: The Secret (or, for docker, the env file) holding the server's settings: ``SECRET_KEYS``.
        project: The Steward project the server acts in.
        alias: The alias the version was reached through (``production``), recorded as a label.
        follow_alias: Serve ``<model>@<alias>`` instead of the version the export resolved: pods started
            after the alias moves load the version it then points at (whose requirements may differ
            from those pinned in the image). Off by default: the pods serve what their labels say.
        base_image: Docker only: the image to build on; ``python:<major.minor>-slim`` of the Python that
            registered the model if omitted.
    """

    name: str | None = None
    namespace: str = "default"
    image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    replicas: int | None = None
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu: int = 70
    cpu_request: str = "500m"
    cpu_limit: str | None = "2"
    memory_request: str = "512Mi"
    memory_limit: str | None = "1Gi"
    service_port: int = 80
    canary_traffic_percent: int | None = None
    secret: str = "steward"
    project: str = "default"
    alias: str | None = None
    follow_alias: bool = False
    base_image: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ExportOptions:
        """Build options from a JSON object (the REST route's body); unknown keys are refused.

        Raises:
            InvalidInput: For an unknown option, naming it.
        """
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise InvalidInput(
                    f"unknown export option {key!r}; known: {', '.join(sorted(known))}", {"field": key}
                )
        return cls(**values)  # type: ignore[arg-type]  # types are checked by ``check``


def check(options: ExportOptions, version: ModelVersion) -> None:
    """Refuse options no cluster would accept, and versions that must not be deployed.

    Raises:
        InvalidInput: For a bad name, number, quantity or image, naming the option in ``details``.
        Conflict: If the version is archived.
    """
    if version.status is VersionStatus.ARCHIVED:
        raise Conflict(
            f"{version.uri} is archived: restore it first (steward models archive {version.model} "
            f"{version.version} --restore)",
            {"field": "version"},
        )
    _check_text(options)
    _check_numbers(options)
    for kind in ("cpu", "memory"):
        request = _quantity(f"{kind}_request", getattr(options, f"{kind}_request"))
        limit_text = getattr(options, f"{kind}_limit")
        if limit_text is not None and request > _quantity(f"{kind}_limit", limit_text):
            raise InvalidInput(
                f"{kind}_request ({getattr(options, f'{kind}_request')}) must not exceed {kind}_limit "
                f"({limit_text})",
                {"field": f"{kind}_request"},
            )


def _check_text(options: ExportOptions) -> None:
    patterns: tuple[tuple[str, object, re.Pattern[str], str], ...] = (
        ("name", options.name, _DNS_LABEL, "lowercase letters, digits and '-', starting with a letter"),
        ("namespace", options.namespace, _NAMESPACE, "lowercase letters, digits and '-'"),
        ("secret", options.secret, _SUBDOMAIN, "lowercase letters, digits, '-' and '.'"),
        ("image", options.image, _IMAGE, "an image reference such as registry.example.com/churn:1.2.0"),
        ("base_image", options.base_image, _IMAGE, "an image reference such as python:3.11-slim"),
    )
    for field, value, pattern, what in patterns:
        if value is None and field in ("name", "image", "base_image"):
            continue
        if not isinstance(value, str) or not pattern.match(value) or len(value) > 253:
            raise InvalidInput(f"invalid {field} {value!r}: use {what}", {"field": field})
    if options.image_pull_policy not in ("IfNotPresent", "Always", "Never"):
        raise InvalidInput(
            f"invalid image_pull_policy {options.image_pull_policy!r}: IfNotPresent, Always or Never",
            {"field": "image_pull_policy"},
        )
    for field, value in (("project", options.project), ("alias", options.alias)):
        if value is not None and (not isinstance(value, str) or not NAME_PATTERN.match(value)):
            raise InvalidInput(f"invalid {field} {value!r}", {"field": field})
    if not isinstance(options.follow_alias, bool):
        raise InvalidInput(
            f"follow_alias must be true or false, not {options.follow_alias!r}", {"field": "follow_alias"}
        )
    if options.follow_alias and options.alias is None:
        raise InvalidInput(
            "follow_alias needs the alias the version was exported through", {"field": "follow_alias"}
        )


def _check_numbers(options: ExportOptions) -> None:
    for field in ("min_replicas", "max_replicas", "target_cpu", "service_port"):
        _integer(field, getattr(options, field))
    if options.min_replicas < 1:
        raise InvalidInput(
            f"min_replicas must be at least 1, not {options.min_replicas}", {"field": "min_replicas"}
        )
    if options.min_replicas > options.max_replicas:
        raise InvalidInput(
            f"min_replicas ({options.min_replicas}) must not exceed max_replicas ({options.max_replicas})",
            {"field": "min_replicas"},
        )
    if options.replicas is not None:
        _integer("replicas", options.replicas)
        if not options.min_replicas <= options.replicas <= options.max_replicas:
            raise InvalidInput(
                f"replicas ({options.replicas}) must lie between min_replicas ({options.min_replicas}) and "
                f"max_replicas ({options.max_replicas})",
                {"field": "replicas"},
            )
    if not 1 <= options.target_cpu <= 1000:
        raise InvalidInput(
            f"target_cpu is a percentage of the CPU request in 1..1000, not {options.target_cpu}",
            {"field": "target_cpu"},
        )
    if not 1 <= options.service_port <= 65535:
        raise InvalidInput(
            f"service_port must be in 1..65535, not {options.service_port}", {"field": "service_port"}
        )
    if options.canary_traffic_percent is not None:
        _integer("canary_traffic_percent", options.canary_traffic_percent)
        if not 0 <= options.canary_traffic_percent <= 100:
            raise InvalidInput(
                f"canary_traffic_percent must be in 0..100, not {options.canary_traffic_percent}",
                {"field": "canary_traffic_percent"},
            )


def _integer(field: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer, not {value!r}", {"field": field})


def _quantity(field: str, text: object) -> Decimal:
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"invalid {field} {text!r}: use a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi",
            {"field": field},
        )
    suffix = match["suffix"] or ""
    try:
        if suffix[:1] in ("e", "E"):
            value = Decimal(match["number"]) * Decimal(10) ** int(suffix[1:])
        else:
            value = Decimal(match["number"]) * _SUFFIXES[suffix]
    except (InvalidOperation, OverflowError):  # pragma: no cover - the pattern admits only numbers
        raise InvalidInput(f"invalid {field} {text!r}", {"field": field}) from None
    if value <= 0:
        raise InvalidInput(f"{field} must be more than zero, not {text!r}", {"field": field})
    return value


def resource_name(version: ModelVersion, options: ExportOptions) -> str:
    """The name of the Kubernetes objects: ``options.name``, or the model's name made a DNS label."""
    if options.name is not None:
        return options.name
    name = re.sub(r"[^a-z0-9]+", "-", version.model.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"model-{name}".rstrip("-")
    return name[:63].rstrip("-")


def image_reference(version: ModelVersion, options: ExportOptions) -> str:
    """The container image: ``options.image``, or ``steward-<name>:<version>`` built by the docker target."""
    if options.image is not None:
        return options.image
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version.version)[:128]
    return f"steward-{resource_name(version, options)}:{tag}"


def served_reference(version: ModelVersion, options: ExportOptions) -> str:
    """What ``steward serve`` is given: ``<model>/<version>``, the version the export resolved, or
    ``<model>@<alias>`` with ``follow_alias``."""
    if options.follow_alias and options.alias is not None:
        return f"{version.model}@{options.alias}"
    return f"{version.model}/{version.version}"


def serve_command(version: ModelVersion, options: ExportOptions) -> list[str]:
    """The container's command line: ``steward serve <model>/<version> --host 0.0.0.0 --port 8080`` (or
    ``<model>@<alias>``)."""
    reference = served_reference(version, options)
    return ["steward", "serve", reference, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    cleaned = _LABEL_VALUE_BAD.sub("_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def labels(version: ModelVersion, options: ExportOptions) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels plus ``steward.dev/model`` and ``/version``."""
    name = resource_name(version, options)
    result = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": label_value(version.version),
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/part-of": "steward",
        "app.kubernetes.io/managed-by": "steward",
        f"{LABEL_PREFIX}model": label_value(version.model),
        f"{LABEL_PREFIX}version": label_value(version.version),
    }
    if options.alias is not None:
        result[f"{LABEL_PREFIX}alias"] = label_value(options.alias)
    return result


def selector(version: ModelVersion, options: ExportOptions) -> dict[str, str]:
    """The labels that pick the pods: name and instance only, so a new version keeps the same selector."""
    name = resource_name(version, options)
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}


def object_annotations(version: ModelVersion) -> dict[str, str]:
    """The exact reference and manifest digest (labels must be shortened; annotations need not be)."""
    return {
        f"{LABEL_PREFIX}model-uri": version.uri,
        f"{LABEL_PREFIX}manifest-digest": version.manifest_digest,
    }


def steward_version() -> str:
    """The version of ``steward-ml`` installed here, which the exported image installs too.

    Raises:
        InvalidInput: If Steward runs from a source tree that was never installed (there is no version
            to pin).
    """
    try:
        return importlib.metadata.version("steward-ml")
    except importlib.metadata.PackageNotFoundError:
        raise InvalidInput(
            "steward-ml is not installed here, so the image cannot pin its version: pip install steward-ml",
            {"field": "target"},
        ) from None
