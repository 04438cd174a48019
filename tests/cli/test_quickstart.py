"""``steward quickstart``: the end-to-end demo, run once for the module in its own home."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import steward
from steward.cli import quickstart
from steward.cli.app import app
from steward.errors import PolicyViolation
from steward.governance.approvals import ApprovalStatus
from steward.governance.audit import AuditService
from steward.governance.identity import IdentityService
from steward.governance.policy_store import PolicyStore
from steward.registry.promotion import approval_service
from steward.registry.service import RegistryService
from tests.conftest import reset_sdk

runner = CliRunner()

# One quickstart for the whole module: its tests read what that run recorded.
pytestmark = pytest.mark.xdist_group("quickstart")

TRUSTED_TYPES: list[str] = []
"""Types the model file may hold beyond skops' defaults; reviewed, so loading them runs no foreign code."""


@dataclass(frozen=True)
class Demo:
    """What the quickstart printed and where it recorded."""

    home: Path
    stdout: str
    run_id: str
    pipeline_run_id: str
    connection: steward.Connection

    @property
    def pipeline(self) -> steward.PipelineRunInfo:
        """The training pipeline's run."""
        return self.connection.pipelines.get_run(self.pipeline_run_id)

    def step_run(self, key: str) -> str:
        """The child run of one step of the training pipeline."""
        run_id = self.pipeline.step(key).run_id
        assert run_id is not None
        return run_id


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Run ``steward quickstart`` once, into a fresh ``STEWARD_HOME``, and open that home."""
    home = tmp_path_factory.mktemp("quickstart") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEWARD_HOME", str(home))
        for name in ("STEWARD_URI", "STEWARD_DB", "STEWARD_ARTIFACTS"):
            patch.delenv(name, raising=False)
        patch.chdir(home.parent)
        reset_sdk()
        result = runner.invoke(app, ["quickstart"])
        assert result.exit_code == 0, result.output
        found = re.search(r"^Run id: (\S+)$", result.stdout, re.MULTILINE)
        pipeline = re.search(r"^Pipeline run: (\S+) ", result.stdout, re.MULTILINE)
        assert found and pipeline, result.stdout
        connection = steward.connect()
        try:
            yield Demo(home, result.stdout, found.group(1), pipeline.group(1), connection)
        finally:
            connection.close()
            reset_sdk()


def test_the_training_ran_as_a_pipeline_with_a_child_run_per_step(demo: Demo) -> None:
    info = demo.pipeline

    assert info.state is steward.pipelines.models.PipelineState.SUCCEEDED
    assert [s.key for s in info.steps] == ["ingest", "validate", "split", "train", "evaluate", "register"]
    assert info.executor == "processes"
    assert demo.step_run("train") == demo.run_id
    for step in info.steps:
        child = demo.connection.tracking.get_run(step.run_id or "")
        assert child.parent_run_id == demo.pipeline_run_id and child.status is steward.RunStatus.FINISHED
    assert [o.materializer for o in info.step("register").outputs] == ["model_version"]


def test_the_train_step_run_holds_params_and_the_evaluate_step_run_the_test_metrics(demo: Demo) -> None:
    run = demo.connection.tracking.get_run(demo.run_id)
    evaluated = demo.connection.tracking.get_run(demo.step_run("evaluate"))

    assert demo.connection.tracking.get_experiment(run.experiment_id).name == "quickstart"
    assert run.params["model"] == "SGDClassifier"
    assert run.params["epochs"] == "20"
    assert run.params["alpha"] == "0.001"
    for key in ("accuracy", "roc_auc", "f1"):
        assert 0.85 < evaluated.metrics[key] <= 1.0
    assert 0.85 < run.metrics["cv_accuracy_mean"] <= 1.0


def test_metrics_have_a_point_per_epoch_and_per_fold(demo: Demo) -> None:
    loss = demo.connection.tracking.get_metric_history(demo.run_id, "train_loss")
    val = demo.connection.tracking.get_metric_history(demo.run_id, "val_accuracy")
    folds = demo.connection.tracking.get_metric_history(demo.run_id, "cv_fold_accuracy")

    assert loss.steps.tolist() == list(range(1, 21))
    assert val.steps.tolist() == list(range(1, 21))
    assert loss.values[-1] < loss.values[0]
    assert folds.steps.tolist() == [1, 2, 3, 4, 5]
    assert np.all(folds.values > 0.8)


def test_the_model_loads_with_skops_and_predicts(demo: Demo, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.datasets import load_breast_cancer

    path = demo.connection.tracking.download_artifact(demo.run_id, "model.skops", tmp_path / "model.skops")
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= set(TRUSTED_TYPES), f"review these types before trusting them: {untrusted}"
    model = sio.load(path, trusted=untrusted)

    data = load_breast_cancer()
    assert (model.predict(data.data) == data.target).mean() > 0.9


def test_the_plots_are_png_images(demo: Demo, tmp_path: Path) -> None:
    for run_id, name in (
        (demo.step_run("evaluate"), "plots/roc_curve.png"),
        (demo.run_id, "plots/learning_curve.png"),
    ):
        path = demo.connection.tracking.download_artifact(run_id, name, tmp_path / Path(name).name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_artifact_is_recorded_with_its_size(demo: Demo) -> None:
    trained = {a.path: a.size for a in demo.connection.tracking.list_artifacts(demo.run_id)}
    evaluated = {a.path: a.size for a in demo.connection.tracking.list_artifacts(demo.step_run("evaluate"))}

    assert set(trained) == {"model.skops", "plots/learning_curve.png", "features.json"}
    assert set(evaluated) == {"plots/roc_curve.png", "predictions.parquet"}
    assert all(size > 0 for size in [*trained.values(), *evaluated.values()])


def test_the_output_shows_what_was_recorded_and_what_to_run_next(demo: Demo) -> None:
    out = demo.stdout

    assert str(demo.home) in out
    for expected in ("roc_auc", "alpha", "model.skops", "KiB", "FINISHED"):
        assert expected in out
    assert f"steward runs show {demo.run_id}" in out
    assert f"steward runs show {demo.pipeline_run_id}" in out
    assert "steward runs list quickstart" in out
    assert "steward server" in out
    assert "http://127.0.0.1:8080/docs" in out


def test_the_model_is_registered_with_alias_card_and_lineage(demo: Demo) -> None:
    registry = demo.connection.registry
    version = registry.get_version(quickstart.MODEL_NAME, "1.0.0")

    assert version.run_id == demo.run_id
    assert version.datasets["train"] == _versions(demo)[1].id
    assert version.metrics["roc_auc"] > 0.9
    assert version.signature is not None
    names = [column.name for column in version.signature.inputs.columns]
    assert len(names) == 30
    assert "patient_id" not in names
    assert [e.to_version for e in registry.alias_history(quickstart.MODEL_NAME)][:1] == ["1.0.0"]
    card = registry.get_card(quickstart.MODEL_NAME, "1.0.0", "md")
    assert "Not for clinical use" in card
    trained = registry.dataset_lineage(version.datasets["train"])
    assert [(m["model"], m["version"]) for m in trained][:1] == [(quickstart.MODEL_NAME, "1.0.0")]


def test_the_output_shows_the_card_and_lineage(demo: Demo) -> None:
    out = demo.stdout
    protected = _versions(demo)[1]

    assert "same predictions on the test set" in out
    assert "Model card: breast-cancer 1.0.0" in out
    assert "Intended use" in out
    assert f"train: {quickstart.DATASET_NAME}@2 ({protected.id})" in out
    assert f"{protected.id} is breast-cancer@2, the protected copy of breast-cancer@1" in out
    assert f"steward lineage dataset {protected.id}" in out
    assert "steward models versions breast-cancer" in out
    assert "steward lineage model breast-cancer 1.0.0" in out


def _versions(demo: Demo) -> list[steward.DatasetVersion]:
    assert demo.connection.data is not None
    return demo.connection.data.list_versions(quickstart.DATASET_NAME)


def test_the_data_is_ingested_as_a_raw_and_a_protected_version(demo: Demo) -> None:
    raw, protected = _versions(demo)

    assert (raw.ref, protected.ref) == ("breast-cancer@1", "breast-cancer@2")
    assert protected.parent_id == raw.id
    assert raw.rows == protected.rows == 569
    assert raw.pii_tags == {"contact_email": ["email"]}
    raw_columns = [column["name"] for column in raw.arrow_schema]
    assert raw_columns[0] == "patient_id"
    assert raw_columns[-2:] == ["target", "contact_email"]
    assert len(raw_columns) == 33
    assert demo.connection.data is not None
    checks = demo.connection.data.get_dataset(quickstart.DATASET_NAME).expectations
    assert checks is not None
    assert checks["columns"]["mean radius"] == {"type": "float64", "min": 0, "max": 100}
    assert checks["columns"]["patient_id"]["unique"] is True


def test_the_protected_version_drops_emails_and_pseudonymises_patient_ids(demo: Demo) -> None:
    raw, protected = _versions(demo)
    assert demo.connection.data is not None
    before = demo.connection.data.read_table(raw).to_pandas()
    after = demo.connection.data.read_table(protected).to_pandas()

    assert "contact_email" not in after.columns
    assert before["contact_email"].str.fullmatch(r"patient\d+@example\.org").all()
    assert before["patient_id"].str.fullmatch(r"P-\d{6}").all()
    assert after["patient_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert after["patient_id"].nunique() == 569
    assert not set(after["patient_id"]) & set(before["patient_id"])
    # Keyed (HMAC), not a plain hash that anyone could recompute from a known id:
    plain = {hashlib.sha256(value.encode()).hexdigest() for value in before["patient_id"]}
    assert not set(after["patient_id"]) & plain
    assert after.drop(columns="patient_id").equals(before.drop(columns=["patient_id", "contact_email"]))


def test_the_model_lineage_names_the_protected_dataset_version(demo: Demo) -> None:
    protected = _versions(demo)[1]
    lineage = demo.connection.registry.model_lineage(quickstart.MODEL_NAME, "1.0.0")

    [train] = lineage["datasets"]
    assert (train["role"], train["id"], train["ref"]) == (
        "train",
        protected.id,
        f"{quickstart.DATASET_NAME}@2",
    )
    assert [step["ref"] for step in train["chain"]] == [
        f"{quickstart.DATASET_NAME}@2",
        f"{quickstart.DATASET_NAME}@1",
    ]
    trained = demo.connection.registry.dataset_lineage(protected.id)
    assert [(m["model"], m["version"], m["role"]) for m in trained][:1] == [
        (quickstart.MODEL_NAME, "1.0.0", "train")
    ]


def test_the_output_shows_the_ingestion_and_the_data_commands(demo: Demo) -> None:
    out = demo.stdout

    assert re.search(r"\d+ checks passed", out)
    assert "breast-cancer@1" in out
    assert "breast-cancer@2" in out
    for version in _versions(demo):
        assert version.content_digest[:12] in out
    assert "contact_email → email" in out
    assert "patient_id pseudonymised" in out
    assert "contact_email dropped" in out
    assert "mean radius" in out
    for command in (
        "steward data list",
        "steward data show breast-cancer",
        "steward data profile breast-cancer",
        "steward data scan breast-cancer --version 1",
    ):
        assert command in out


def test_the_output_draws_the_dag_and_the_tuning_study(demo: Demo) -> None:
    out = demo.stdout

    for key in ("ingest", "validate", "split", "train", "evaluate", "register"):
        assert re.search(rf"✓ {key}\b", out), key
    assert "Study quickstart-alpha" in out
    assert out.count("COMPLETE") == 10
    assert "Best alpha" in out


def test_the_tuning_study_ran_ten_trials_as_pipeline_runs_and_tagged_the_best(demo: Demo) -> None:
    runs = demo.connection.pipelines.list_runs("tuning", limit=50)
    assert len(runs) == 10
    # every trial after the first reused the dataset version and the split from the cache
    assert all(r.step("split").state is steward.StepState.CACHED for r in runs[:-1])
    parent_id = demo.connection.tracking.get_run(runs[0].run_id).parent_run_id
    assert parent_id is not None
    study_run = demo.connection.tracking.get_run(
        demo.connection.tracking.get_run(parent_id).parent_run_id or parent_id
    )
    assert "best.alpha" in study_run.tags


def _registry(demo: Demo) -> RegistryService:
    registry = demo.connection.registry
    assert isinstance(registry, RegistryService)
    return registry


def _request_id(stdout: str) -> str:
    found = re.search(r"approval request (\w+) waits for 1 more approval", stdout)
    assert found, stdout
    return found.group(1)


def test_the_output_shows_the_verdict_the_approval_and_the_verified_audit_trail(demo: Demo) -> None:
    out = demo.stdout
    request = _request_id(out)

    assert (
        "Created policy quickstart-production version 1: 7 rule(s) gating production of breast-cancer." in out
    )
    assert "breast-cancer 1.0.0 -> production: PENDING APPROVAL" in out
    for rule, actual, required in (
        (r"metrics\.roc_auc >= 0\.95", r"0\.9\d+", r">= 0\.95"),
        (r"metrics\.roc_auc >= current\.metrics\.roc_auc - 0\.01", r"0\.9\d+", r".*\(no current version\)"),
        ("data_validated", "true", r"true  \(validated: breast-cancer@2\)"),
        ("pii_protected", "true", r"true  \(protected: breast-cancer@2\)"),
        ("card_present", "true", "true"),
        ("safe_flavor", "true", "true"),
    ):
        assert re.search(rf"^  PASS  {rule} +actual {actual} +required {required}", out, re.MULTILINE), rule
    assert re.search(
        r"^  FAIL  approvals >= 1 +actual 0 +required >= 1  \(awaiting approvals: 0 of 1\)$",
        out,
        re.MULTILINE,
    )
    assert f"demo-approver approved request {request} (1 of 1): that completes it" in out
    assert "Created the user demo-approver (role approver in project default)" in out
    assert "so may not approve it (separation of duties)" in out
    assert re.search(r"^production now points at breast-cancer 1\.0\.0\.$", out, re.MULTILINE)
    assert re.search(r"^OK: \d+ entries, \d+ signed checkpoints; verified in ", out, re.MULTILINE)
    assert "The audit trail verified" in out
    for command in (
        "steward policy check breast-cancer 1.0.0 --alias production",
        "steward approvals list --status all",
        "steward audit verify",
        "steward models verify breast-cancer 1.0.0",
    ):
        assert command in out


def test_production_took_the_version_through_the_policy_and_an_approval_by_demo_approver(demo: Demo) -> None:
    platform = _registry(demo).platform
    policy = PolicyStore(platform).get("quickstart-production")
    approved = approval_service(_registry(demo)).list(ApprovalStatus.APPROVED)
    [request] = [r for r in approved if r.version == "1.0.0"]
    version = demo.connection.registry.get_version(quickstart.MODEL_NAME, "1.0.0")

    assert policy.in_force and policy.version == 1
    assert policy.policy.models == ("breast-cancer",) and policy.policy.aliases == ("production",)
    assert policy.policy.required_approvals == 1
    assert (request.id, request.version, request.alias) == (_request_id(demo.stdout), "1.0.0", "production")
    assert [(d.approver, d.decision) for d in request.decisions] == [("demo-approver", "approve")]
    assert request.author == request.requested_by == version.created_by != "demo-approver"
    # "govern" moved it to 1.0.0; "serve" and "monitor" moved it on to each retrained version, the same way
    moves = demo.connection.registry.alias_history(quickstart.MODEL_NAME, "production")
    assert [(m.actor, m.to_version) for m in moves][-3:] == [
        ("demo-approver", "1.0.0"),
        ("demo-approver", "1.1.0"),
        ("demo-approver", "1.2.0"),
    ]
    assert [r.version for r in approved] == ["1.0.0", "1.1.0", "1.2.0"]
    members = {m.name: m.roles for m in IdentityService(platform).members("default")}
    assert members["demo-approver"] == ("approver",)
    assert AuditService(platform).verify().ok


def test_the_serve_stage_canaries_the_retrained_version_to_all_traffic_without_a_failed_request(
    demo: Demo,
) -> None:
    from steward.deploy.service import DeployService

    out = demo.stdout
    assert re.search(r"^Retrained: breast-cancer 1\.1\.0 ", out, re.MULTILINE), out
    assert "Canary succeeded: 1.1.0 took 100%; 1.0.0 stands by" in out
    traffic = re.search(
        r"^Traffic: (\d+) requests, 0 not answered 200; by version: 1\.0\.0 \d+, 1\.1\.0 (\d+)$",
        out,
        re.MULTILINE,
    )
    assert traffic and int(traffic.group(2)) > 0, out
    assert re.search(
        r'^steward_requests_total\{code="200",endpoint="breast-cancer",role="canary",version="1\.1\.0"\} \d',
        out,
        re.MULTILINE,
    )
    deploy = DeployService(_registry(demo).platform)
    endpoint = deploy.get_endpoint("breast-cancer")
    assert ("1.1.0", "stable", 1.0) in [(a.version, a.role, a.weight) for a in endpoint.arms]
    listed = sorted(deploy.list_rollouts("breast-cancer"), key=lambda r: r.created_at)
    serve_stage, monitor_stage = (deploy.get_rollout("breast-cancer", r.id) for r in listed)
    assert [e.kind for e in serve_stage.events] == ["started", "step", "succeeded"]
    assert (monitor_stage.version, monitor_stage.events[-1].kind) == ("1.2.0", "rolled_back")
    assert steward.read_predictions("breast-cancer").num_rows >= int(traffic.group(1))


def test_the_features_stage_trains_from_a_point_in_time_training_set_and_serves_by_patient_id(
    demo: Demo,
) -> None:
    from steward.cli.quickstart import features as stage
    from steward.deploy.service import DeployService

    out = demo.stdout
    assert re.search(
        r"^Training set diagnosis-training: all 569 diagnoses, in order\. 5 of the 5 made before any visit "
        r"kept their place with nulls; 20 of the 20 made between the visits got the first visit's values",
        out,
        re.MULTILINE,
    ), out
    assert "Materialised measurements (event times up to" in out and "569 patients to the online store" in out
    answers = re.findall(r"^(P-\d{6})\s+│ (\d\.\d{3})\s+│ (malignant|benign)", out, re.MULTILINE)
    assert len(answers) == 4, out
    assert all((float(p) > 0.5) == (label == "benign") for _pid, p, label in answers), answers
    assert "An unknown patient: 422 feature 'mean radius' (view 'measurements') is missing" in out
    training = steward.get_dataset_version(stage.TRAINING_SET)
    source = steward.get_dataset_version(stage.MEASUREMENTS)
    assert training.rows == 569 and source.rows == 1138
    # an erasure request for the measurements finds the model trained on features built from them
    trained = _registry(demo).dataset_lineage(source.id)
    assert [(m["model"], m["via"]["ref"]) for m in trained] == [("diagnosis", f"{stage.TRAINING_SET}@1")], (
        trained
    )
    endpoint = DeployService(_registry(demo).platform).get_endpoint(stage.ENDPOINT)
    assert endpoint.feature_service == stage.SERVICE


def test_the_monitor_stage_closes_the_loop_from_drift_to_an_automatic_rollback(demo: Demo) -> None:
    from steward.cli.quickstart import monitor as stage
    from steward.deploy.service import DeployService

    out = demo.stdout
    assert re.search(r"alert drift_share > 0\.3: drift_share is [01]\.?\d* \(rule: > 0\.3\)", out), out
    assert "webhook received: breast-cancer-drift: drift_share > 0.3 on breast-cancer" in out
    assert re.search(r"action retrain: succeeded \(pipeline run [0-9a-f]{32}\)", out), out
    assert re.search(r"retrained: breast-cancer 1\.2\.0; production is still 1\.1\.0", out), out
    assert "PENDING APPROVAL" in out and "production → 1.2.0 (through the policy and an approval)" in out
    assert re.search(r"rollout rolled_back: automatic rollback: .*canary p99", out), out
    alerts = steward.list_alerts(stage.MONITOR)
    assert [(a.rule, a.delivered) for a in alerts] == [("drift_share > 0.3", True)]
    assert [a["kind"] for a in alerts[0].actions] == ["retrain"]
    endpoint = DeployService(_registry(demo).platform).get_endpoint("breast-cancer")
    assert [(a.version, a.weight) for a in endpoint.arms if a.weight > 0] == [("1.1.0", 1.0)]


def test_production_moves_only_through_the_gate(demo: Demo) -> None:
    with pytest.raises(PolicyViolation, match="protected by policy 'quickstart-production'"):
        demo.connection.registry.set_alias(quickstart.MODEL_NAME, "production", "1.0.0")


def test_a_rerun_on_the_same_home_reuses_the_cached_steps_and_promotes_the_new_version(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _versions(demo)
    production = demo.connection.registry.get_model(quickstart.MODEL_NAME).aliases["production"]
    monkeypatch.setattr(
        quickstart, "STAGES", [s for s in quickstart.STAGES if s.name not in ("tune", "serve", "monitor")]
    )

    result = runner.invoke(app, ["quickstart"])

    assert result.exit_code == 0, result.output
    assert _versions(demo) == before
    for ref in ("breast-cancer@1", "breast-cancer@2"):
        assert re.search(rf"^{ref} .*\bnew\s*$", demo.stdout, re.MULTILINE), demo.stdout
        assert re.search(rf"^{ref} .*\breused\s*$", result.stdout, re.MULTILINE), result.stdout
    for key in ("validate", "split", "train", "evaluate"):
        assert re.search(rf"↺ {key}\b", result.stdout), result.stdout
    registered = re.search(r"^Registered breast-cancer (\S+) ", result.stdout, re.MULTILINE)
    assert registered and registered.group(1) != "1.0.0", result.stdout
    version = registered.group(1)
    out = result.stdout
    assert "Unchanged: policy quickstart-production version 1" in out
    # the same model again: no regression against 1.0.0 in production
    assert re.search(r"^  PASS  metrics\.roc_auc >= current\.metrics\.roc_auc - 0\.01 ", out, re.MULTILINE)
    assert "The user demo-approver exists already (role approver in project default)" in out
    assert _request_id(out) != _request_id(demo.stdout)
    assert f"production now points at breast-cancer {version} (before: {production})." in out
    assert "The audit trail verified" in out
    platform = _registry(demo).platform
    assert len(PolicyStore(platform).history("quickstart-production")) == 1
    approved = approval_service(_registry(demo)).list(ApprovalStatus.APPROVED)
    assert [r.version for r in approved] == ["1.0.0", "1.1.0", production, version]
    assert demo.connection.registry.get_model(quickstart.MODEL_NAME).aliases["production"] == version
    assert AuditService(platform).verify().ok


def test_home_option_records_into_that_home(
    steward_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quickstart, "STAGES", [])
    other = tmp_path / "elsewhere"

    result = runner.invoke(app, ["quickstart", "--home", str(other)])

    assert result.exit_code == 0, result.output
    assert str(other) in result.stdout
    assert steward.default_connection().settings.home == other
    assert (other / "steward.db").exists()
