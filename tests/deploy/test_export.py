"""``steward deploy export`` and ``steward.deploy.export``: Kubernetes, KServe and Docker outputs.

The Kubernetes objects are validated against the strict Kubernetes JSON schemas that
``kubernetes-validate`` ships (unknown fields fail); the InferenceService against a strict schema
derived from the ``kserve`` package's generated models (``derive_kserve_schema.py``), whose Kubernetes
types resolve into the same strict definitions; the Dockerfile is parsed by BuildKit's own parser (the
``dockerfile`` package) and every requirement must be pinned with ``==``. Each check has a negative
twin that proves it can fail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml
from packaging.requirements import Requirement
from referencing import Registry, Resource
from typer.testing import CliRunner

import steward
from steward.cli.app import StewardGroup
from steward.cli.deploy_export import export
from steward.deploy.export import ExportOptions, export_files, export_objects
from steward.errors import Conflict, InvalidInput, NotFound
from steward.registry.models import ModelVersion, VersionSpec, VersionStatus

K8S_VERSION = kubernetes_validate.latest_version()
KSERVE_SCHEMA = Path(__file__).parent / "schemas" / "inferenceservice-serving.kserve.io-v1beta1.json"
DOCKERFILE_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip

runner = CliRunner()


# -- helpers --------------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    """A ``deploy`` group holding the command, reporting Steward errors as ``steward`` does."""
    group = typer.Typer(cls=StewardGroup)
    group.command("export")(export)

    @group.callback()
    def _deploy() -> None:
        """Deploy models."""

    return group


def run(*args: str, code: int = 0) -> Any:
    """Run ``steward deploy export ARGS``; assert the exit code; return the result."""
    result = runner.invoke(_cli(), ["export", *args])
    assert result.exit_code == code, result.output
    return result


def documents(text: str) -> list[dict[str, Any]]:
    """The YAML documents of ``text``, in order."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def k8s_validate(obj: dict[str, Any]) -> None:
    """Validate one object against the strict Kubernetes schema of its kind."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.fixture(scope="module")
def kserve_validator() -> jsonschema.protocols.Validator:
    """A validator of the derived InferenceService schema, its Kubernetes ``$ref`` s resolved strictly."""
    import importlib.resources

    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = json.loads((folder / f"v{K8S_VERSION}-local-strict" / "_definitions.json").read_text())
    schema = json.loads(KSERVE_SCHEMA.read_text())
    registry: Registry[Any] = Registry().with_resource(
        definitions["$id"], Resource.from_contents(definitions)
    )
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, registry=registry)


def kserve_errors(validator: jsonschema.protocols.Validator, obj: dict[str, Any]) -> list[str]:
    """Every schema error of ``obj``, as ``path: message``."""
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The server's container of a Deployment or an InferenceService."""
    if obj["kind"] == "Deployment":
        containers = obj["spec"]["template"]["spec"]["containers"]
    else:
        containers = obj["spec"]["predictor"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def register(
    model: str = "churn", requirements: tuple[str, ...] = ("scikit-learn==1.9.1", "numpy==2.4.6")
) -> ModelVersion:
    """Register a version of ``model`` over one small file, with ``requirements`` recorded."""
    with closing(steward.connect()) as conn:
        local = Path(f"{model}.bin")
        local.write_bytes(b"weights of " + model.encode())
        uploaded = conn.registry.upload_file(model, local, "model.bin")
        spec = VersionSpec(
            flavor="sklearn", files=[uploaded], requirements=list(requirements), python_version="3.11.9"
        )
        return conn.registry.create_version(model, spec)


@pytest.fixture(scope="module")
def pure() -> ModelVersion:
    """A version made in memory, for the checks of the pure functions (no registry needed)."""
    return ModelVersion(
        id="0190-test", model="churn", version="1.0.0", status=VersionStatus.READY, flavor="sklearn",
        run_id=None, description="", created_at=datetime.now(UTC), created_by="tester", archived_at=None,
        manifest_digest="sha256:" + "0" * 64,
        manifest={"requirements": ["scikit-learn==1.9.1"], "python_version": "3.11.9"},
    )  # fmt: skip


@pytest.fixture
def churn(steward_home: Path) -> Iterator[dict[str, ModelVersion]]:
    """``churn`` 1.0.0 (``production``, with an ``onnx`` format) and 1.1.0 (the highest)."""
    first = register(requirements=("scikit-learn==1.9.1", "numpy==2.4.6", "pyyaml>=6"))
    register()
    with closing(steward.connect()) as conn:
        onnx_file = Path("churn.onnx")
        onnx_file.write_bytes(b"onnx bytes")
        uploaded = conn.registry.upload_file("churn", onnx_file, "model.onnx")
        options = {"requirements": ["onnxruntime==1.22.0", "numpy==1.0.0"]}
        conn.registry.add_format("churn", first.version, "onnx", "onnx", options, [uploaded])
        conn.registry.set_alias("churn", "production", first.version)
        yield {v.version: v for v in conn.registry.list_versions("churn")}


# -- Kubernetes -----------------------------------------------------------------------------------------


def test_kubernetes_export_is_a_valid_deployment_service_and_autoscaler(
    churn: dict[str, ModelVersion],
) -> None:
    objects = documents(run("churn@production", "--target", "kubernetes").stdout)

    assert [(o["apiVersion"], o["kind"]) for o in objects] == [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ]
    for obj in objects:
        k8s_validate(obj)


POD = ("spec", "template", "spec")
SERVER = (*POD, "containers", 0)


def spoilt(obj: dict[str, Any], path: tuple[str | int, ...], key: str, value: object) -> dict[str, Any]:
    """A deep copy of ``obj`` with ``key`` set to ``value`` in the mapping at ``path``."""
    copied = copy.deepcopy(obj)
    target: Any = copied
    for step in path:
        target = target[step]
    target[key] = value
    return copied


@pytest.mark.parametrize(
    ("kind", "path", "key", "value"),
    [
        ("Deployment", SERVER, "imagePullPolcy", "Always"),  # a misspelt field
        ("Deployment", ("spec",), "replicas", "2"),  # a string for an integer
        ("Deployment", (*SERVER, "readinessProbe"), "path", "/"),  # a field one level too high
        ("Service", ("spec", "ports", 0), "port", "80"),
        ("HorizontalPodAutoscaler", ("spec",), "minReplica", 2),
        ("HorizontalPodAutoscaler", ("spec", "metrics", 0, "resource", "target"), "averageUtilization", "70"),
    ],
)
def test_a_wrong_field_name_or_type_fails_the_kubernetes_schema(
    pure: ModelVersion, kind: str, path: tuple[str | int, ...], key: str, value: object
) -> None:
    obj = next(o for o in export_objects(pure, "kubernetes", ExportOptions()) if o["kind"] == kind)

    k8s_validate(obj)
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(spoilt(obj, path, key, value))


def test_pods_serve_the_resolved_version_and_are_probed_on_the_oip_health_routes(
    churn: dict[str, ModelVersion],
) -> None:
    deployment, service, autoscaler = documents(run("churn@production").stdout)
    server = container_of(deployment)
    pod = deployment["spec"]["template"]

    assert server["command"] == ["steward", "serve", "churn/1.0.0", "--host", "0.0.0.0", "--port", "8080"]
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0.0"
    assert pod["metadata"]["labels"]["steward.dev/model"] == "churn"
    assert pod["metadata"]["labels"]["steward.dev/version"] == "1.0.0"
    assert pod["metadata"]["labels"]["steward.dev/alias"] == "production"
    assert pod["metadata"]["annotations"]["steward.dev/model-uri"] == "models:/churn/1.0.0"
    # The Service and the Deployment pick the pods by labels that do not change with the version.
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert (
        selector
        == service["spec"]["selector"]
        == {
            "app.kubernetes.io/name": "churn",
            "app.kubernetes.io/instance": "churn",
        }
    )
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "churn",
    }
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_every_reference_form_resolves_to_its_version(churn: dict[str, ModelVersion]) -> None:
    def served(reference: str) -> str:
        return str(container_of(documents(run(reference).stdout)[0])["command"][2])

    assert served("churn") == "churn/1.1.0"  # the highest READY version
    assert served("churn/1.0.0") == "churn/1.0.0"
    assert served("churn@production") == "churn/1.0.0"
    assert served("models:/churn@production") == "churn/1.0.0"
    follow = documents(run("churn@production", "--follow-alias").stdout)[0]
    assert container_of(follow)["command"][2] == "churn@production"


