"""Every table of the metadata database, in one SQLAlchemy ``MetaData``.

One Alembic history (``store/migrations``) covers all of them. Times are integer Unix milliseconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False, default="default"),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    UniqueConstraint("project", "name", name="uq_experiments_project_name"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("error", Text, nullable=True),
    Column("user_name", String(256), nullable=False, default=""),
    Column("host", String(256), nullable=False, default=""),
    Column("entry_point", Text, nullable=False, default=""),
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Integer, nullable=True),
    Column("python_version", String(32), nullable=False, default=""),
    Column("environment_digest", String(64), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_runs_parent", "parent_run_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)


class _Blob(LargeBinary):
    """``LargeBinary`` that hands ``bytes`` to the driver as they are (sqlite3 and psycopg take them);
    the default wraps each value in the driver's ``Binary``, a cost paid for every metric chunk."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        """No conversion."""
        return None


metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("count", Integer, nullable=False),
    Column("steps", _Blob, nullable=False),
    Column("values", _Blob, nullable=False),
    Column("timestamps", _Blob, nullable=False),
    Index("ix_metric_chunks_run_key", "run_id", "key"),
)
"""Metric history, stored as columnar chunks: one row per (run, key, flush) holding packed arrays."""

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)
"""The last value (highest step, then latest time) of each metric of each run: what search filters."""

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False, default="default"),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    UniqueConstraint("project", "name", name="uq_registered_models_project_name"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("version", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("input_schema", Text, nullable=True),
    Column("manifest_digest", String(64), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("archived_at", BigInteger, nullable=True),
    Column("archived_reason", Text, nullable=False, default=""),
    Column("signature", String(128), nullable=True),
    Column("signing_key_id", String(16), nullable=True),
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_run", "run_id"),
)
"""One row per version; ``manifest`` is the JSON copy of the bundle's ``steward-model.yaml`` blob;
``signature`` the platform key's (``signing_key_id``) Ed25519 signature (hex) over its manifest."""

model_formats = Table(
    "model_formats",
    metadata,
    Column("version_id", String(32), ForeignKey("model_versions.id"), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("flavor", String(32), nullable=False),
    Column("manifest_digest", String(64), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
"""Further formats of a version (``export_onnx`` adds ``onnx``), each its own verified bundle."""

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", String(32), ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False, default=""),
    Index("ix_model_aliases_version", "version_id"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", String(128), nullable=True),
    Column("to_version", String(128), nullable=True),
    Column("actor", String(256), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_alias_events_model", "model_id", "id"),
)
"""Every move of every alias: who, when, from which version to which, and why."""

model_cards = Table(
    "model_cards",
    metadata,
    Column("version_id", String(32), ForeignKey("model_versions.id"), primary_key=True),
    Column("fields", Text, nullable=False),
    Column("markdown_digest", String(64), nullable=False),
    Column("html_digest", String(64), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False, default=""),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source_kind", String(32), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(128), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("role", String(128), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_lineage_edges_source", "source_kind", "source_id"),
    Index("ix_lineage_edges_target", "target_kind", "target_id"),
)
"""Arrows between artifacts of the lifecycle (a dataset version ``trained`` a model version …)."""

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False, default="default"),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("region", String(64), nullable=False),
    Column("expectations", Text, nullable=True),
    Column("allowed_regions", Text, nullable=True),
    Column("privacy", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    UniqueConstraint("project", "name", name="uq_datasets_project_name"),
)
"""A named dataset; ``expectations`` is the JSON of its ``DatasetSchema``, checked on every ingestion;
``allowed_regions`` the JSON list of regions its data may reside in (None: its own ``region``);
``privacy`` the JSON of its ``PrivacyPolicy``."""

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_digest", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("files", Text, nullable=False),
    Column("arrow_schema", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("pii", Text, nullable=True),
    Column("region", String(64), nullable=False),
    Column("parent_id", String(32), ForeignKey("dataset_versions.id"), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    UniqueConstraint("dataset_id", "number", name="uq_dataset_versions_number"),
    UniqueConstraint("dataset_id", "content_digest", name="uq_dataset_versions_content"),
)
"""Immutable versions: Parquet files in the blob store (``files``: path, digest, size, rows), the source
they came from, their profile, the PII findings of its last scan (``pii``); the same content is the
same version."""

quarantined_batches = Table(
    "quarantined_batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("files", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("report", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("resolved_at", BigInteger, nullable=True),
    Column("resolved_by", String(256), nullable=True),
    Column("resolution", Text, nullable=True),
    Index("ix_quarantined_batches_dataset", "dataset_id", "status"),
)
"""Batches that failed validation: kept whole with their report until released or dropped."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("id", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource_kind", String(64), nullable=False),
    Column("resource_id", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", Text, nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("before_digest", String(64), nullable=True),
    Column("after_digest", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("project", String(128), nullable=True),
    UniqueConstraint("id", name="uq_audit_log_id"),
    Index("ix_audit_log_resource", "resource_kind", "resource_id"),
    Index("ix_audit_log_project", "project", "seq"),
)
"""The audit trail: one row per state change (or refusal), each carrying the hash of the one before."""

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("pipeline", String(128), nullable=False),
    Column("reference", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("executor", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("outputs", Text, nullable=True),
    Column("resumed_from", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
    Index("ix_pipeline_runs_pipeline", "pipeline", "created_at"),
)
"""One row per pipeline run; the run itself (times, params, tags) is the tracking run ``run_id``."""

step_runs = Table(
    "step_runs",
    metadata,
    Column("pipeline_run_id", String(32), ForeignKey("pipeline_runs.run_id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("step", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("upstream", Text, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("cached_from", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Column("host", String(256), nullable=False, default=""),
    Column("resources", Text, nullable=False),
)
"""The nodes of a pipeline run: state, attempts, cache key, inputs and outputs (``OutputRef`` JSON)."""

step_cache = Table(
    "step_cache",
    metadata,
    Column("project", String(128), primary_key=True, default="default"),
    Column("cache_key", String(64), primary_key=True),
    Column("step", String(256), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("outputs", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
"""Outputs by cache key (code, inputs, parameters and environment of a step): what a rerun reuses."""

tuning_journal = Table(
    "tuning_journal",
    metadata,
    Column("project", String(128), primary_key=True, default="default"),
    Column("study", String(128), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("log", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
"""Optuna's journal, one per tuning study: its operations numbered from 0, replayed to load the study."""

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("at", BigInteger, nullable=False),
)
"""Signed checkpoints of the audit trail: every N entries, the Ed25519 signature (hex) of the key
``key_id`` over ``steward-audit-checkpoint\\n{seq}\\n{hash}``, written with the entry ``seq``."""

# -- identity and tenancy -------------------------------------------------------------------------

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    UniqueConstraint("name"),
)
"""Tenants: every experiment, model and dataset belongs to one (by name, in its ``project`` column)."""

principals = Table(
    "principals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("display_name", String(256), nullable=False, default=""),
    Column("email", String(256), nullable=False, default=""),
    Column("global_role", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("disabled_at", BigInteger, nullable=True),
    UniqueConstraint("name"),
)
"""Users (``kind`` ``user``) and service accounts (``service``); ``global_role`` (``admin``, ``auditor``)
applies in every project."""

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("principal_id", String(32), ForeignKey("principals.id"), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("added_at", BigInteger, nullable=False),
    Column("added_by", String(256), nullable=False, default=""),
    Index("ix_memberships_principal", "principal_id"),
)
"""Who may act in which project, with which roles (one row per role)."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", String(32), ForeignKey("principals.id"), nullable=True),
    Column("token_hash", String(64), nullable=False),
    Column("purpose", String(16), nullable=False, default="api"),
    Column("name", String(128), nullable=False, default=""),
    Column("scopes", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    UniqueConstraint("token_hash"),
)
"""API tokens, stored only as the SHA-256 of the secret; ``scopes`` (JSON list of permissions, None for
all the principal's) narrows what a token may do; ``purpose`` ``bootstrap`` marks the one-time token
that creates the first admin (it has no principal)."""

# -- policy gates and approvals -------------------------------------------------------------------

policies = Table(
    "policies",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("retired_at", BigInteger, nullable=True),
    UniqueConstraint("project", "name", "version", name="uq_policies_version"),
)
"""Policy documents (the YAML source as given), every edit a new ``version``; the newest unretired
version of each name is in force."""

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("required", Integer, nullable=False, default=1),
    Column("policy", Text, nullable=True),
    Column("requested_by", String(256), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("resolved_at", BigInteger, nullable=True),
    Index("ix_approval_requests_status", "project", "status"),
)
"""Requests to move a protected alias: ``pending`` until enough approvals (``required``) or one
rejection; ``policy`` is the JSON of the policies (name, version) that asked for it."""

approval_decisions = Table(
    "approval_decisions",
    metadata,
    Column("request_id", String(32), ForeignKey("approval_requests.id"), primary_key=True),
    Column("approver", String(256), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("at", BigInteger, nullable=False),
)
"""One decision (``approve`` or ``reject``) per approver per request."""

serving_windows = Table(
    "serving_windows",
    metadata,
    Column("project", String(128), primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),
    Column("worker", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("latency_sum_ms", Float, nullable=False, default=0.0),
    Column("latency_buckets", Text, nullable=False),
    Column("shadow_compared", BigInteger, nullable=False, default=0),
    Column("shadow_agreed", BigInteger, nullable=False, default=0),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_serving_windows_recent", "project", "endpoint", "window_start"),
)
"""What each serving worker saw per endpoint, model version and time window: request and error
counts, a latency histogram (JSON counts over ``serving.models.LATENCY_BUCKETS_MS``) and, for a
shadow version, how many of its answers were compared with the stable one's and agreed. Rollout
analysis and monitoring sum these rows; a worker rewrites its own row of the current window."""

# -- deploy: endpoints and rollouts ---------------------------------------------------------------

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("gate_alias", String(128), nullable=False, default="production"),
    Column("sticky_key", String(128), nullable=True),
    Column("revision", BigInteger, nullable=False, default=1),
    Column("active_rollout", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("updated_at", BigInteger, nullable=False),
    Column("feature_service", String(128), nullable=True),
    UniqueConstraint("project", "name", name="uq_endpoints_project_name"),
)
"""Named entry points to one registered model: the traffic plan's ``revision`` (one more on every
change), the policy-gated alias a deployed version must be allowed to take (``gate_alias``), the request
field whose hash keeps a user on one A/B arm (``sticky_key``), the rollout under way, if any, and the
feature service whose online features requests are completed with (``feature_service``)."""

endpoint_arms = Table(
    "endpoint_arms",
    metadata,
    Column("endpoint_id", String(32), ForeignKey("endpoints.id"), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("weight", Float, nullable=False),
    Column("position", Integer, nullable=False),
)
"""The arms of an endpoint's traffic plan: each model version it serves, its role
(``serving.models.ROLES``) and share of live traffic, rewritten whole with every revision."""

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("endpoint_id", String(32), ForeignKey("endpoints.id"), nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("version", String(64), nullable=False),
    Column("baseline", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("options", Text, nullable=False),
    Column("step_started_at", BigInteger, nullable=False),
    Column("analysis", Text, nullable=True),
    Column("message", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("ended_at", BigInteger, nullable=True),
    Index("ix_rollouts_endpoint", "endpoint_id", "created_at"),
)
"""Rollouts of a candidate ``version`` onto an endpoint whose stable version was ``baseline``: the
strategy, its options (JSON), the state and step it is at, and the last analysis (JSON)."""

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("rollout_id", String(32), ForeignKey("rollouts.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("project", String(128), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("actor", String(256), nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("details", Text, nullable=False),
)
"""What happened to a rollout, numbered from 1: started, each step and analysis verdict, promotion,
rollback, abort; ``details`` (JSON) holds the traffic plan after it and the analysis that decided it."""

# -- features: definitions and materialisation ----------------------------------------------------

feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("derived", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    UniqueConstraint("project", "kind", "name", "version", name="uq_feature_definitions_version"),
    Index("ix_feature_definitions_name", "project", "kind", "name"),
)
"""Every version of every entity, feature view and feature service (``spec`` JSON, its ``digest``),
with what the data layer said of a view's source when it was applied (``derived`` JSON: region, PII
tags, the dataset version)."""

feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("view", String(128), nullable=False),
    Column("store", String(16), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("entities", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("finished_by", String(256), nullable=False, default=""),
    Index("ix_feature_materializations_view", "project", "view", "store", "window_end"),
)
"""Each materialisation of a view into an online store: the event-time window read (``window_end`` of
the last is where an incremental run starts) and how many rows and entities it wrote."""

# -- monitoring: references, window summaries, monitors, alerts ------------------------------------

monitoring_references = Table(
    "monitoring_references",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("summary", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("project", "key", name="uq_monitoring_references_key"),
)
"""Reference profiles, computed once and kept: ``key`` names what they summarise (a dataset version's
id, or an endpoint's log window), ``summary`` is a ``TableSummary`` (JSON) whose bin edges and
categories every current window of it is counted in."""

monitoring_windows = Table(
    "monitoring_windows",
    metadata,
    Column("project", String(128), primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("reference_id", String(32), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("window_end", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
    Column("computed_at", BigInteger, nullable=False),
)
"""Per endpoint and reference, one mergeable ``TableSummary`` (JSON) of the prediction log per window
(an hour by default): a 30-day report sums 720 of these instead of rescanning 30 days of logs."""

monitors = Table(
    "monitors",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("spec", Text, nullable=False),
    Column("enabled", Integer, nullable=False, default=1),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("last_run_at", BigInteger, nullable=True),
    UniqueConstraint("project", "name", name="uq_monitors_project_name"),
)
"""Monitors: the endpoint they watch and their ``spec`` (JSON: window, schedule, rules, reference,
channels, actions, cooldown)."""

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("rule", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("delivered", Integer, nullable=True),
    Column("deliveries", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("message", Text, nullable=False, default=""),
    Index("ix_alerts_monitor", "project", "monitor_id", "state"),
)
"""Alerts a monitor's rules raised: one open (``firing``) alert per monitor and rule at a time, which
repeats count on; its deliveries and the actions it started (JSON)."""

rule_streaks = Table(
    "rule_streaks",
    metadata,
    Column("monitor_id", String(32), ForeignKey("monitors.id"), primary_key=True),
    Column("rule", String(512), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("broken", Integer, nullable=False),
    Column("last_window_end", BigInteger, nullable=False),
)
"""For ``… for N windows`` rules: how many consecutive windows broke the rule so far."""

# -- automation: triggers, their firings, the scheduler's leases ------------------------------------

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("enabled", Integer, nullable=False, default=1),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("next_due_at", BigInteger, nullable=True),
    Column("last_fired_at", BigInteger, nullable=True),
    Column("cursor", Text, nullable=True),
    UniqueConstraint("project", "name", name="uq_triggers_project_name"),
)
"""Schedules and triggers: ``kind`` ``cron`` (``spec``: expression, action), ``dataset`` (a new version
of a dataset starts the action; ``cursor`` is the last version seen) or ``monitor`` (a monitor run on
its schedule); ``next_due_at`` is when it next fires."""

trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("trigger_id", String(32), ForeignKey("triggers.id"), primary_key=True),
    Column("due_at", BigInteger, primary_key=True, autoincrement=False),
    Column("project", String(128), nullable=False),
    Column("fired_at", BigInteger, nullable=False),
    Column("fired_by", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", Text, nullable=False),
)
"""Each firing of a trigger, keyed by the moment it was due: a second scheduler that races for the same
firing fails on the primary key, so a trigger fires once per due time."""

scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
"""Leases held by scheduler processes (``name`` is what is leased: a trigger's id): a row whose
``expires_at`` passed may be taken over."""
