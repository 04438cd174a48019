"""``RemoteRegistryService``: the ``RegistryBackend`` over a Steward server's REST API.

Same signatures, return types and errors as the embedded ``RegistryService``: the server's error bodies
are raised again as the same ``steward.errors`` classes. Names that go into a URL path are checked here
first, with the same functions and messages as the service, because a ``/`` in one would be decoded by
the server and route the request elsewhere. Bundle files are uploaded streamed and downloaded bytes are
checked against the sha256 the server sends in ``X-Steward-Digest``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from steward.client.http import HttpClient, segment
from steward.core.names import validate_name
from steward.core.semver import parse_version
from steward.errors import IntegrityError, InvalidInput, NotFound
from steward.registry.models import (
    PRIMARY_FORMAT,
    AliasEvent,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    VersionSpec,
)
from steward.registry.signatures import VerificationReport

_OCTET = {"Content-Type": "application/octet-stream"}


def _model(name: str) -> str:
    return f"/models/{segment(validate_name(name, 'model'))}"


def _version(model: str, version: str) -> str:
    url = _model(model)
    if not isinstance(version, str) or not version or "/" in version:
        parse_version(version)  # refuses it, as the service does; no SemVer holds '/'
    return f"{url}/versions/{segment(version)}"


def _file_path(path: str) -> str:
    # One segment per '/'-separated part: '.' and '..' stay escaped, so nothing normalises them away.
    return "/".join(segment(part) for part in path.split("/"))


class RemoteRegistryService:
    """The model registry over HTTP: what ``steward.connect("http://…")`` uses.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    # -- registering -------------------------------------------------------------------------------

    def upload_file(self, model: str, local_path: Path, path: str, datasets: Sequence[str] = ()) -> ModelFile:
        """Upload one bundle file (streamed, never read whole) before its version is created.

        Raises:
            InvalidInput: For a bad model name or bundle path, or a file that cannot be read.
        """
        url = f"{_model(model)}/files"
        local_path = Path(local_path)
        try:
            with local_path.open("rb") as stream:
                response = self.http.request(
                    "POST",
                    url,
                    content=stream,
                    params={"path": path, "dataset": list(datasets)},
                    headers=_OCTET,
                )
        except OSError as exc:
            raise InvalidInput(f"cannot read {local_path}: {exc}", {"field": "path"}) from exc
        return ModelFile.from_json(response.json())

    def create_version(self, model: str, spec: VersionSpec) -> ModelVersion:
        """Register a version of ``model`` (created if new) from uploaded files, atomically.

        Raises:
            InvalidInput: For a bad name, SemVer, file list, dataset or metric.
            NotFound: If ``spec.run_id`` names no run.
            Conflict: If the explicit version already exists.
        """
        data = self.http.json("POST", f"{_model(model)}/versions", spec.to_json())
        return ModelVersion.from_json(data)

    def add_format(
        self,
        model: str,
        version: str,
        name: str,
        flavor: str,
        options: Mapping[str, Any],
        files: Sequence[ModelFile],
    ) -> ModelVersion:
        """Attach a further format (``onnx`` …) to an existing version.

        Raises:
            NotFound: If the model or version does not exist.
            Conflict: If the version already has a format called ``name``.
        """
        validate_name(name, "format")
        body = {"flavor": flavor, "options": dict(options), "files": [f.to_json() for f in files]}
        data = self.http.json("POST", f"{_version(model, version)}/formats/{segment(name)}", body)
        return ModelVersion.from_json(data)

    # -- reading -----------------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        """Return a registered model with its highest version and aliases.

        Raises:
            NotFound: If there is no model called ``name``.
        """
        return RegisteredModel.from_json(self.http.json("GET", _model(name)))

    def list_models(self) -> list[RegisteredModel]:
        """Return every registered model, by name."""
        return [RegisteredModel.from_json(m) for m in self.http.json("GET", "/models")["models"]]

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Return a model's versions, lowest first by SemVer precedence.

        Raises:
            NotFound: If there is no such model.
        """
        data = self.http.json("GET", f"{_model(model)}/versions")
        return [ModelVersion.from_json(v) for v in data["versions"]]

    def get_version(self, model: str, version: str) -> ModelVersion:
        """Return one version.

        Raises:
            NotFound: If the model or the version does not exist.
            InvalidInput: If ``version`` is not a SemVer.
        """
        return ModelVersion.from_json(self.http.json("GET", _version(model, version)))

    def resolve(self, reference: str) -> ModelVersion:
        """Resolve ``models:/name/1.2.0``, ``models:/name@alias`` or ``models:/name`` (highest READY).

        Raises:
            InvalidInput: For a malformed reference.
            NotFound: If the model, version or alias does not exist.
        """
        return ModelVersion.from_json(self.http.json("GET", "/resolve", params={"uri": reference}))

    def read_file(self, model: str, version: str, path: str, fmt: str = PRIMARY_FORMAT) -> bytes:
        """Return the bytes of one file of a version's bundle (``steward-model.yaml`` too), verified.

        Raises:
            NotFound: If the version, format or file does not exist.
            IntegrityError: If the bytes do not match the digest the server sent (or it sent none), or
                the server found its stored bytes corrupt.
        """
        url = f"{_version(model, version)}/files/{_file_path(path)}"
        response = self.http.request("GET", url, params={"format": fmt})
        data = response.content
        expected = response.headers.get("x-steward-digest")
        actual = hashlib.sha256(data).hexdigest()
        if expected != actual:
            raise IntegrityError(
                f"file {path!r} of models:/{model}/{version} does not match its digest {expected} "
                f"(received {len(data)} bytes hashing to {actual})",
                {"field": "path", "digest": expected, "actual": actual},
            )
        return data

    # -- aliases and status ------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: str, reason: str = "") -> ModelVersion:
        """Point ``alias`` at ``version`` atomically and record the move; return the version.

        Raises:
            InvalidInput: For a bad or reserved alias name.
            NotFound: If the model or version does not exist.
            Conflict: If the version is archived.
        """
        validate_name(alias, "alias")
        body = {"version": version, "reason": reason}
        return ModelVersion.from_json(
            self.http.json("PUT", f"{_model(model)}/aliases/{segment(alias)}", body)
        )

    def delete_alias(self, model: str, alias: str, reason: str = "") -> None:
        """Remove an alias and record it.

        Raises:
            NotFound: If the model has no such alias.
        """
        url = _model(model)
        if not isinstance(alias, str) or not alias or "/" in alias:  # no alias has such a name
            raise NotFound(f"model {model!r} has no alias {alias!r}", {"field": "alias"})
        self.http.request("DELETE", f"{url}/aliases/{segment(alias)}", params={"reason": reason})

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Return every recorded move of the model's aliases (or of one alias), oldest first."""
        params = {"alias": alias} if alias is not None else None
        data = self.http.json("GET", f"{_model(model)}/aliases/history", params=params)
        return [AliasEvent.from_json(e) for e in data["events"]]

    def archive_version(self, model: str, version: str, reason: str = "") -> ModelVersion:
        """Archive a version: it stays loadable but takes no alias.

        Raises:
            Conflict: While an alias points at it.
        """
        data = self.http.json("POST", f"{_version(model, version)}/archive", {"reason": reason})
        return ModelVersion.from_json(data)

    def restore_version(self, model: str, version: str) -> ModelVersion:
        """Make an archived version READY again."""
        return ModelVersion.from_json(self.http.json("POST", f"{_version(model, version)}/restore"))

    # -- lineage and cards -------------------------------------------------------------------------

    def model_lineage(self, model: str, version: str) -> dict[str, Any]:
        """The chain behind a version: its run (params, metrics, code commit) and dataset versions."""
        return dict(self.http.json("GET", f"{_version(model, version)}/lineage"))

    def dataset_lineage(self, dataset_version_id: str) -> list[dict[str, Any]]:
        """Every model version trained on ``dataset_version_id``."""
        if not dataset_version_id:  # no route takes an empty id, and nothing is trained on one
            return []
        data = self.http.json("GET", f"/lineage/datasets/{segment(dataset_version_id)}")
        return list(data["models"])

    def save_card(self, model: str, version: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Render the version's model card from recorded facts plus ``fields`` and store it.

        Returns:
            ``{"fields": …, "markdown_digest": …, "html_digest": …}``.
        """
        data = self.http.json("PUT", f"{_version(model, version)}/card", {"fields": dict(fields)})
        return dict(data)

    def get_card(self, model: str, version: str, fmt: str = "md") -> str:
        """Return the stored card (``md`` or ``html``), rendering it first if it was never saved.

        Raises:
            InvalidInput: For another format.
        """
        response = self.http.request("GET", f"{_version(model, version)}/card", params={"format": fmt})
        return response.text

    # -- signatures --------------------------------------------------------------------------------

    def verify_version(self, model: str, version: str) -> VerificationReport:
        """Have the server check the version's platform signature and re-hash its files.

        Returns:
            The server's report, ``ok`` if every check passed.

        Raises:
            NotFound: If the model or version does not exist.
        """
        return VerificationReport.from_json(self.http.json("GET", f"{_version(model, version)}/verify"))
