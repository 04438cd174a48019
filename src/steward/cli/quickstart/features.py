"""The "features" stage: the patients' measurements as a feature view, a point-in-time correct training
set built from it, a model trained on that set, the online store, and an endpoint that reads the
features by patient id before it predicts.

Each patient was measured twice — 60 days ago (values a little lower: the tumour was smaller) and 30
days ago — and diagnosed 20 days ago. A few diagnoses fall between the visits and must see the first
visit's values; a few fall before any visit and keep their place with nulls. The training set is the
point-in-time join of the diagnoses with the view; the model is trained on the rows that have values;
``materialize`` writes each patient's latest visit to the online store; and requests to the endpoint
``diagnosis`` carry only ``patient_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
from rich.markup import escape

import steward
from steward.cli.output import new_table
from steward.cli.quickstart.ingest import patient_table
from steward.cli.quickstart.serve import inference_server
from steward.cli.quickstart.state import ID_COLUMN, TARGET, TARGET_NAMES, Demo
from steward.errors import NotFound
from steward.features import DatasetSource, Entity, Feature, FeatureService, FeatureView

if TYPE_CHECKING:
    from steward.deploy.service import DeployService

MEASUREMENTS = "patient-measurements"
VIEW = "measurements"
SERVICE = "diagnosis"
MODEL = "diagnosis"
ENDPOINT = "diagnosis"
TRAINING_SET = "diagnosis-training"
FEATURES = ("mean radius", "mean texture", "mean smoothness", "worst area", "worst concavity")
GATE_ALIAS = "staging"
"""Endpoints pass the policies of an alias; the demo's policy guards ``production`` (see "govern"),
this model is a second, smaller one."""


def visits(seed: int, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The measurements (two visits per patient) and the diagnoses (entity rows with their labels)."""
    patients = patient_table(seed)
    rng = np.random.default_rng(seed)
    first = patients[[ID_COLUMN, *FEATURES]].copy()
    first[list(FEATURES)] = first[list(FEATURES)] * 0.9
    first["measured_at"] = now - timedelta(days=60)
    second = patients[[ID_COLUMN, *FEATURES]].copy()
    second["measured_at"] = now - timedelta(days=30)
    measurements = pd.concat([first, second], ignore_index=True)
    days_ago = np.full(len(patients), 20.0)
    between = rng.choice(len(patients), size=25, replace=False)
    days_ago[between[:20]] = 45.0  # between the visits: must see the first one's values
    days_ago[between[20:]] = 75.0  # before any visit: nulls, the row kept
    diagnoses = pd.DataFrame(
        {
            ID_COLUMN: patients[ID_COLUMN],
            "diagnosed_at": [now - timedelta(days=float(d)) for d in days_ago],
            TARGET: patients[TARGET],
        }
    )
    return measurements, diagnoses


def definitions() -> list[Any]:
    """The entity, the view and the service."""
    return [
        Entity("patient", (ID_COLUMN,), description="a patient, by the demo's synthetic id"),
        FeatureView(
            name=VIEW,
            entities=("patient",),
            source=DatasetSource(MEASUREMENTS),
            timestamp="measured_at",
            features=tuple(Feature(f) for f in FEATURES),
            ttl=timedelta(days=90),
            description="the biopsy's measurements at each visit",
            owner="quickstart",
        ),
        FeatureService(
            SERVICE, tuple(f"{VIEW}:{f}" for f in FEATURES), description="the diagnosis model's inputs"
        ),
    ]


def _point_in_time_summary(frame: pd.DataFrame, measurements: pd.DataFrame, now: datetime) -> str:
    """Say what the join did with the diagnoses before any visit and between the two."""
    first_visit = measurements[measurements["measured_at"] == now - timedelta(days=60)].set_index(ID_COLUMN)
    when = frame["diagnosed_at"]
    before = frame[when < now - timedelta(days=60)]
    between = frame[(when >= now - timedelta(days=60)) & (when < now - timedelta(days=30))]
    saw_first = np.isclose(
        between["mean radius"].to_numpy(), first_visit.loc[between[ID_COLUMN], "mean radius"]
    )
    nulls = int(before["mean radius"].isna().sum())
    return (
        f"Training set {TRAINING_SET}: all {len(frame)} diagnoses, in order. {nulls} of the "
        f"{len(before)} made before any visit kept their place with nulls; {int(saw_first.sum())} of "
        f"the {len(between)} made between the visits got the first visit's values, never the later one's."
    )


