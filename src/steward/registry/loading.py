"""Loading a registered version: verify its platform signature and every digest, fetch its bundle,
rebuild the model, enforce the input signature on every prediction.

A version that fails verification (``steward.registry.signatures``), including one registered before
signing, is refused with ``IntegrityError`` before any of its bytes are deserialised."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from steward.core.signature import Signature
from steward.errors import IntegrityError, NotFound
from steward.registry.flavors import get_flavor
from steward.registry.flavors.base import Flavor
from steward.registry.models import PRIMARY_FORMAT, ModelVersion, RegistryBackend
from steward.registry.signatures import require_verified


class StoredBundle:
    """A ``BundleReader`` over one format of a stored version, checking each file against the manifest.

    Args:
        backend: Where the version's files are read from (embedded or remote).
        version: The version.
        fmt: ``"model"`` for the primary bundle, or a further format's name (``"onnx"``).
        cache_root: Where ``local_dir`` materialises the files (one directory per bundle digest).
    """

    def __init__(self, backend: RegistryBackend, version: ModelVersion, fmt: str, cache_root: Path) -> None:
        self._backend = backend
        self._version = version
        self._fmt = fmt
        manifest = version.manifest if fmt == PRIMARY_FORMAT else version.formats[fmt]
        self._files = {f["path"]: (str(f["digest"]), int(f["size"])) for f in manifest.get("files", ())}
        bundle_id = hashlib.sha256(
            "\n".join(f"{p} {d}" for p, (d, _) in sorted(self._files.items())).encode()
        ).hexdigest()
        self._dir = cache_root / bundle_id

    @property
    def paths(self) -> Sequence[str]:
        """The bundle's file paths, sorted."""
        return sorted(self._files)

    def read_bytes(self, path: str) -> bytes:
        """Return one file's bytes after checking them against the manifest's digest.

        Raises:
            NotFound: If the bundle has no such file.
            IntegrityError: If the bytes do not match the recorded digest.
        """
        if path not in self._files:
            raise NotFound(f"{self._version.uri} has no file {path!r}", {"field": "path"})
        digest, _size = self._files[path]
        data = self._backend.read_file(self._version.model, self._version.version, path, self._fmt)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"file {path!r} of {self._version.uri} does not match its recorded digest: it was altered",
                {"path": path, "expected": digest, "actual": actual},
            )
        return data

    def local_dir(self) -> Path:
        """Write every file of the bundle (verified) under one directory and return it.

        Files already there from an earlier load are re-hashed rather than fetched again.
        """
        for path, (digest, _size) in self._files.items():
            target = self._dir / path
            if target.exists() and _sha256_file(target) == digest:
                continue
            data = self.read_bytes(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        return self._dir


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LoadedModel:
    """A registered model ready to predict: ``predict`` enforces the signature, then runs the model.

    Attributes:
        version: The version it was loaded from (number, aliases, manifest …).
        flavor: The flavor's name.
        native: The underlying object (a scikit-learn estimator, an ``InferenceSession`` …).
        signature: The recorded signature, or None.
    """

    def __init__(
        self,
        version: ModelVersion,
        flavor: Flavor,
        native: object,
        options: Mapping[str, Any],
        signature: Signature | None,
    ) -> None:
        self.version = version
        self.flavor = flavor.name
        self.native = native
        self.signature = signature
        self._flavor = flavor
        self._options = dict(options)

    def predict(self, data: Any) -> Any:
        """Check ``data`` against the signature's inputs (if any) and return the model's predictions.

        Raises:
            InvalidInput: If a column is missing or has an incompatible type, or a tensor's shape is wrong.
        """
        if self.signature is not None:
            data = self.signature.inputs.enforce(data)
        return self._flavor.predict(self.native, data, self._options)

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.uri}, flavor={self.flavor!r})"


def load_version(
    backend: RegistryBackend,
    version: ModelVersion,
    cache_root: Path,
    fmt: str = PRIMARY_FORMAT,
    trust: bool = False,
) -> LoadedModel:
    """Rebuild a version's model from its verified bundle.

    Args:
        backend: Where to read the files.
        version: The resolved version.
        cache_root: Where code-bearing flavors may materialise files.
        fmt: ``"model"`` or a further format (``"onnx"``).
        trust: Allow formats that run code when loaded (``pyfunc``) or unvetted types.

    Raises:
        NotFound: If the version has no such format.
        UnsafeArtifact: If loading needs ``trust=True``.
        IntegrityError: If the version fails verification (unsigned, a bad signature, an altered
            manifest or file), naming each failed check; or a file was altered while it was read.
    """
    if fmt != PRIMARY_FORMAT and fmt not in version.formats:
        if fmt == version.flavor:
            fmt = PRIMARY_FORMAT
        else:
            known = ", ".join([PRIMARY_FORMAT, *version.formats])
            raise NotFound(f"{version.uri} has no {fmt!r} format (it has: {known})", {"field": "format"})
    require_verified(backend, version)
    manifest = version.manifest if fmt == PRIMARY_FORMAT else version.formats[fmt]
    flavor = get_flavor(str(manifest["flavor"]))
    options = dict(manifest.get("flavor_options") or {})
    bundle = StoredBundle(backend, version, fmt, cache_root)
    native = flavor.load(bundle, options, trust)
    return LoadedModel(version, flavor, native, options, version.signature)
