"""Export a model version for a cluster or a container build: ``steward deploy export``.

Three targets, one model version, the same server inside:

- ``kubernetes``: a Deployment, a Service and a HorizontalPodAutoscaler (autoscaling/v2), as one
  multi-document YAML file;
- ``kserve``: a KServe InferenceService (serving.kserve.io/v1beta1) whose custom predictor container
  runs ``steward serve`` (with ``canaryTrafficPercent`` when asked);
- ``docker``: a Dockerfile and the ``requirements.txt`` it installs, every requirement pinned with ``==``.

Each container runs ``steward serve <model>@<alias|version> --host 0.0.0.0 --port 8080``, is probed on
the Open Inference Protocol's ``/v2/health/live`` and ``/v2/health/ready``, and reads its settings from
a Secret: no credential is ever written into what this module returns. Everything here is pure: the
callers (the CLI, the REST route) resolve the version and write the files.

Example:
    >>> files = export_files(version, "kubernetes", ExportOptions(namespace="ml"))  # doctest: +SKIP
    >>> list(files)  # doctest: +SKIP
    ['kubernetes.yaml']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import yaml

from steward.deploy.export_docker import REQUIREMENTS_FILE, dockerfile_text, requirements_text
from steward.deploy.export_kubernetes import inference_service, kubernetes_objects
from steward.deploy.export_options import SECRET_KEYS, ExportOptions, check
from steward.errors import InvalidInput
from steward.registry.models import ModelVersion

__all__ = ["TARGETS", "ExportOptions", "export_files", "export_objects"]

TARGETS: Final = ("kubernetes", "kserve", "docker")
"""The export targets, as ``--target`` and the REST route name them."""

FILENAMES: Final = {
    "kubernetes": ("kubernetes.yaml",),
    "kserve": ("inferenceservice.yaml",),
    "docker": ("Dockerfile", REQUIREMENTS_FILE),
}
"""The files each target writes."""


def _check_target(target: object) -> str:
    if target not in TARGETS:
        raise InvalidInput(
            f"unknown export target {target!r}: one of {', '.join(TARGETS)}", {"field": "target"}
        )
    return str(target)


def export_objects(version: ModelVersion, target: str, options: ExportOptions) -> list[dict[str, Any]]:
    """Return the Kubernetes objects of ``target`` (``kubernetes`` or ``kserve``) as plain dicts.

    Args:
        version: The resolved model version.
        target: ``kubernetes`` (Deployment, Service, HorizontalPodAutoscaler) or ``kserve``
            (InferenceService).
        options: The export options.

    Raises:
        InvalidInput: For an unknown target (or ``docker``, which writes no objects) or a bad option.
        Conflict: If the version is archived.
    """
    if _check_target(target) == "docker":
        raise InvalidInput(
            "the docker target writes a Dockerfile, not Kubernetes objects", {"field": "target"}
        )
    check(options, version)
    if target == "kubernetes":
        return kubernetes_objects(version, options)
    return [inference_service(version, options)]


def export_files(version: ModelVersion, target: str, options: ExportOptions) -> dict[str, str]:
    """Return the files that deploy ``version`` on ``target``: file name -> text.

    Args:
        version: The resolved model version.
        target: ``kubernetes``, ``kserve`` or ``docker``.
        options: The export options (``ExportOptions()`` for the defaults).

    Returns:
        ``{"kubernetes.yaml": …}``, ``{"inferenceservice.yaml": …}`` or
        ``{"Dockerfile": …, "requirements.txt": …}``.

    Raises:
        InvalidInput: For an unknown target, a bad option (naming it in ``details["field"]``), or a
            recorded requirement that cannot be pinned.
        Conflict: If the version is archived.
    """
    if _check_target(target) == "docker":
        check(options, version)
        return {
            "Dockerfile": dockerfile_text(version, options),
            REQUIREMENTS_FILE: requirements_text(version),
        }
    objects = export_objects(version, target, options)
    (filename,) = FILENAMES[target]
    return {filename: _header(version, options) + _yaml_documents(objects)}


def _header(version: ModelVersion, options: ExportOptions) -> str:
    return (
        f"# {version.uri} ({version.manifest_digest}), written by `steward deploy export`.\n"
        f"# The pods read their settings from Secret {options.secret!r} in namespace {options.namespace!r}:\n"
        f"# {', '.join(SECRET_KEYS[:2])} (embedded), or {', '.join(SECRET_KEYS[2:])} (through a server).\n"
    )


class _Dumper(yaml.SafeDumper):
    """Writes shared dicts out in full: anchors and aliases (``&id001``) confuse people and some tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml_documents(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.dump_all(
        objects, Dumper=_Dumper, explicit_start=True, sort_keys=False, default_flow_style=False, width=100
    )
