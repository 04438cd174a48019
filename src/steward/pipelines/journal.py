"""Optuna's journal in Steward's own database: one ordered log per tuning study.

Optuna's ``JournalStorage`` keeps a study as the list of operations that built it and replays them to
load it; a backend only has to append operations atomically and read them back in order. This one
stores them in the ``tuning_journal`` table (``study``, ``seq`` from 0), so a study lives beside its
runs, on SQLite or PostgreSQL, with no tables or ``alembic_version`` of Optuna's own (its ``RDBStorage``
would bring both).

Snapshots (Optuna's ``BaseJournalSnapshot``) are pickles, and Steward never unpickles stored bytes, so
this backend keeps none: loading a study replays its log, which takes milliseconds for thousands of
trials' worth of operations.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from sqlalchemy import Connection, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from steward.core.time import now_ms
from steward.errors import Conflict
from steward.store.metadata import MetadataStore
from steward.store.tables import tuning_journal

log = logging.getLogger(__name__)

MAX_APPEND_ATTEMPTS = 50
"""How often an append is tried when other writers keep taking the next numbers first."""

_t = tuning_journal.c
# Built once: Optuna reads the journal before nearly every storage call, so these run very often.
_STUDY = (_t.project == bindparam("project")) & (_t.study == bindparam("study"))
_READ = select(_t.log).where(_STUDY, _t.seq >= bindparam("start")).order_by(_t.seq)
_TOP = select(func.max(_t.seq)).where(_STUDY)
_INSERT = insert(tuning_journal)


class DatabaseJournal(BaseJournalBackend):
    """The journal of one study, in the metadata database.

    Appends are atomic and ordered across threads and processes: each takes the next numbers
    (``max(seq) + 1`` …) inside one transaction, and when another writer took them first (a primary-key
    conflict on PostgreSQL; SQLite's writers queue instead), it tries again with the numbers after.
    Numbers therefore have no gaps, which Optuna relies on: it reads "from log ``n`` on".

    Args:
        store: The metadata database.
        study: The study's name; its log is kept apart from every other study's.
        project: The project it belongs to (studies of the same name in two projects are two studies).

    Example::

        storage = optuna.storages.JournalStorage(DatabaseJournal(platform.metadata, "churn-tune"))
        study = optuna.create_study(storage=storage, study_name="churn-tune", load_if_exists=True)
    """

    def __init__(self, store: MetadataStore, study: str, project: str = "default") -> None:
        self.store = store
        self.study = study
        self.project = project

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        """Return the operations numbered ``log_number_from`` and after, in order."""
        with self.store.read() as conn:
            texts = conn.execute(
                _READ, {"project": self.project, "study": self.study, "start": log_number_from}
            ).scalars()
            return [json.loads(text) for text in texts]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` as consecutive operations, all or none.

        Raises:
            Conflict: If other writers took the next numbers ``MAX_APPEND_ATTEMPTS`` times in a row.
            ServiceUnavailable: If the database cannot be reached.
        """
        if not logs:
            return
        texts = [json.dumps(entry, separators=(",", ":")) for entry in logs]
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                with self.store.transaction() as conn:
                    first = self._next_seq(conn)
                    stamp = now_ms()
                    rows = [
                        {
                            "project": self.project,
                            "study": self.study,
                            "seq": first + i,
                            "log": text,
                            "created_at": stamp,
                        }
                        for i, text in enumerate(texts)
                    ]
                    conn.execute(_INSERT, rows)
                return
            except SqlIntegrityError:
                # Another writer committed these numbers first: wait a little (jittered, so that
                # writers colliding again stays unlikely) and take the numbers after theirs.
                log.debug("journal %s: seq taken, retrying (attempt %d)", self.study, attempt + 1)
                time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
        raise Conflict(
            f"tuning study {self.study!r}: could not append to its journal after "
            f"{MAX_APPEND_ATTEMPTS} attempts (too many concurrent writers)",
            {"field": "study", "study": self.study},
        )

    def _next_seq(self, conn: Connection) -> int:
        top = conn.execute(_TOP, {"project": self.project, "study": self.study}).scalar()
        return 0 if top is None else int(top) + 1


def journal_storage(store: MetadataStore, study: str, project: str = "default") -> JournalStorage:
    """An Optuna storage holding the study ``study`` of ``project`` in the metadata database."""
    return JournalStorage(DatabaseJournal(store, study, project))


def study_exists(store: MetadataStore, study: str, project: str = "default") -> bool:
    """Whether a study of that name has a journal in ``project``."""
    with store.read() as conn:
        found = conn.execute(select(_t.seq).where(_t.project == project, _t.study == study).limit(1)).first()
    return found is not None


def list_studies(store: MetadataStore, project: str = "default") -> list[str]:
    """The names of every study of ``project`` with a journal, sorted."""
    with store.read() as conn:
        query = select(_t.study).where(_t.project == project).distinct().order_by(_t.study)
        return list(conn.execute(query).scalars())


def delete_journal(store: MetadataStore, study: str, project: str = "default") -> int:
    """Forget a study of ``project`` (its trials' runs stay); return how many operations were deleted."""
    with store.transaction() as conn:
        done = conn.execute(delete(tuning_journal).where(_t.project == project, _t.study == study))
        return int(done.rowcount or 0)
