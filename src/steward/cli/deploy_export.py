"""``steward deploy export``: Kubernetes manifests, a KServe InferenceService or a Dockerfile for a model.

The reference is resolved through Steward's services (embedded, or the server ``STEWARD_URI`` names) to
one version; the files are built by ``steward.deploy.export`` and printed (YAML targets) or written to
``--output``. Nothing secret is written: the pods and containers read their settings from a Secret or
the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from steward.cli.output import connection, console
from steward.deploy.export import ExportOptions, export_files
from steward.deploy.export_options import SECRET_KEYS, image_reference
from steward.errors import Conflict, InvalidInput
from steward.registry.models import ModelVersion, parse_reference

_DEFAULTS = ExportOptions()


class Target(StrEnum):
    """What ``steward deploy export`` writes."""

    kubernetes = "kubernetes"
    kserve = "kserve"
    docker = "docker"


def _reference(text: str) -> tuple[str, str | None]:
    """``churn`` / ``churn@production`` / ``churn/1.2.0`` (or ``models:/…``) → (URI, alias)."""
    uri = text if text.startswith("models:/") else f"models:/{text}"
    try:
        _, _, alias = parse_reference(uri)
    except InvalidInput:
        raise InvalidInput(
            f"invalid model reference {text!r}: use NAME, NAME@ALIAS or NAME/VERSION (churn, "
            "churn@production, churn/1.2.0)",
            {"field": "model"},
        ) from None
    return uri, alias


def _limit(text: str | None) -> str | None:
    return None if text is None or text.strip().lower() in ("", "none") else text


def _write(folder: Path, files: dict[str, str], force: bool) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create {folder}: {exc.strerror or exc}", {"field": "output"}) from None
    for filename, text in files.items():
        path = folder / filename
        if not force and path.exists() and path.read_text(encoding="utf-8", errors="replace") != text:
            raise Conflict(f"{path} exists and differs: pass --force to overwrite it", {"field": "output"})
    for filename, text in files.items():
        try:
            (folder / filename).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"cannot write {folder / filename}: {exc.strerror or exc}", {"field": "output"}
            ) from None


def _next_steps(target: Target, version: ModelVersion, options: ExportOptions, folder: Path) -> list[str]:
    if target is Target.docker:
        image = image_reference(version, options)
        return [
            f"docker build -t {image} {folder}",
            f"docker run -p 8080:8080 --env-file {options.secret}.env {image}   "
            f"# {options.secret}.env: {', '.join(SECRET_KEYS[:2])}, or {', '.join(SECRET_KEYS[2:])}",
        ]
    keys = " ".join(f"--from-literal={key}=…" for key in SECRET_KEYS[:2])
    return [
        f"kubectl create secret generic {options.secret} --namespace {options.namespace} {keys}",
        f"kubectl apply -f {folder}",
    ]


def export(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="The version to export: churn (highest), churn@production, churn/1.2.0."
        ),
    ],
    target: Annotated[Target, typer.Option("--target", "-t", help="What to write.")] = Target.kubernetes,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            file_okay=False,
            show_default=False,
            help="The folder to write the files to (created if missing); YAML goes to stdout without it.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files in --output that differ.")] = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="Name of the Kubernetes objects (default: the model's name as a DNS label).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Kubernetes namespace.")
    ] = _DEFAULTS.namespace,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image (default: steward-<name>:<version>, as the docker target builds).",
            show_default=False,
        ),
    ] = None,
    image_pull_policy: Annotated[
        str, typer.Option(help="IfNotPresent, Always or Never.")
    ] = _DEFAULTS.image_pull_policy,
    replicas: Annotated[
        int | None, typer.Option(help="Starting replicas (default: --min-replicas).", show_default=False)
    ] = None,
    min_replicas: Annotated[
        int, typer.Option(help="Fewest replicas the autoscaler keeps.")
    ] = _DEFAULTS.min_replicas,
    max_replicas: Annotated[
        int, typer.Option(help="Most replicas the autoscaler starts.")
    ] = _DEFAULTS.max_replicas,
    target_cpu: Annotated[
        int, typer.Option(help="Average CPU use the autoscaler aims for, in % of --cpu-request.")
    ] = _DEFAULTS.target_cpu,
    cpu_request: Annotated[str, typer.Option(help="CPU each replica is guaranteed.")] = _DEFAULTS.cpu_request,
    cpu_limit: Annotated[str, typer.Option(help="Most CPU a replica may use ('none': no limit).")] = (
        _DEFAULTS.cpu_limit or "none"
    ),
    memory_request: Annotated[
        str, typer.Option(help="Memory each replica is guaranteed.")
    ] = _DEFAULTS.memory_request,
    memory_limit: Annotated[str, typer.Option(help="Most memory a replica may use ('none': no limit).")] = (
        _DEFAULTS.memory_limit or "none"
    ),
    service_port: Annotated[
        int, typer.Option(help="Port of the Service (to the pods' 8080).")
    ] = _DEFAULTS.service_port,
    canary_traffic_percent: Annotated[
        int | None,
        typer.Option(
            "--canary-traffic-percent",
            help="KServe: share of traffic (0-100) for this revision; the previous one keeps the rest.",
            show_default=False,
        ),
    ] = None,
    secret: Annotated[str, typer.Option(help=f"Secret holding {', '.join(SECRET_KEYS)}.")] = _DEFAULTS.secret,
    follow_alias: Annotated[
        bool,
        typer.Option(
            "--follow-alias", help="With MODEL@ALIAS: serve the alias, not the version it points at now."
        ),
    ] = False,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Docker: image to build on (default: python:<version>-slim of the model's Python).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write what deploys MODEL: Kubernetes Deployment + Service + HorizontalPodAutoscaler, a KServe
    InferenceService, or a Dockerfile with its pinned requirements.

    The containers run `steward serve MODEL/VERSION --host 0.0.0.0 --port 8080`, load the model from the
    registry when they start, and are probed on /v2/health/live and /v2/health/ready. Their settings
    (STEWARD_DB and STEWARD_ARTIFACTS, or STEWARD_URI and STEWARD_TOKEN) come from the Secret named by
    --secret: no credential is written into the files.
    """
    uri, alias = _reference(model)
    if target is Target.docker and output is None:
        raise InvalidInput(
            "the docker target writes two files (Dockerfile, requirements.txt): pass --output FOLDER",
            {"field": "output"},
        )
    if canary_traffic_percent is not None and target is not Target.kserve:
        raise InvalidInput(
            "--canary-traffic-percent applies to --target kserve only", {"field": "canary_traffic_percent"}
        )
    with connection() as conn:
        version = conn.registry.resolve(uri)
        project = conn.settings.project
    options = ExportOptions(
        name=name,
        namespace=namespace,
        image=image,
        image_pull_policy=image_pull_policy,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_cpu=target_cpu,
        cpu_request=cpu_request,
        cpu_limit=_limit(cpu_limit),
        memory_request=memory_request,
        memory_limit=_limit(memory_limit),
        service_port=service_port,
        canary_traffic_percent=canary_traffic_percent,
        secret=secret,
        project=project,
        alias=alias,
        follow_alias=follow_alias,
        base_image=base_image,
    )
    files = export_files(version, target.value, options)
    if output is None:
        for text in files.values():
            typer.echo(text, nl=False)
        return
    _write(output, files, force)
    names = ", ".join(escape(filename) for filename in files)
    console.print(f"Wrote {names} for {escape(version.uri)} to {escape(str(output))}.")
    console.print("Next:")
    for step in _next_steps(target, version, options, output):
        console.print(f"  {escape(step)}")
