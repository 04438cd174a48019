"""Settings: where Steward keeps its metadata and artifacts, and which server it talks to.

Precedence: explicit argument > environment (``STEWARD_*``) > ``steward.toml`` > defaults. The TOML
file is read from the working directory, or from the path in ``STEWARD_CONFIG``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from steward.core.names import NAME_PATTERN
from steward.errors import InvalidInput

REGION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _toml_path() -> Path:
    return Path(os.environ.get("STEWARD_CONFIG", "steward.toml"))


class Settings(BaseSettings):
    """Steward's settings.

    Attributes:
        home: Folder for the default SQLite database and artifact store (``STEWARD_HOME``).
        db: SQLAlchemy URL of the metadata store (``STEWARD_DB``); SQLite in ``home`` by default.
        artifacts: fsspec URL of the blob store root (``STEWARD_ARTIFACTS``): ``file://…`` or ``s3://…``.
        uri: A Steward server (``STEWARD_URI``, ``http(s)://…``); when set, the SDK talks HTTP to it.
        token: Bearer token sent to the server (``STEWARD_TOKEN``); when unset, ``steward.connect`` uses
            the token ``steward login`` stored for ``uri`` in ``<home>/credentials.json``; never logged.
        region: The data-residency region this installation runs in (``STEWARD_REGION``).
        artifacts_region: The region of the artifact store's location (``STEWARD_ARTIFACTS_REGION``);
            ``region`` unless set. Data and models are written only where their region rules allow.
        allowed_regions: Comma-separated regions this installation's data may reside in
            (``STEWARD_ALLOWED_REGIONS``); unset allows any. A dataset may narrow it further.
        privacy_secret: The key of keyed pseudonymisation (``STEWARD_PRIVACY_SECRET``, 16+ bytes); unless
            set, a random key is created once in ``<home>/keys/privacy.key`` (mode 0600). Never logged.
        s3_endpoint_url: Endpoint of an S3-compatible store (``STEWARD_S3_ENDPOINT_URL``).
        metric_flush_points: Buffered metric points that trigger a flush.
        metric_flush_interval: Seconds after which buffered metric points are flushed.
        encryption_key: The key-encryption key of encryption at rest (``STEWARD_ENCRYPTION_KEY``: 32 bytes
            as 64 hex digits or URL-safe base64); blobs are stored in the clear unless it (or
            ``encryption_key_file``) is set. Never logged.
        encryption_key_file: A file holding that key (``STEWARD_ENCRYPTION_KEY_FILE``).
        signing_key_file: The platform's Ed25519 private key (``STEWARD_SIGNING_KEY_FILE``); created once in
            ``<home>/keys/signing.key`` (mode 0600) unless set. It signs audit checkpoints and model
            manifests.
        audit_checkpoint_every: Sign an audit checkpoint every this many entries.
        project: The project embedded mode and the SDK act in (``STEWARD_PROJECT``); every experiment,
            model and dataset belongs to one.
        auth: Whether the API server makes every request authenticate (``STEWARD_AUTH``; ``steward
            server --auth``).
        max_request_bytes: The largest request body the server accepts (``STEWARD_MAX_REQUEST_BYTES``);
            larger ones get 413.
        oidc_issuer: The OpenID Connect identity provider whose bearer JWTs the server accepts
            (``STEWARD_OIDC_ISSUER``, exactly the tokens' ``iss``); OIDC sign-in is off unless set.
        oidc_audience: The ``aud`` tokens must carry (``STEWARD_OIDC_AUDIENCE``); required with an issuer.
        oidc_jwks_url: Where the provider publishes its signing keys (``STEWARD_OIDC_JWKS_URL``); unless
            set, the ``jwks_uri`` of ``<issuer>/.well-known/openid-configuration``.
        oidc_groups_claim: The claim listing the user's groups (``STEWARD_OIDC_GROUPS_CLAIM``).
        oidc_username_claim: The claim naming the user (``STEWARD_OIDC_USERNAME_CLAIM``); ``sub`` if absent.
        oidc_group_roles: Steward roles per provider group (``STEWARD_OIDC_GROUP_ROLES``), as
            ``group=project:role`` entries separated by ``;`` (``project`` ``*`` for the global roles
            ``admin`` and ``auditor``), e.g. ``ml-team=churn:data-scientist;sec=*:auditor``.
        oidc_algorithms: Comma-separated signature algorithms accepted (``STEWARD_OIDC_ALGORITHMS``);
            asymmetric ones only (RS*, PS*, ES*, EdDSA).
        oidc_leeway_seconds: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``
            (``STEWARD_OIDC_LEEWAY_SECONDS``).
        automation_packages: Comma-separated packages whose pipelines triggers and alert actions may
            import and run (``STEWARD_AUTOMATION_PACKAGES``, e.g. ``mycompany.pipelines,steward``); unset
            allows any importable module. Set it on a shared server: naming a module imports it, which
            runs its code.
        online_store: The feature store's online store (``STEWARD_ONLINE_STORE``): ``sqlite`` (a SQLite
            file in ``home``, the default), ``sqlite:///path/online.db``, or ``redis://host:port/db``.
    """

    model_config = SettingsConfigDict(env_prefix="STEWARD_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".steward")
    db: str | None = None
    artifacts: str | None = None
    uri: str | None = None
    token: str | None = Field(default=None, repr=False)
    region: str = "default"
    artifacts_region: str | None = None
    allowed_regions: str | None = None
    privacy_secret: str | None = Field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    metric_flush_points: int = Field(default=10_000, ge=1)
    metric_flush_interval: float = Field(default=2.0, gt=0)
    encryption_key: str | None = Field(default=None, repr=False)
    encryption_key_file: Path | None = None
    signing_key_file: Path | None = None
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    project: str = "default"
    auth: bool = False
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_groups_claim: str = "groups"
    oidc_username_claim: str = "preferred_username"
    oidc_group_roles: str | None = None
    oidc_algorithms: str = "RS256,ES256"
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)
    online_store: str = "sqlite"
    automation_packages: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, then environment, then ``steward.toml``."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, _toml_path()))

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("STEWARD_URI must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("region", "artifacts_region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not REGION_PATTERN.match(value):
            raise ValueError("a region is 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("project")
    @classmethod
    def _check_project(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "a project name is a letter or digit, then up to 127 letters, digits, '.', '_', '-'"
            )
        return value

    @field_validator("allowed_regions")
    @classmethod
    def _check_allowed(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        regions = [r.strip() for r in value.split(",") if r.strip()]
        bad = [r for r in regions if not REGION_PATTERN.match(r)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a region (1-64 letters, digits, '.', '_' or '-')")
        return ",".join(regions)

    @property
    def store_region(self) -> str:
        """The region the artifact store is in."""
        return self.artifacts_region or self.region

    @property
    def allowed_region_set(self) -> frozenset[str] | None:
        """The regions this installation's data may reside in, or None for any."""
        return frozenset(self.allowed_regions.split(",")) if self.allowed_regions else None

    @property
    def db_url(self) -> str:
        """The metadata store's SQLAlchemy URL, defaulting to ``<home>/steward.db``."""
        return self.db or f"sqlite:///{self.home / 'steward.db'}"

    @property
    def artifacts_url(self) -> str:
        """The blob store's root URL, defaulting to ``file://<home>/artifacts``."""
        return self.artifacts or (self.home / "artifacts").resolve().as_uri()


def load_settings(**overrides: Any) -> Settings:
    """Build ``Settings`` from arguments, environment and ``steward.toml``.

    Raises:
        InvalidInput: If a value is malformed; the message names the setting.
    """
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"invalid setting {field}: {first['msg']}", {"field": field}) from None
