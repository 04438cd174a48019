"""The ``Platform``: settings, metadata store, blob store and the acting identity, shared by services."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from steward.config import Settings
from steward.core.acting import current, os_user
from steward.store.metadata import MetadataStore

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore


@dataclass
class Platform:
    """What every embedded service is built on.

    Args:
        settings: The resolved settings.
        metadata: The metadata database.
        local_actor: Who acts when no request has set an identity (embedded mode: the OS user, whom
            governance treats as ``admin``).
    """

    settings: Settings
    metadata: MetadataStore
    local_actor: str = field(default_factory=os_user)
    _blobs: BlobStore | None = field(default=None, repr=False)
    _blob_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Platform:
        """Open the metadata store (migrating it if needed) named by ``settings``."""
        return cls(settings=settings, metadata=MetadataStore(settings.db_url))

    @property
    def actor(self) -> str:
        """The acting identity's name, as audit entries and ``created_by`` columns record it."""
        acting = current()
        return acting.actor if acting is not None else self.local_actor

    @property
    def project(self) -> str:
        """The project the acting identity works in: the request's, else the settings' ``project``."""
        acting = current()
        return acting.project if acting is not None else self.settings.project

    @property
    def request_id(self) -> str | None:
        """The API request being served, if any."""
        acting = current()
        return acting.request_id if acting is not None else None

    @property
    def blobs(self) -> BlobStore:
        """The blob store, opened on first use (so S3 libraries load only when artifacts are touched)."""
        if self._blobs is None:
            with self._blob_lock:
                if self._blobs is None:
                    from steward.store.blobs import BlobStore

                    self._blobs = BlobStore.from_settings(self.settings)
        return self._blobs

    def close(self) -> None:
        """Release database connections."""
        self.metadata.dispose()