def test_options_shape_the_manifests(churn: dict[str, ModelVersion]) -> None:
    out = run(
        *("churn/1.0.0", "--name", "churn-api", "--namespace", "ml"),
        *("--image", "registry.example.com/churn:1.0.0", "--image-pull-policy", "Always"),
        *("--replicas", "3", "--min-replicas", "2", "--max-replicas", "6", "--target-cpu", "55"),
        *("--cpu-request", "250m", "--cpu-limit", "none", "--memory-request", "256Mi"),
        *("--memory-limit", "768Mi", "--service-port", "8000", "--secret", "churn-settings"),
    )
    deployment, service, autoscaler = documents(out.stdout)
    server = container_of(deployment)

    for obj in (deployment, service, autoscaler):
        assert obj["metadata"]["name"] == "churn-api"
        assert obj["metadata"]["namespace"] == "ml"
        k8s_validate(obj)
    assert server["image"] == "registry.example.com/churn:1.0.0"
    assert server["imagePullPolicy"] == "Always"
    assert server["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "768Mi"},
    }
    assert server["envFrom"] == [{"secretRef": {"name": "churn-settings"}}]
    assert deployment["spec"]["replicas"] == 3
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (2, 6)
    assert autoscaler["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 55
    assert service["spec"]["ports"][0]["port"] == 8000


def test_no_setting_value_reaches_the_files(
    churn: dict[str, ModelVersion], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_TOKEN", "tok-0123456789-very-secret")
    monkeypatch.setenv("STEWARD_PRIVACY_SECRET", "privacy-secret-abcdefghijkl")
    texts = []
    for target in ("kubernetes", "kserve", "docker"):
        run("churn@production", "--target", target, "--output", str(tmp_path / target))
        texts += [p.read_text() for p in (tmp_path / target).iterdir()]

    assert len(texts) == 4
    assert not any("very-secret" in text or "privacy-secret" in text for text in texts)
    for target, filename in (("kubernetes", "kubernetes.yaml"), ("kserve", "inferenceservice.yaml")):
        workload = documents((tmp_path / target / filename).read_text())[0]
        server = container_of(workload)
        assert {e["name"]: e["value"] for e in server["env"]}.keys() == {"STEWARD_PROJECT", "STEWARD_HOME"}
        assert server["envFrom"] == [{"secretRef": {"name": "steward"}}]


# -- KServe ---------------------------------------------------------------------------------------------


def test_kserve_export_is_a_valid_inference_service_with_its_canary_share(
    churn: dict[str, ModelVersion], kserve_validator: jsonschema.protocols.Validator
) -> None:
    (service,) = documents(
        run("churn@production", "--target", "kserve", "--canary-traffic-percent", "20").stdout
    )
    predictor = service["spec"]["predictor"]
    server = container_of(service)

    assert kserve_errors(kserve_validator, service) == []
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert predictor["canaryTrafficPercent"] == 20
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
    assert server["name"] == "kserve-container"
    assert server["command"] == ["steward", "serve", "churn/1.0.0", "--host", "0.0.0.0", "--port", "8080"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert predictor["labels"]["steward.dev/version"] == "1.0.0"


def test_kserve_without_a_canary_share_routes_all_traffic_to_the_new_revision(
    churn: dict[str, ModelVersion], kserve_validator: jsonschema.protocols.Validator
) -> None:
    (service,) = documents(run("churn", "--target", "kserve").stdout)

    assert "canaryTrafficPercent" not in service["spec"]["predictor"]
    assert kserve_errors(kserve_validator, service) == []


PREDICTOR = ("spec", "predictor")


@pytest.mark.parametrize(
    ("path", "key", "value", "where"),
    [
        (PREDICTOR, "canaryTrafficPercnt", 20, "spec.predictor"),
        (PREDICTOR, "canaryTrafficPercent", "20", "spec.predictor.canaryTrafficPercent"),
        (PREDICTOR, "minReplicas", 1.5, "spec.predictor.minReplicas"),
        ((*PREDICTOR, "containers", 0), "imagee", "x", "spec.predictor.containers.0"),
        (
            (*PREDICTOR, "containers", 0),
            "ports",
            [{"containerPort": "8080"}],
            "spec.predictor.containers.0.ports.0.containerPort",
        ),
        (("spec",), "predictor", None, "spec.predictor"),
        ((), "apiVersion", "serving.kserve.io/v1alpha2", "apiVersion"),
    ],
)
def test_a_wrong_field_name_or_type_fails_the_kserve_schema(
    pure: ModelVersion,
    kserve_validator: jsonschema.protocols.Validator,
    path: tuple[str | int, ...],
    key: str,
    value: object,
    where: str,
) -> None:
    (service,) = export_objects(pure, "kserve", ExportOptions(canary_traffic_percent=10))

    errors = kserve_errors(kserve_validator, spoilt(service, path, key, value))

    assert kserve_errors(kserve_validator, service) == []
    assert errors, "the spoilt InferenceService passed the schema"
    assert any(e.startswith(f"{where}:") for e in errors), errors


# -- Docker ---------------------------------------------------------------------------------------------


def dockerfile_problems(text: str) -> list[str]:
    """What is wrong with a Dockerfile: unparsable, unknown instructions, no FROM first, or a shell-form
    ENTRYPOINT/CMD (which would keep signals from reaching the server)."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        return [f"does not parse: {exc}"]
    problems = [
        f"line {c.start_line}: unknown instruction {c.cmd}"
        for c in commands
        if c.cmd not in DOCKERFILE_INSTRUCTIONS
    ]
    if not commands or commands[0].cmd != "FROM":
        problems.append("the first instruction is not FROM")
    problems += [f"line {c.start_line}: {c.cmd} is not in exec (JSON) form" for c in commands
                 if c.cmd in ("ENTRYPOINT", "CMD") and not c.json]  # fmt: skip
    return problems


def unpinned(requirements: str) -> list[str]:
    """The lines of a requirements file that are not one ``name==version``."""
    bad = []
    for line in requirements.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        specifiers = list(Requirement(line).specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            bad.append(line)
    return bad


def test_dockerfile_parses_and_installs_only_pinned_requirements(
    churn: dict[str, ModelVersion], tmp_path: Path
) -> None:
    out = run("churn@production", "--target", "docker", "--output", str(tmp_path))
    text = (tmp_path / "Dockerfile").read_text()
    requirements = (tmp_path / "requirements.txt").read_text()
    commands = dockerfile.parse_string(text)
    by_kind = {c.cmd: c for c in commands}
    lines = [line for line in requirements.splitlines() if line and not line.startswith("#")]

    assert "Wrote Dockerfile, requirements.txt for models:/churn/1.0.0" in out.stdout
    assert dockerfile_problems(text) == []
    assert by_kind["FROM"].value == ("python:3.11-slim",)
    assert by_kind["COPY"].value == ("requirements.txt", "/opt/steward/requirements.txt")
    assert by_kind["USER"].value == ("10001",)
    assert by_kind["ENTRYPOINT"].value + by_kind["CMD"].value == (
        "steward", "serve", "churn/1.0.0", "--host", "0.0.0.0", "--port", "8080",
    )  # fmt: skip
    assert "/v2/health/live" in by_kind["HEALTHCHECK"].original
    assert unpinned(requirements) == []
    assert f"steward-ml=={steward.__version__}" in lines
    assert "scikit-learn==1.9.1" in lines
    assert "onnxruntime==1.22.0" in lines  # from the onnx format
    assert "numpy==2.4.6" in lines and "numpy==1.0.0" not in lines  # the primary bundle's pin wins
    assert f"pyyaml=={yaml.__version__}" in lines  # recorded as pyyaml>=6: pinned to what is installed


def test_the_dockerfile_and_requirement_checks_catch_broken_files() -> None:
    assert dockerfile_problems('FROM python:3.11-slim\nCMD ["serve"]\n') == []
    assert dockerfile_problems("FROM python:3.11-slim\nRUNN pip install x\n") == [
        "line 2: unknown instruction RUNN"
    ]
    assert dockerfile_problems("FROM python:3.11-slim\nCMD steward serve\n") == [
        "line 2: CMD is not in exec (JSON) form"
    ]
    assert dockerfile_problems("USER 10001\n") == ["the first instruction is not FROM"]
    assert unpinned("a==1.0\nb>=2\nc\nd==1.*\n") == ["b>=2", "c", "d==1.*"]


def test_a_requirement_that_cannot_be_pinned_is_refused(steward_home: Path) -> None:
    version = register("fraud", requirements=("scikit-learn==1.9.1", "pyyaml<1"))

    with pytest.raises(InvalidInput) as caught:
        export_files(version, "docker", ExportOptions())

    assert caught.value.details["field"] == "requirements"
    assert "pyyaml<1" in caught.value.message


def test_the_docker_target_needs_an_output_folder(churn: dict[str, ModelVersion]) -> None:
    result = run("churn", "--target", "docker", code=1)

    assert result.stderr.startswith("error: the docker target writes two files")


def test_a_changed_file_is_not_overwritten_without_force(
    churn: dict[str, ModelVersion], tmp_path: Path
) -> None:
    run("churn", "--output", str(tmp_path))
    run("churn", "--output", str(tmp_path))  # the same content: written again without --force
    (tmp_path / "kubernetes.yaml").write_text("# edited by hand\n")

    refused = run("churn", "--output", str(tmp_path), code=1)
    assert "exists and differs: pass --force" in refused.stderr
    assert (tmp_path / "kubernetes.yaml").read_text() == "# edited by hand\n"
    run("churn", "--output", str(tmp_path), "--force")
    assert documents((tmp_path / "kubernetes.yaml").read_text())[0]["kind"] == "Deployment"


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"min_replicas": 5, "max_replicas": 3}, "min_replicas"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"replicas": 20}, "replicas"),
        ({"replicas": True}, "replicas"),
        ({"max_replicas": "10"}, "max_replicas"),
        ({"canary_traffic_percent": 101}, "canary_traffic_percent"),
        ({"canary_traffic_percent": -1}, "canary_traffic_percent"),
        ({"target_cpu": 0}, "target_cpu"),
        ({"service_port": 70000}, "service_port"),
        ({"cpu_request": "lots"}, "cpu_request"),
        ({"memory_limit": "-1Gi"}, "memory_limit"),
        ({"cpu_request": "3", "cpu_limit": "2500m"}, "cpu_request"),
        ({"memory_request": "2Gi", "memory_limit": "1Gi"}, "memory_request"),
        ({"name": "Churn_API"}, "name"),
        ({"namespace": "Bad NS"}, "namespace"),
        ({"secret": "Settings!"}, "secret"),
        ({"image": "Registry/Churn:latest tag"}, "image"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
        ({"follow_alias": True}, "follow_alias"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    pure: ModelVersion, options: dict[str, Any], field: str
) -> None:
    for target in ("kubernetes", "kserve", "docker"):
        with pytest.raises(InvalidInput) as caught:
            export_files(pure, target, ExportOptions.from_mapping(options))
        assert caught.value.details["field"] == field


def test_bad_numbers_on_the_command_line_are_one_line_errors(churn: dict[str, ModelVersion]) -> None:
    result = run("churn", "--min-replicas", "5", "--max-replicas", "3", code=1)
    canary = run("churn", "--target", "kserve", "--canary-traffic-percent", "150", code=1)

    assert result.stderr == "error: min_replicas (5) must not exceed max_replicas (3)\n"
    assert canary.stderr == "error: canary_traffic_percent must be in 0..100, not 150\n"
    assert "applies to --target kserve only" in run("churn", "--canary-traffic-percent", "5", code=1).stderr


def test_unknown_targets_and_options_are_refused(churn: dict[str, ModelVersion]) -> None:
    with pytest.raises(InvalidInput) as target:
        export_files(churn["1.0.0"], "helm", ExportOptions())
    with pytest.raises(InvalidInput) as option:
        ExportOptions.from_mapping({"replica": 3})

    assert target.value.details["field"] == "target"
    assert option.value.details["field"] == "replica"
    assert "Invalid value for '--target'" in run("churn", "--target", "helm", code=2).output


def test_unknown_models_versions_and_aliases_are_not_found(churn: dict[str, ModelVersion]) -> None:
    for reference in ("fraud", "churn/9.9.9", "churn@staging"):
        assert run(reference, code=1).stderr.startswith("error: ")
    with closing(steward.connect()) as conn, pytest.raises(NotFound):
        conn.registry.resolve("models:/churn@staging")
    malformed = run("churn/1.0.0@production", code=1).stderr
    assert malformed.startswith("error: invalid model reference 'churn/1.0.0@production'")


def test_an_archived_version_is_not_exported(churn: dict[str, ModelVersion]) -> None:
    with closing(steward.connect()) as conn:
        archived = conn.registry.archive_version("churn", "1.1.0", "superseded")

    with pytest.raises(Conflict) as caught:
        export_files(archived, "kubernetes", ExportOptions())
    assert "--restore" in caught.value.message


def test_export_works_through_a_server(
    steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_URI", steward_server)
    register("churn")

    deployment = documents(run("churn/1.0.0").stdout)[0]

    assert container_of(deployment)["command"][2] == "churn/1.0.0"
    assert deployment["metadata"]["annotations"]["steward.dev/model-uri"] == "models:/churn/1.0.0"
