"""The ``Platform``: settings, metadata store, blob store and the acting identity, shared by services."""

from __future__ import annotations

import getpass
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from steward.config import Settings
from steward.store.metadata import MetadataStore

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Platform:
    """What every embedded service is built on.

    Args:
        settings: The resolved settings.
        metadata: The metadata database.
        actor: Who acts (embedded mode acts as the OS user).
    """

    settings: Settings
    metadata: MetadataStore
    actor: str = field(default_factory=_os_user)
    _blobs: BlobStore | None = field(default=None, repr=False)
    _blob_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Platform:
        """Open the metadata store (migrating it if needed) named by ``settings``."""
        return cls(settings=settings, metadata=MetadataStore(settings.db_url))

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
