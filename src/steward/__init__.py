"""Steward: one governed package for a model's whole life.

The objects a user meets:

- ``steward.start_run(experiment=…)`` starts a **run**; inside it ``log_params``, ``log_metric(s)``,
  ``set_tags``, ``log_artifact``, ``log_dict``, ``log_table`` and ``log_figure`` record what happened.
- ``steward.search_runs``, ``get_run`` and ``get_metric_history`` read it back (pandas out).
- ``steward.connect()`` / ``steward.configure()`` choose where it all lives: embedded (SQLite and local
  files, no services) or a Steward server (``STEWARD_URI=http://…``), with the same calls either way.
"""

from steward._connect import Connection, configure, connect, default_connection
from steward.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StewardError,
)
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

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "Artifact",
    "Conflict",
    "Connection",
    "Experiment",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "Run",
    "RunStatus",
    "StewardError",
    "__version__",
    "active_run",
    "configure",
    "connect",
    "default_connection",
    "delete_run",
    "download_artifact",
    "end_run",
    "get_metric_history",
    "get_run",
    "list_artifacts",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metric_batch",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "restore_run",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]
