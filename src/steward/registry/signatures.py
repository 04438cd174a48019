"""Signed model versions: the platform's Ed25519 key signs each version's manifest digests at registration.

What is signed (``signing_message``) is one UTF-8 text, lines joined by ``\\n``::

    steward-model-version/1
    <version id>
    <model name>
    <version number>
    model <sha256 of the primary bundle's steward-model.yaml>
    format <name> <sha256 of that format's steward-model.yaml>      (one line per further format, by name)

The manifest lists every bundle file with its sha256 and size, so the signature covers every byte of
every format. The version's id, model name and number are in the message, so a signature copied onto
another version (of this model or of another project's model of the same name) does not verify. The
signature (hex) and the key's id are stored on the version row (``model_versions.signature`` and
``signing_key_id``). ``model_formats`` has no signature column: the further formats are signed *in the
version's message*, so ``add_format`` re-signs the version over all its formats, in the transaction that
adds the format, and only after checking the signature it replaces (a tampered version is never signed
again on the way).

``verify_version`` reports one line per check: the signing key is the platform's, the signature is
valid, each ``steward-model.yaml`` blob matches its digest and the version's record (the JSON copy the
loader reads), and every file, re-hashed from the blob store while streaming, matches its digest and
size. ``require_verified`` is what loading calls before any model bytes are deserialised.

Versions registered before signing have no signature: they fail verification (and so do not load)
until an admin runs ``steward models sign MODEL VERSION``, which checks every digest first and signs only
what passes (``sign_unsigned``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Connection, Row, select, update

from steward.config import Settings
from steward.errors import Conflict, IntegrityError, InvalidInput, NotFound, StewardError
from steward.governance import audit, signing
from steward.governance.context import current_identity
from steward.registry.models import PRIMARY_FORMAT, ModelVersion
from steward.store.tables import model_formats, model_versions

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from steward.registry.models import RegistryBackend
    from steward.registry.service import RegistryService
    from steward.store.blobs import BlobStore

MESSAGE_PREFIX = "steward-model-version/1"
"""The first line of every signed message; bumped if its layout ever changes."""

SIGN_PERMISSION = "keys:admin"
"""Who may sign a version after the fact (``sign_unsigned``): the platform key's custodians."""


# -- what is signed -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionFacts:
    """What a version's signature covers.

    Attributes:
        version_id: The version's id (unique across models and projects).
        model: The registered model's name.
        version: The version number.
        manifest_digest: sha256 of the primary bundle's ``steward-model.yaml`` blob.
        formats: sha256 of each further format's ``steward-model.yaml``, by format name.
    """

    version_id: str
    model: str
    version: str
    manifest_digest: str
    formats: Mapping[str, str] = field(default_factory=dict)


def signing_message(facts: VersionFacts) -> bytes:
    """Return the bytes a version's signature is over (see the module docstring)."""
    lines = [
        MESSAGE_PREFIX,
        facts.version_id,
        facts.model,
        facts.version,
        f"{PRIMARY_FORMAT} {facts.manifest_digest}",
    ]
    lines += [f"format {name} {facts.formats[name]}" for name in sorted(facts.formats)]
    return "\n".join(lines).encode()


def sign_version(settings: Settings, facts: VersionFacts) -> tuple[str, str]:
    """Sign a version with the platform key (created on first use, see ``signing.platform_signer``).

    Returns:
        ``(key_id, signature)``: the key's id and the Ed25519 signature in hex (128 digits).

    Raises:
        InvalidInput: The configured key file is missing or is not an Ed25519 private key.
    """
    signer = signing.platform_signer(settings)
    return signer.key_id, signer.sign(signing_message(facts)).hex()


