"""The registry contract: the same behaviour embedded (SQLite, PostgreSQL) and over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml

from steward.core.signature import ColumnSpec, Schema, Signature
from steward.errors import Conflict, IntegrityError, InvalidInput, NotFound
from steward.registry.models import MANIFEST_NAME, ModelFile, RegistryBackend, VersionSpec, VersionStatus
from steward.tracking.models import MetricSeries, SystemInfo, TrackingBackend

if TYPE_CHECKING:
    from tests.registry.conftest import RegistryEnv, Upload


def spec(files: ModelFile | list[ModelFile], **fields: object) -> VersionSpec:
    """A ``VersionSpec`` over ``files`` (these tests never load the files, so any flavor name serves)."""
    listed = [files] if isinstance(files, ModelFile) else files
    return VersionSpec(flavor="sklearn", files=listed, **fields)  # type: ignore[arg-type]


def signature(*columns: tuple[str, str]) -> Signature:
    return Signature(inputs=Schema(columns=tuple(ColumnSpec(name, kind) for name, kind in columns)))


def register(registry: RegistryBackend, upload: Upload, model: str = "churn", **fields: object) -> str:
    """Register a version of ``model`` over one small file and return its number."""
    return registry.create_version(model, spec(upload(model=model), **fields)).version


def test_versions_count_up_by_minor_and_a_new_input_signature_bumps_major(
    registry: RegistryBackend, upload: Upload
) -> None:
    first = registry.create_version("churn", spec(upload(), signature=signature(("a", "float64"))))
    assert (first.version, first.model, first.status) == ("1.0.0", "churn", VersionStatus.READY)
    assert first.uri == "models:/churn/1.0.0"
    assert first.signature == signature(("a", "float64"))
    assert register(registry, upload, signature=signature(("a", "float64"))) == "1.1.0"
    assert register(registry, upload, signature=signature(("a", "float64"), ("b", "int64"))) == "2.0.0"
    assert register(registry, upload) == "2.1.0"  # no signature: nothing to compare, a retrain
    model = registry.get_model("churn")
    assert (model.name, model.latest_version, model.version_count) == ("churn", "2.1.0", 4)
    # Compared with the highest version that has a signature, not with the unsigned 2.1.0.
    assert register(registry, upload, signature=signature(("a", "float64"))) == "3.0.0"


def test_unknown_flavor_is_refused(registry: RegistryBackend, upload: Upload) -> None:
    with pytest.raises(InvalidInput, match="unknown flavor 'raw'"):
        registry.create_version("churn", VersionSpec(flavor="raw", files=[upload()]))
    with pytest.raises(NotFound):
        registry.get_model("churn")


def test_explicit_version_is_checked_and_never_reused(registry: RegistryBackend, upload: Upload) -> None:
    for bad in ("1.2", "v1.0.0", "one"):
        with pytest.raises(InvalidInput) as info:
            register(registry, upload, version=bad)
        assert info.value.details["field"] == "version"
    assert register(registry, upload, version="1.9.0") == "1.9.0"
    with pytest.raises(Conflict):
        register(registry, upload, version="1.9.0")
    assert [v.version for v in registry.list_versions("churn")] == ["1.9.0"]


def test_versions_are_listed_lowest_first_by_semver_precedence(
    registry: RegistryBackend, upload: Upload
) -> None:
    for number in ("1.9.0", "1.10.0", "1.10.0-rc.1", "1.2.0"):
        register(registry, upload, version=number)
    assert register(registry, upload) == "1.11.0"
    listed = [v.version for v in registry.list_versions("churn")]
    assert listed == ["1.2.0", "1.9.0", "1.10.0-rc.1", "1.10.0", "1.11.0"]
    assert registry.get_model("churn").latest_version == "1.11.0"


def test_models_are_listed_by_name_with_their_highest_version_and_aliases(
    registry: RegistryBackend, upload: Upload
) -> None:
    assert registry.list_models() == []
    register(registry, upload, model="fraud")
    register(registry, upload, model="churn")
    register(registry, upload, model="churn")
    registry.set_alias("churn", "production", "1.0.0")
    models = registry.list_models()
    assert [(m.name, m.latest_version, m.version_count) for m in models] == [
        ("churn", "1.1.0", 2),
        ("fraud", "1.0.0", 1),
    ]
    assert models[0].aliases == {"production": "1.0.0"}
    assert models[0] == registry.get_model("churn")


def test_unknown_model_version_alias_and_file_are_not_found(
    registry: RegistryBackend, upload: Upload
) -> None:
    register(registry, upload)
    calls: list[Callable[[], object]] = [
        lambda: registry.get_model("nope"),
        lambda: registry.list_versions("nope"),
        lambda: registry.get_version("nope", "1.0.0"),
        lambda: registry.get_version("churn", "9.9.9"),
        lambda: registry.resolve("models:/nope"),
        lambda: registry.resolve("models:/churn/9.9.9"),
        lambda: registry.resolve("models:/churn@staging"),
        lambda: registry.delete_alias("churn", "staging"),
        lambda: registry.set_alias("churn", "staging", "9.9.9"),
        lambda: registry.alias_history("nope"),
        lambda: registry.archive_version("churn", "9.9.9"),
        lambda: registry.read_file("churn", "1.0.0", "other.bin"),
        lambda: registry.read_file("churn", "1.0.0", "model.bin", fmt="onnx"),
        lambda: registry.model_lineage("churn", "9.9.9"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert registry.dataset_lineage("nope") == []


def test_bad_names_and_version_numbers_are_invalid_input(registry: RegistryBackend, upload: Upload) -> None:
    register(registry, upload)
    calls: list[Callable[[], object]] = [
        lambda: registry.get_model("a/b"),
        lambda: registry.get_version("churn", "1.2"),
        lambda: registry.get_version("churn", "1.0.0/lineage"),
        lambda: registry.create_version("has space", spec(upload())),
        lambda: registry.set_alias("churn", "a/b", "1.0.0"),
        lambda: registry.set_alias("churn", "latest", "1.0.0"),  # reserved: the highest READY version
        lambda: upload(path="../escape.bin"),
        lambda: upload(path=MANIFEST_NAME),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert registry.alias_history("churn") == []


def test_references_resolve_by_version_alias_and_highest_ready(
    registry: RegistryBackend, upload: Upload
) -> None:
    for _ in range(3):
        register(registry, upload)
    registry.set_alias("churn", "staging", "1.1.0")
    assert registry.resolve("models:/churn/1.0.0").version == "1.0.0"
    assert registry.resolve("models:/churn@staging").version == "1.1.0"
    assert registry.resolve("models:/churn").version == "1.2.0"
    assert registry.resolve("models:/churn@latest").version == "1.2.0"
    registry.archive_version("churn", "1.2.0")
    assert registry.resolve("models:/churn").version == "1.1.0"
    assert registry.resolve("models:/churn/1.2.0").status is VersionStatus.ARCHIVED


def test_malformed_reference_is_invalid_input(registry: RegistryBackend) -> None:
    for reference in (
        "churn",
        "models:/",
        "models:/churn/1.0.0@x",
        "models://churn",
        "runs:/churn",
        "models:/a/b/c",
    ):
        with pytest.raises(InvalidInput) as info:
            registry.resolve(reference)
        assert info.value.details["field"] == "uri", reference


def test_alias_moves_atomically_and_history_records_every_move(
    registry: RegistryBackend, upload: Upload
) -> None:
    register(registry, upload)
    register(registry, upload)
    moved = registry.set_alias("churn", "production", "1.0.0", reason="first release")
    assert moved.version == "1.0.0" and moved.aliases == ("production",)
    moved = registry.set_alias("churn", "production", "1.1.0", reason="better auc")
    assert moved.aliases == ("production",)
    assert registry.get_version("churn", "1.0.0").aliases == ()
    assert registry.get_model("churn").aliases == {"production": "1.1.0"}
    registry.set_alias("churn", "staging", "1.0.0")
    registry.delete_alias("churn", "production", reason="incident 42")
    assert registry.get_model("churn").aliases == {"staging": "1.0.0"}
    history = registry.alias_history("churn", "production")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, "1.0.0", "first release"),
        ("1.0.0", "1.1.0", "better auc"),
        ("1.1.0", None, "incident 42"),
    ]
    assert all(e.model == "churn" and e.alias == "production" and e.actor for e in history)
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert history[0].at.tzinfo is not None
    assert [e.alias for e in registry.alias_history("churn")] == ["production"] * 2 + [
        "staging",
        "production",
    ]


def test_archived_version_takes_no_alias_and_a_held_version_cannot_be_archived(
    registry: RegistryBackend, upload: Upload
) -> None:
    register(registry, upload)
    register(registry, upload)
    registry.set_alias("churn", "production", "1.0.0")
    with pytest.raises(Conflict) as info:
        registry.archive_version("churn", "1.0.0")
    assert "production" in info.value.message
    registry.set_alias("churn", "production", "1.1.0")
    archived = registry.archive_version("churn", "1.0.0", reason="superseded")
    assert archived.status is VersionStatus.ARCHIVED and archived.archived_at is not None
    with pytest.raises(Conflict):
        registry.set_alias("churn", "staging", "1.0.0")
    assert registry.read_file("churn", "1.0.0", "model.bin") == b"weights"  # archived stays loadable
    restored = registry.restore_version("churn", "1.0.0")
    assert restored.status is VersionStatus.READY and restored.archived_at is None
    assert registry.set_alias("churn", "staging", "1.0.0").aliases == ("staging",)


def test_read_file_returns_the_exact_bytes_and_the_manifest(
    registry: RegistryBackend, tracking_for_registry: TrackingBackend, upload: Upload
) -> None:
    weights, config = bytes(range(256)) * 40, b"layers: 3\n"
    run = tracking_for_registry.create_run("churn-training")
    files = [upload(weights, "weights/layer 1.bin"), upload(config, "config.yaml")]
    created = registry.create_version(
        "churn",
        spec(
            files,
            run_id=run.id,
            datasets={"train": "ds-train-1"},
            requirements=["numpy==2.0.0"],
            description="baseline",
        ),
    )
    assert registry.read_file("churn", "1.0.0", "weights/layer 1.bin") == weights
    assert registry.read_file("churn", "1.0.0", "config.yaml") == config
    manifest = yaml.safe_load(registry.read_file("churn", "1.0.0", MANIFEST_NAME))
    assert hashlib.sha256(registry.read_file("churn", "1.0.0", MANIFEST_NAME)).hexdigest() == (
        created.manifest_digest
    )
    assert (manifest["name"], manifest["version"], manifest["flavor"]) == ("churn", "1.0.0", "sklearn")
    assert manifest["files"] == [
        {"path": "config.yaml", "digest": hashlib.sha256(config).hexdigest(), "size": len(config)},
        {"path": "weights/layer 1.bin", "digest": hashlib.sha256(weights).hexdigest(), "size": len(weights)},
    ]
    assert manifest["run"]["id"] == run.id
    assert manifest["datasets"] == {"train": "ds-train-1"}
    assert manifest["requirements"] == ["numpy==2.0.0"]
    assert manifest == dict(created.manifest)
    assert [f.path for f in created.files] == ["config.yaml", "weights/layer 1.bin"]


def test_run_metrics_are_copied_into_the_manifest(
    registry: RegistryBackend, tracking_for_registry: TrackingBackend, upload: Upload
) -> None:
    run = tracking_for_registry.create_run("churn-training")
    stamps = np.full(2, 1_000, dtype=np.int64)
    series = [
        MetricSeries("auc", np.asarray([0, 1]), np.asarray([0.7, 0.9]), stamps),
        MetricSeries("loss", np.asarray([0, 1]), np.asarray([0.5, 0.3]), stamps),
    ]
    tracking_for_registry.log_metrics(run.id, series)
    created = registry.create_version(
        "churn", spec(upload(), run_id=run.id, metrics={"loss": 0.25, "f1": 0.8})
    )
    # The run's latest value of each metric, and the spec's own figures over them.
    assert created.metrics == {"auc": 0.9, "loss": 0.25, "f1": 0.8}
    assert yaml.safe_load(registry.read_file("churn", "1.0.0", MANIFEST_NAME))["metrics"] == created.metrics


def test_lineage_of_a_model_and_of_a_dataset(
    registry: RegistryBackend, tracking_for_registry: TrackingBackend, upload: Upload
) -> None:
    system = SystemInfo(user="ana", git_commit="a" * 40, git_dirty=False)
    run = tracking_for_registry.create_run("churn-training", name="baseline", system=system)
    tracking_for_registry.log_params(run.id, {"C": 1.0, "penalty": "l2"})
    register(registry, upload, run_id=run.id, datasets={"train": "ds-1", "eval": "ds-2"})
    register(registry, upload, model="fraud", datasets={"train": "ds-1"})
    lineage = registry.model_lineage("churn", "1.0.0")
    assert (lineage["model"], lineage["version"]) == ("churn", "1.0.0")
    assert lineage["run"]["id"] == run.id
    assert lineage["run"]["experiment"] == "churn-training"
    assert lineage["run"]["params"] == {"C": "1.0", "penalty": "l2"}
    assert lineage["run"]["git_commit"] == "a" * 40
    assert lineage["datasets"] == [{"role": "eval", "id": "ds-2"}, {"role": "train", "id": "ds-1"}]
    assert registry.model_lineage("fraud", "1.0.0")["run"] is None
    trained = registry.dataset_lineage("ds-1")
    assert [(m["model"], m["version"], m["role"]) for m in trained] == [
        ("churn", "1.0.0", "train"),
        ("fraud", "1.0.0", "train"),
    ]
    assert trained[0]["run_id"] == run.id
    assert [(m["model"], m["role"]) for m in registry.dataset_lineage("ds-2")] == [("churn", "eval")]


def test_unknown_run_or_missing_file_registers_nothing(
    registry: RegistryBackend, tracking_for_registry: TrackingBackend, upload: Upload
) -> None:
    with pytest.raises(NotFound):
        registry.create_version("churn", spec(upload(), run_id="no-such-run"))
    never_uploaded = ModelFile("model.bin", hashlib.sha256(b"never sent").hexdigest(), 10)
    with pytest.raises(InvalidInput) as info:
        registry.create_version("churn", spec(never_uploaded))
    assert info.value.details["path"] == "model.bin"
    with pytest.raises(InvalidInput):
        registry.create_version("churn", spec(ModelFile("model.bin", "not-a-digest", 10)))
    with pytest.raises(InvalidInput):
        registry.create_version("churn", spec([]))
    stored = upload()
    with pytest.raises(InvalidInput, match="bytes in the store"):
        registry.create_version("churn", spec(ModelFile(stored.path, stored.digest, stored.size + 1)))
    assert registry.list_models() == []
    with pytest.raises(NotFound):
        registry.get_model("churn")


def test_upload_is_content_addressed(registry: RegistryBackend, upload: Upload, tmp_path: Path) -> None:
    first, again = upload(b"same bytes", "a.bin"), upload(b"same bytes", "b.bin")
    assert first == ModelFile("a.bin", hashlib.sha256(b"same bytes").hexdigest(), 10)
    assert again.digest == first.digest and again.path == "b.bin"
    with pytest.raises(InvalidInput):
        registry.upload_file("churn", tmp_path / "missing.bin", "model.bin")


def test_further_format_is_attached_once_and_read_back(registry: RegistryBackend, upload: Upload) -> None:
    register(registry, upload)
    onnx = upload(b"onnx graph", "model.onnx")
    found = registry.add_format("churn", "1.0.0", "onnx", "onnx", {"opset": 17}, [onnx])
    assert found.formats["onnx"]["flavor"] == "onnx"
    assert found.formats["onnx"]["flavor_options"] == {"opset": 17}
    assert registry.read_file("churn", "1.0.0", "model.onnx", fmt="onnx") == b"onnx graph"
    manifest = yaml.safe_load(registry.read_file("churn", "1.0.0", MANIFEST_NAME, fmt="onnx"))
    assert (manifest["format"], manifest["version"]) == ("onnx", "1.0.0")
    assert manifest["files"] == [onnx.to_json()]
    with pytest.raises(NotFound):  # the primary bundle does not hold it
        registry.read_file("churn", "1.0.0", "model.onnx")
    with pytest.raises(Conflict):
        registry.add_format("churn", "1.0.0", "onnx", "onnx", {}, [onnx])
    with pytest.raises(InvalidInput):
        registry.add_format("churn", "1.0.0", "model", "onnx", {}, [onnx])
    with pytest.raises(NotFound):
        registry.add_format("churn", "9.9.9", "onnx", "onnx", {}, [onnx])
    assert registry.get_version("churn", "1.0.0").formats.keys() == {"onnx"}


def test_tampered_blob_is_refused_on_read(registry_env: RegistryEnv, upload: Upload) -> None:
    registry = registry_env.registry
    stored = upload(b"original weights")
    created = registry.create_version("churn", spec(stored))
    for digest in (stored.digest, created.manifest_digest):
        blob = registry_env.blob_path(digest)
        blob.chmod(0o644)
        blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        registry.read_file("churn", "1.0.0", "model.bin")
    with pytest.raises(IntegrityError):
        registry.read_file("churn", "1.0.0", MANIFEST_NAME)


def test_card_holds_recorded_facts_and_written_sections(registry: RegistryBackend, upload: Upload) -> None:
    register(registry, upload, description="predicts churn")
    saved = registry.save_card("churn", "1.0.0", {"intended_use": "Retention campaigns."})
    assert saved["fields"]["intended_use"] == "Retention campaigns."
    markdown = registry.get_card("churn", "1.0.0")
    assert "Retention campaigns." in markdown and "1.0.0" in markdown
    assert "<html" in registry.get_card("churn", "1.0.0", "html").lower()
    with pytest.raises(InvalidInput):
        registry.get_card("churn", "1.0.0", "pdf")