def _train(demo: Demo, training: pd.DataFrame) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training[list(FEATURES)], training[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=demo.seed, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    return model, float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


def _endpoint(deploy: DeployService, version: str) -> None:
    try:
        endpoint = deploy.get_endpoint(ENDPOINT)
    except NotFound:
        deploy.create_endpoint(ENDPOINT, MODEL, version, gate_alias=GATE_ALIAS, feature_service=SERVICE,
                               description="the diagnosis model, fed by the feature store")  # fmt: skip
        return
    if all(a.version != version for a in endpoint.arms):  # a rerun registered a new version
        if endpoint.active_rollout is not None:
            deploy.abort(ENDPOINT, reason="quickstart: a rollout left over from an earlier run")
        deploy.delete_endpoint(ENDPOINT, reason="quickstart: serving the version trained now")
        _endpoint(deploy, version)


def run_features(demo: Demo) -> None:
    """Stage "features": a feature view, a point-in-time training set, the online store, an endpoint
    that reads features by entity key."""
    from steward.deploy.service import DeployService
    from steward.registry.service import RegistryService

    out = demo.console
    connection = steward.default_connection()
    registry = connection.registry
    if not isinstance(registry, RegistryService):
        out.print("Skipped: the demo runs its inference server in this process, which needs embedded mode.")
        return
    now = datetime.now(UTC).replace(microsecond=0)
    measurements, diagnoses = visits(demo.seed, now)
    version = steward.ingest(pa.Table.from_pandas(measurements, preserve_index=False), MEASUREMENTS).version
    report = steward.apply_features(definitions())
    out.print(
        f"Measurements: {len(measurements)} rows ({version.ref if version else '?'}), two visits a patient. "
        f"Applied: {', '.join(report.created + report.updated) or 'nothing new'}"
        f"{' (unchanged: ' + ', '.join(report.unchanged) + ')' if report.unchanged else ''}."
    )
    table = steward.get_historical_features(
        diagnoses, SERVICE, timestamp="diagnosed_at", save_as=TRAINING_SET
    )
    frame = table.to_pandas()
    kept = frame.dropna(subset=list(FEATURES))
    out.print(_point_in_time_summary(frame, measurements, now))
    model, auc = _train(demo, kept)
    training_version = steward.get_dataset_version(f"{TRAINING_SET}")
    signature = steward.infer_signature(kept[list(FEATURES)], model.predict_proba(kept[list(FEATURES)]))
    mv = steward.register_model(MODEL, model, signature=signature, datasets={"train": training_version.id},
                                predict_fn="predict_proba", metrics={"test_roc_auc": auc})  # fmt: skip
    out.print(
        f"Registered [bold]{MODEL} {mv.version}[/bold] (test ROC AUC {auc:.3f}) from {training_version.ref}."
    )
    run = steward.materialize_features([VIEW])[0]
    written = (
        f"{run.rows} latest rows, {run.entities} patients to the online store"
        if run.rows
        else "nothing newer than its last run"
    )
    out.print(f"Materialised {VIEW} (event times up to {run.end:%Y-%m-%d %H:%M}): {written}.")
    deploy = DeployService(registry.platform, registry)
    _endpoint(deploy, mv.version)
    by_label = diagnoses.groupby(TARGET)[ID_COLUMN]
    ids = [*by_label.nth(0), *by_label.nth(1), "P-999999"]  # two of each label, and an unknown patient
    with inference_server(registry.platform.settings, (ENDPOINT,)) as url:
        answered = httpx.post(
            f"{url}/predict/{ENDPOINT}", json={"records": [{ID_COLUMN: i} for i in ids[:4]]}, timeout=10
        )
        unknown = httpx.post(f"{url}/predict/{ENDPOINT}", json={"records": [{ID_COLUMN: ids[4]}]}, timeout=10)
    grid = new_table("patient_id", "P(benign)", "label")
    body = answered.json()
    labels = dict(zip(diagnoses[ID_COLUMN], diagnoses[TARGET], strict=True))
    for pid, prediction in zip(ids[:4], body.get("predictions", []), strict=False):
        benign = prediction[1] if isinstance(prediction, list) else prediction
        grid.add_row(pid, f"{float(benign):.3f}", TARGET_NAMES[int(labels[pid])])
    out.print(f"POST /predict/{ENDPOINT} with only patient ids (the server read the features online):")
    out.print(grid)
    refusal = unknown.json().get("error", {}).get("message", "")
    out.print(f"An unknown patient: {unknown.status_code} {escape(str(refusal))}")
    demo.notes.append(
        f"The {MODEL} model was trained on a point-in-time correct training set ({TRAINING_SET}) built from "
        f"the feature view {VIEW}; its endpoint reads the same features from the online store by patient id."
    )
    demo.next_steps += [
        ("steward features list", "entities, feature views and services"),
        (f"steward features skew {VIEW}", "offline against online values (training/serving skew)"),
        (f"steward features online {SERVICE} --entity {ID_COLUMN}={ids[0]}", "a patient's online features"),
    ]
