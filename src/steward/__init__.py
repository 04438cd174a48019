"""Steward: one governed package for a model's whole life.

The objects a user meets:

- ``steward.start_run(experiment=…)`` starts a **run**; inside it ``log_params``, ``log_metric(s)``,
  ``set_tags``, ``log_artifact``, ``log_dict``, ``log_table`` and ``log_figure`` record what happened.
- ``steward.search_runs``, ``get_run`` and ``get_metric_history`` read it back (pandas out).
- ``@steward.step`` and ``@steward.pipeline`` make plain typed functions a DAG;
  ``my_pipeline.run(executor="processes", **params)`` runs it (cached, retried, each step a child run);
  ``steward.tune(my_pipeline, space={...}, n_trials=50, metric="auc")`` searches its parameters.
- ``steward serve churn@production`` serves a model (Open Inference Protocol v2 and ``/predict``); each
  answer lands in the prediction log, ``steward.read_predictions(endpoint)`` reads it back and
  ``steward.log_labels(request_ids, labels)`` adds the ground truth when it arrives.
- ``steward.create_endpoint(name, model, version)`` puts a version behind an endpoint (through the
  policy gate); ``steward.start_rollout(endpoint, "canary", version)`` moves traffic to another one
  (also ``blue-green``, ``ab``, ``shadow``), ``rollback_rollout`` moves it back, ``rollout_results``
  reports an A/B test.
- ``steward.apply_features([...])`` registers entities, feature views and services (``steward.features``);
  ``get_historical_features(entity_df, ["view:feature"])`` builds a point-in-time correct training set,
  ``materialize_features()`` fills the online store and ``get_online_features`` reads it.
- ``steward.create_monitor(name, endpoint, rules=[...])`` watches an endpoint (drift, accuracy on late
  labels, fairness, latency, errors); ``run_monitor`` checks it now (``steward scheduler`` runs it on its
  schedule), ``list_alerts`` shows what fired and ``monitor_report`` gathers the numbers.
- ``steward.connect()`` / ``steward.configure()`` choose where it all lives: embedded (SQLite and local
  files, no services) or a Steward server (``STEWARD_URI=http://…``), with the same calls either way.
"""

from typing import TYPE_CHECKING, Any

from steward._connect import Connection, configure, connect, default_connection
from steward.core.signature import Signature, infer_signature
from steward.data.models import Dataset, DatasetVersion
from steward.data.sdk import diff_datasets, get_dataset, get_dataset_version, ingest, list_datasets
from steward.deploy.sdk import (
    abort_rollout,
    create_endpoint,
    delete_endpoint,
    endpoint_status,
    get_endpoint,
    get_rollout,
    list_endpoints,
    promote_rollout,
    rollback_rollout,
    rollout_results,
    start_rollout,
    update_endpoint,
)
from steward.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StewardError,
    UnsafeArtifact,
)
from steward.features.sdk import (
    apply_features,
    feature_skew,
    get_historical_features,
    get_online_features,
    list_feature_definitions,
    materialize_features,
    push_features,
)
from steward.monitoring.models import Alert, Monitor
from steward.monitoring.runs import MonitoringReport, MonitorRun
from steward.monitoring.sdk import (
    create_monitor,
    dataset_drift,
    delete_monitor,
    disable_monitor,
    enable_monitor,
    get_alert,
    get_monitor,
    list_alerts,
    list_monitors,
    monitor_report,
    run_monitor,
)
from steward.pipelines.dsl import Step, step
from steward.pipelines.models import PipelineRunInfo, StepRun, StepState
from steward.pipelines.sdk import (
    Pipeline,
    PipelineRun,
    get_pipeline_run,
    list_pipeline_runs,
    pipeline,
    resume_run,
)
from steward.pipelines.values import Model
from steward.registry.flavors.pyfunc import ModelContext, PythonModel
from steward.registry.loading import LoadedModel
from steward.registry.models import ModelVersion, RegisteredModel
from steward.registry.sdk import (
    alias_history,
    archive_model_version,
    delete_alias,
    export_onnx,
    get_model,
    get_model_version,
    list_model_versions,
    load_model,
    register_model,
    set_alias,
)
from steward.serving.sdk import log_labels, read_predictions
from steward.tracking.fluent import (
    ActiveRun,
    active_run,
    delete_run,
    download_artifact,
    end_run,
    get_metric_history,
    get_run,
    list_artifacts,
    log_artifact,
    log_dict,
    log_figure,
    log_metric,
    log_metric_batch,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    restore_run,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)
from steward.tracking.models import Artifact, Experiment, Run, RunStatus

if TYPE_CHECKING:
    from steward.pipelines.tuning import TuneResult, tune

__version__ = "0.1.0"

_LAZY = {"tune": "steward.pipelines.tuning", "TuneResult": "steward.pipelines.tuning"}


def __getattr__(name: str) -> Any:
    # Optuna is imported on first use of steward.tune, not by every `import steward`.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'steward' has no attribute {name!r}")


__all__ = [
    "ActiveRun",
    "Alert",
    "AlreadyExists",
    "Artifact",
    "Conflict",
    "Connection",
    "Dataset",
    "DatasetVersion",
    "Experiment",
    "IntegrityError",
    "InvalidInput",
    "LoadedModel",
    "Model",
    "ModelContext",
    "ModelVersion",
    "Monitor",
    "MonitorRun",
    "MonitoringReport",
    "NotFound",
    "Pipeline",
    "PipelineRun",
    "PipelineRunInfo",
    "PythonModel",
    "RegisteredModel",
    "Run",
    "RunStatus",
    "Signature",
    "Step",
    "StepRun",
    "StepState",
    "StewardError",
    "TuneResult",
    "UnsafeArtifact",
    "__version__",
    "abort_rollout",
    "active_run",
    "alias_history",
    "apply_features",
    "archive_model_version",
    "configure",
    "connect",
    "create_endpoint",
    "create_monitor",
    "dataset_drift",
    "default_connection",
    "delete_alias",
    "delete_endpoint",
    "delete_monitor",
    "delete_run",
    "diff_datasets",
    "disable_monitor",
    "download_artifact",
    "enable_monitor",
    "end_run",
    "endpoint_status",
    "export_onnx",
    "feature_skew",
    "get_alert",
    "get_dataset",
    "get_dataset_version",
    "get_endpoint",
    "get_historical_features",
    "get_metric_history",
    "get_model",
    "get_model_version",
    "get_monitor",
    "get_online_features",
    "get_pipeline_run",
    "get_rollout",
    "get_run",
    "infer_signature",
    "ingest",
    "list_alerts",
    "list_artifacts",
    "list_datasets",
    "list_endpoints",
    "list_feature_definitions",
    "list_model_versions",
    "list_monitors",
    "list_pipeline_runs",
    "load_model",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_labels",
    "log_metric",
    "log_metric_batch",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "materialize_features",
    "monitor_report",
    "pipeline",
    "promote_rollout",
    "push_features",
    "read_predictions",
    "register_model",
    "restore_run",
    "resume_run",
    "rollback_rollout",
    "rollout_results",
    "run_monitor",
    "search_runs",
    "set_alias",
    "set_tag",
    "set_tags",
    "start_rollout",
    "start_run",
    "step",
    "tune",
    "update_endpoint",
]