# -- the report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of a verification report.

    Attributes:
        name: What was checked: ``key``, ``signature``, ``manifest``, ``file:<path>``,
            ``format:<name>`` or ``format:<name>/file:<path>``.
        ok: Whether it passed.
        detail: What was found, for a person.
    """

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of verifying one version: one ``Check`` per line, ``ok`` if every one passed.

    Attributes:
        model: The model's name.
        version: The version number.
        version_id: The version's id.
        manifest_digest: The primary manifest digest that was checked.
        key_id: The id of the key the version is signed with (None if it is unsigned).
        checks: The checks, in the order they ran.
        signed_now: True when ``sign_unsigned`` has just signed the version.
    """

    model: str
    version: str
    version_id: str
    manifest_digest: str
    key_id: str | None
    checks: tuple[Check, ...]
    signed_now: bool = False

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.model}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what ``GET …/verify`` answers)."""
        return {
            "model": self.model,
            "version": self.version,
            "version_id": self.version_id,
            "manifest_digest": self.manifest_digest,
            "key_id": self.key_id,
            "ok": self.ok,
            "signed_now": self.signed_now,
            "checks": [c.to_json() for c in self.checks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerificationReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            model=str(data["model"]),
            version=str(data["version"]),
            version_id=str(data["version_id"]),
            manifest_digest=str(data["manifest_digest"]),
            key_id=data.get("key_id"),
            checks=tuple(Check(str(c["name"]), bool(c["ok"]), str(c["detail"])) for c in data["checks"]),
            signed_now=bool(data.get("signed_now", False)),
        )


def failure_message(report: VerificationReport) -> str:
    """One sentence naming every failed check of ``report`` and what to do."""
    failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
    return f"{report.uri} failed verification and is refused: {failed}"


def require_verified(backend: RegistryBackend, version: ModelVersion) -> VerificationReport:
    """Verify ``version`` through ``backend`` (embedded or over HTTP) and refuse it unless every check passes.

    Loading calls this before any model bytes are deserialised.

    Returns:
        The report, when the version passed.

    Raises:
        IntegrityError: Naming each failed check (``details["failed"]``); for a version registered before
            signing, saying how an admin signs it.
        NotFound: If the version does not exist.
    """
    report = backend.verify_version(version.model, version.version)
    if (report.version_id, report.manifest_digest) != (version.id, version.manifest_digest):
        # The record changed between resolving the version and verifying it: refuse what was not verified.
        moved = Check("manifest", False, "the version's record changed while it was loaded; load it again")
        report = replace(report, checks=(*report.checks, moved))
    if not report.ok:
        raise IntegrityError(
            failure_message(report),
            {"model": version.model, "version": version.version, "failed": [c.name for c in report.failures]},
        )
    return report


# -- verifying ----------------------------------------------------------------------------------------


def _signing_row(conn: Connection, version_id: str, *, lock: bool = False) -> Row[Any]:
    columns = [
        model_versions.c[name] for name in ("model_id", "manifest_digest", "signature", "signing_key_id")
    ]
    query = select(*columns).where(model_versions.c.id == version_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no model version {version_id}", {"field": "version"})
    return row


def _format_rows(conn: Connection, version_id: str) -> dict[str, Row[Any]]:
    columns = [model_formats.c[name] for name in ("name", "manifest_digest", "manifest")]
    query = select(*columns).where(model_formats.c.version_id == version_id)
    return {row.name: row for row in conn.execute(query)}


def _key_check(public_key: Ed25519PublicKey | None, key_id: str | None, facts: VersionFacts) -> Check:
    if key_id is None:
        return Check(
            "key", False,
            f"unsigned: the version was registered before signing; an admin can check its digests and sign "
            f"it with `steward models sign {facts.model} {facts.version}`",
        )  # fmt: skip
    if public_key is None:
        return Check(
            "key", False, f"signed with key {key_id}, but this platform has no signing key to check it"
        )
    platform_id = signing.key_id(public_key)
    if key_id != platform_id:
        return Check(
            "key", False, f"signed with key {key_id}, which is not the platform's key ({platform_id})"
        )
    return Check("key", True, f"signed with key {key_id}, the platform's key")


def _signature_check(
    public_key: Ed25519PublicKey | None, key: Check, signature: str | None, facts: VersionFacts
) -> Check:
    if not key.ok or public_key is None or signature is None:
        return Check("signature", False, "not checked: see the key check")
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        raw = b""
    covered = f"id, name, number and {1 + len(facts.formats)} manifest digest(s)"
    if not signing.verify(signing_message(facts), raw, public_key):
        return Check(
            "signature", False,
            f"not valid over the version's {covered}: its record was altered after signing, or the signature "
            "was copied from another version",
        )  # fmt: skip
    return Check("signature", True, f"valid Ed25519 signature over the version's {covered}")


def _manifest_check(
    blobs: BlobStore, name: str, digest: str, recorded: Mapping[str, Any], model: str, version: str
) -> tuple[Check, Mapping[str, Any] | None]:
    """Check one ``steward-model.yaml`` blob against its digest and the record; return it parsed if good."""
    try:
        stored = yaml.safe_load(blobs.get_bytes(digest))
    except StewardError as exc:
        return Check(name, False, f"steward-model.yaml ({digest[:12]}…) cannot be read: {exc.message}"), None
    except yaml.YAMLError:
        return Check(name, False, f"steward-model.yaml ({digest[:12]}…) is not YAML"), None
    if not isinstance(stored, dict):
        return Check(name, False, f"steward-model.yaml ({digest[:12]}…) is not a mapping"), None
    if (stored.get("name"), stored.get("version")) != (model, version):
        found = f"{stored.get('name')} {stored.get('version')}"
        return Check(name, False, f"steward-model.yaml describes {found}, not {model} {version}"), None
    if stored != recorded:
        differ = sorted(k for k in {*stored, *recorded} if stored.get(k) != recorded.get(k))
        return Check(
            name, False,
            f"the version's record differs from its signed steward-model.yaml in: {', '.join(differ)}",
        ), None  # fmt: skip
    return Check(name, True, f"steward-model.yaml matches its digest {digest[:12]}… and the record"), stored


def _file_checks(blobs: BlobStore, prefix: str, files: Iterable[Any]) -> list[Check]:
    checks = []
    for entry in files:
        path, digest, size = str(entry["path"]), str(entry["digest"]), int(entry["size"])
        name = f"{prefix}file:{path}"
        read = 0
        try:
            for chunk in blobs.iter_chunks(digest):  # hashed while streaming; IntegrityError at the end
                read += len(chunk)
        except StewardError as exc:
            checks.append(Check(name, False, f"altered or missing: {exc.message}"))
            continue
        if read != size:
            checks.append(Check(name, False, f"is {read} bytes, the manifest says {size}"))
        else:
            checks.append(Check(name, True, f"sha256 {digest[:12]}… ({size} bytes)"))
    return checks


def _digest_checks(
    blobs: BlobStore, target: ModelVersion, formats: Mapping[str, Row[Any]], manifest_digest: str
) -> list[Check]:
    manifest_check, stored = _manifest_check(
        blobs, "manifest", manifest_digest, target.manifest, target.model, target.version
    )
    checks = [manifest_check, *_file_checks(blobs, "", (stored or target.manifest).get("files", ()))]
    for name in sorted(formats):
        row = formats[name]
        fmt_check, fmt_stored = _manifest_check(
            blobs,
            f"format:{name}",
            row.manifest_digest,
            json.loads(row.manifest),
            target.model,
            target.version,
        )
        recorded = fmt_stored or json.loads(row.manifest)
        checks += [fmt_check, *_file_checks(blobs, f"format:{name}/", recorded.get("files", ()))]
    return checks


def _signature_checks(settings: Settings, row: Row[Any], facts: VersionFacts) -> list[Check]:
    """The ``key`` and ``signature`` checks of a version row over ``facts``."""
    try:
        public_key = signing.platform_public_key(settings)
    except InvalidInput as exc:
        return [Check("key", False, exc.message), Check("signature", False, "not checked: see the key check")]
    key = _key_check(public_key, row.signing_key_id, facts)
    return [key, _signature_check(public_key, key, row.signature, facts)]


def _facts(target: ModelVersion, row: Row[Any], formats: Mapping[str, Row[Any]]) -> VersionFacts:
    digests = {name: str(r.manifest_digest) for name, r in formats.items()}
    return VersionFacts(target.id, target.model, target.version, str(row.manifest_digest), digests)


def verify_version(registry: RegistryService, model: str, version: str) -> VerificationReport:
    """Check a version's signature against the platform key, and every digest against the blob store.

    The checks, one report line each: ``key`` (the version is signed, with the platform's key),
    ``signature`` (valid over the version's id, name, number and manifest digests), ``manifest`` (the
    ``steward-model.yaml`` blob matches its digest and the version's record), ``file:<path>`` (each file,
    re-hashed while streaming from the blob store, matches its digest and size), then the same for each
    further format (``format:onnx``, ``format:onnx/file:model.onnx``). Every check runs even after one
    fails, so the report names everything that is wrong. Nothing is created: a platform without a
    signing key fails the ``key`` check.

    Raises:
        NotFound: If the model or version does not exist.
        InvalidInput: If ``version`` is not a SemVer.
    """
    target = registry.get_version(model, version)
    with registry.platform.metadata.read() as conn:
        row = _signing_row(conn, target.id)
        formats = _format_rows(conn, target.id)
    facts = _facts(target, row, formats)
    checks = _signature_checks(registry.platform.settings, row, facts)
    checks += _digest_checks(registry.platform.blobs, target, formats, facts.manifest_digest)
    return VerificationReport(
        target.model, target.version, target.id, facts.manifest_digest, row.signing_key_id, tuple(checks)
    )


# -- signing after the fact ---------------------------------------------------------------------------


def _store_signature(conn: Connection, version_id: str, key_id: str, signature: str) -> None:
    conn.execute(
        update(model_versions)
        .where(model_versions.c.id == version_id)
        .values(signature=signature, signing_key_id=key_id)
    )


def resign_for_format(conn: Connection, settings: Settings, target: ModelVersion, added: str) -> None:
    """Re-sign a version over all its formats, inside the transaction that has just inserted ``added``.

    The version row is locked first (PostgreSQL), so two formats added at once are both covered. The
    signature being replaced must be valid over the formats *without* ``added``; an unsigned version
    stays unsigned (``steward models sign`` checks its digests before signing it).

    Raises:
        IntegrityError: The version's signature does not verify (or is by another key): the transaction
            rolls back and the format is not added.
    """
    row = _signing_row(conn, target.id, lock=True)
    if row.signature is None:
        return
    formats = _format_rows(conn, target.id)
    before = _facts(target, row, {k: v for k, v in formats.items() if k != added})
    checks = _signature_checks(settings, row, before)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise IntegrityError(
            f"{target.uri} failed verification, so no format is added: "
            + "; ".join(f"{c.name}: {c.detail}" for c in failed),
            {"model": target.model, "version": target.version, "failed": [c.name for c in failed]},
        )
    key_id, signature = sign_version(settings, _facts(target, row, formats))
    _store_signature(conn, target.id, key_id, signature)


def sign_unsigned(registry: RegistryService, model: str, version: str) -> VerificationReport:
    """Sign a version that has no valid platform signature, after checking every digest it records.

    For versions registered before signing (or signed with a key the platform no longer holds). A version
    already signed by the platform key is left as it is (``signed_now`` False). The signing is audited
    (``model.sign``) in the transaction that stores the signature.

    Raises:
        Forbidden: The acting identity lacks ``keys:admin``.
        IntegrityError: A digest check fails (nothing is signed), or the version carries a signature by
            the platform key that does not verify (its record was altered after signing: it is not signed
            again; investigate it).
        Conflict: The version's manifests changed while they were being checked.
        NotFound: If the model or version does not exist.
    """
    platform = registry.platform
    current_identity().require(SIGN_PERMISSION, platform.project)
    report = verify_version(registry, model, version)
    key, signature, *digests = report.checks  # _signature_checks always gives the first two
    if key.ok and signature.ok:
        return report
    if key.ok:
        raise IntegrityError(
            f"{report.uri} is signed with the platform key but its signature does not verify: its record was "
            "altered after signing, so it is not signed again; investigate it (or restore it from a backup)",
            {"model": report.model, "version": report.version, "failed": ["signature"]},
        )
    if not all(c.ok for c in digests):
        bad = replace(report, checks=tuple(digests))
        raise IntegrityError(
            failure_message(bad) + " (nothing was signed)",
            {"model": report.model, "version": report.version, "failed": [c.name for c in bad.failures]},
        )
    target = registry.get_version(model, version)
    settings = platform.settings
    with platform.metadata.transaction() as conn:
        row = _signing_row(conn, target.id, lock=True)
        formats = _format_rows(conn, target.id)
        facts = _facts(target, row, formats)
        checked = {
            c.name.removeprefix("format:")
            for c in digests
            if c.name.startswith("format:") and "/" not in c.name
        }
        if facts.manifest_digest != report.manifest_digest or set(formats) != checked:
            raise Conflict(f"{report.uri} changed while it was being checked: run the command again")
        key_id, signed = sign_version(settings, facts)
        _store_signature(conn, target.id, key_id, signed)
        audit.append(
            conn, actor=platform.actor, action="model.sign", resource_kind="model_version",
            resource_id=f"{target.model}/{target.version}", outcome="ok",
            details={"version_id": target.id, "key_id": key_id, "previous_key_id": row.signing_key_id,
                     "formats": sorted(formats)},
            request_id=platform.request_id, after_digest=facts.manifest_digest,
            checkpoint=audit.checkpointer_for(settings), project=platform.project,
        )  # fmt: skip
        after = _signing_row(conn, target.id)
        checks = _signature_checks(settings, after, facts)
    return VerificationReport(
        target.model, target.version, target.id, facts.manifest_digest, key_id, (*checks, *digests), True
    )
