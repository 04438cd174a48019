"""Kubernetes objects for one model version: a Deployment, Service and HorizontalPodAutoscaler, or a
KServe InferenceService whose custom predictor container runs ``steward serve``.

The pods load the model from the registry when they start; nothing of the model is baked into the
manifests. Their settings come from a Secret (``envFrom``), so no credential is ever written here.
Probes use the Open Inference Protocol's health routes: a pod takes traffic only once its model is
loaded and warm, and rolling updates keep every old pod until a new one is ready.
"""

from __future__ import annotations

from typing import Any

from steward.deploy.export_options import (
    CONTAINER_PORT,
    LIVE_PATH,
    READY_PATH,
    STEWARD_HOME,
    ExportOptions,
    image_reference,
    labels,
    object_annotations,
    resource_name,
    selector,
    serve_command,
)
from steward.registry.models import ModelVersion

RUN_AS: int = 10001
"""The unprivileged user the server runs as (the docker target's image creates it)."""


def kubernetes_objects(version: ModelVersion, options: ExportOptions) -> list[dict[str, Any]]:
    """Return the Deployment, Service and HorizontalPodAutoscaler (autoscaling/v2) of ``version``.

    Args:
        version: The resolved model version.
        options: Checked export options (``export_options.check``).

    Returns:
        The three objects, in the order to apply them.
    """
    return [deployment(version, options), service(version, options), autoscaler(version, options)]


def _metadata(version: ModelVersion, options: ExportOptions) -> dict[str, Any]:
    return {
        "name": resource_name(version, options),
        "namespace": options.namespace,
        "labels": labels(version, options),
        "annotations": object_annotations(version),
    }


def _resources(options: ExportOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": options.cpu_request, "memory": options.memory_request}}
    limits = {
        k: v for k, v in (("cpu", options.cpu_limit), ("memory", options.memory_limit)) if v is not None
    }
    if limits:
        resources["limits"] = limits
    return resources


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": CONTAINER_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _env(options: ExportOptions, home: str) -> dict[str, Any]:
    return {
        "env": [
            {"name": "STEWARD_PROJECT", "value": options.project},
            {"name": "STEWARD_HOME", "value": home},
        ],
        # The metadata and artifact URLs, or the server and token, come from the Secret: never inline.
        "envFrom": [{"secretRef": {"name": options.secret}}],
    }


def container(version: ModelVersion, options: ExportOptions, *, kserve: bool) -> dict[str, Any]:
    """The server's container: command, port, settings, resources, probes and a locked-down context.

    Args:
        version: The resolved model version.
        options: Checked export options.
        kserve: For a KServe predictor: named ``kserve-container``, port ``http1``, and without a startup
            probe or read-only root filesystem (Knative does not take them). Otherwise the root
            filesystem is read-only and the pod mounts ``emptyDir`` volumes on ``STEWARD_HOME`` and
            ``/tmp``.
    """
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
    }
    spec: dict[str, Any] = {
        "name": "kserve-container" if kserve else "server",
        "image": image_reference(version, options),
        "imagePullPolicy": options.image_pull_policy,
        "command": serve_command(version, options),
        "ports": [
            {"name": "http1" if kserve else "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}
        ],
        **_env(options, "/tmp/steward" if kserve else STEWARD_HOME),
        "resources": _resources(options),
        "livenessProbe": _probe(LIVE_PATH, period=10, failures=3),
        "readinessProbe": _probe(READY_PATH, period=5, failures=2),
        "securityContext": security,
    }
    if not kserve:
        # Loading and warming a model can take a while: liveness only starts once the process answers.
        spec["startupProbe"] = _probe(LIVE_PATH, period=5, failures=60)
        security["readOnlyRootFilesystem"] = True
        spec["volumeMounts"] = [
            {"name": "steward-home", "mountPath": STEWARD_HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
    return spec


def deployment(version: ModelVersion, options: ExportOptions) -> dict[str, Any]:
    """The Deployment (apps/v1): rolling updates that never take a ready pod away before its successor."""
    metadata = _metadata(version, options)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": options.replicas if options.replicas is not None else options.min_replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(version, options)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": metadata["labels"],
                    "annotations": {
                        **metadata["annotations"],
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(CONTAINER_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container(version, options, kserve=False)],
                    "volumes": [{"name": "steward-home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service(version: ModelVersion, options: ExportOptions) -> dict[str, Any]:
    """The Service (v1, ClusterIP): ``service_port`` to the pods' ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(version, options),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(version, options),
            "ports": [
                {"name": "http", "port": options.service_port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def autoscaler(version: ModelVersion, options: ExportOptions) -> dict[str, Any]:
    """The HorizontalPodAutoscaler (autoscaling/v2) on average CPU use against the request."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(version, options),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": resource_name(version, options),
            },
            "minReplicas": options.min_replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": options.target_cpu},
                    },
                }
            ],
        },
    }


def inference_service(version: ModelVersion, options: ExportOptions) -> dict[str, Any]:
    """The KServe InferenceService (serving.kserve.io/v1beta1) with a custom predictor container.

    With ``canary_traffic_percent`` set, KServe sends that share of traffic to the revision this
    manifest creates and the rest to the last revision that took all traffic.
    """
    metadata = _metadata(version, options)
    predictor: dict[str, Any] = {
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "scaleMetric": "cpu",
        "scaleTarget": options.target_cpu,
        "labels": metadata["labels"],
        "annotations": metadata["annotations"],
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container(version, options, kserve=True)],
    }
    if options.canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = options.canary_traffic_percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }
