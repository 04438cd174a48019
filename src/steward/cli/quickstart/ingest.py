"""The "ingest" stage: the breast-cancer patients, checked, profiled, scanned and protected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Column, Table

import steward
from steward.cli.output import (
    format_number,
    new_table,
    sparkline,
)
from steward.cli.quickstart.state import (
    DATASET_NAME,
    ID_COLUMN,
    TARGET,
    Demo,
)
from steward.core.time import from_ms

if TYPE_CHECKING:
    pass


def patient_table(seed: int) -> pd.DataFrame:
    """Return the breast-cancer biopsies as a table of patients: an id, the 30 features, target, an e-mail.

    The ids (``P-000123``) and e-mails (``patient123@example.org``) are synthetic: a permutation of the
    row numbers drawn from ``seed``, so the same seed always gives the same table, byte for byte.

    Args:
        seed: Seeds which number each row gets.
    """
    from sklearn.datasets import load_breast_cancer

    table: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    numbers = np.random.default_rng(seed).permutation(len(table)) + 1
    table.insert(0, ID_COLUMN, [f"P-{n:06d}" for n in numbers])
    table["contact_email"] = [f"patient{n}@example.org" for n in numbers]
    return table


def expectations(features: list[str]) -> dict[str, Any]:
    """Return the checks every ingestion of the dataset must pass (``DatasetSchema``'s dict form).

    Args:
        features: The names of the numeric feature columns: measurements, so never negative.
    """
    columns: dict[str, Any] = {
        ID_COLUMN: {"type": "string", "nullable": False, "unique": True, "regex": r"P-[0-9]{6}"}
    }
    columns |= {name: {"type": "float64", "min": 0} for name in features}
    columns["mean radius"] |= {"max": 100}  # mm: a radius beyond 10 cm is a unit or entry error
    columns["mean area"] |= {"max": 10_000}
    columns[TARGET] = {"type": "int64", "nullable": False, "allowed": [0, 1]}
    columns["contact_email"] = {"type": "string", "regex": r"[^@\s]+@[^@\s]+\.[a-z]+"}
    return {
        "columns": columns,
        "min_rows": 500,
        "sql_checks": {"worst_radius_at_least_mean": '"worst radius" >= "mean radius"'},
    }


PRIVACY: dict[str, Any] = {
    "by_column": {ID_COLUMN: {"action": "pseudonymize"}},
    "by_tag": {"email": {"action": "drop"}},
}
"""The dataset's privacy policy (``PrivacyPolicy``'s dict form): the patient id becomes a keyed hash,
which still joins but cannot be reversed without this installation's key; e-mail addresses are dropped."""


def show_ingestion(
    demo: Demo, raw: steward.DatasetVersion, protected: steward.DatasetVersion, since: int
) -> None:
    """Print what the pipeline's ingest step published: the versions, the checks, the PII, a profile.

    Args:
        demo: The demo's state (its console).
        raw: The raw version.
        protected: Its protected copy.
        since: Unix ms when the pipeline started: versions older than that were reused.
    """
    service = steward.default_connection().data
    # The ingestion's own report stays in its step: run the same checks on what it stored, to count them.
    checks = service.validate_version(DATASET_NAME, number=raw.number)
    out = demo.console
    started = from_ms(since)
    out.print(f"Ingested breast-cancer.csv ({len(raw.arrow_schema)} columns): {checks.summary()}.")
    out.print(_versions_table(raw, protected, raw.created_at < started, protected.created_at < started))
    found = raw.pii_tags
    pii = ", ".join(f"{escape(c)} → {escape(', '.join(t))}" for c, t in found.items()) or "none"
    out.print(f"Personal data found in {raw.ref}: {pii}.")
    out.print(f"Privacy policy: {_policy_effects(raw, found)}; every other column kept.")
    out.print(_profile_table(protected, ["mean radius", "mean area", TARGET]))
    demo.raw, demo.dataset = raw, protected
    demo.notes.append(
        f"{protected.ref} is {raw.ref} with the policy applied: pseudonyms are HMAC-SHA-256 under this "
        f"home's key, so they still join but cannot be reversed. Ingesting the same file again publishes "
        f"nothing new: the same content is the same version."
    )
    demo.next_steps += [
        ("steward data list", "every dataset and its latest version"),
        (f"steward data show {DATASET_NAME}", "the protected version: rows, digest, columns, source"),
        (f"steward data profile {DATASET_NAME}", "per-column statistics, with histograms"),
        (f"steward data scan {DATASET_NAME} --version {raw.number}", "the personal data in the raw version"),
    ]


def _versions_table(
    raw: steward.DatasetVersion, protected: steward.DatasetVersion, raw_reused: bool, reused: bool
) -> Table:
    table = new_table(
        Column("Version", no_wrap=True),
        "Kind",
        "Parent",
        Column("Rows", justify="right"),
        Column("Content digest", no_wrap=True),
        Column("", no_wrap=True),
    )
    parent = raw.ref if protected.parent_id == raw.id else str(protected.parent_id)
    for version, kind, source, again in (
        (raw, "raw", "-", raw_reused),
        (protected, "protected", parent, reused),
    ):
        state = "[dim]reused[/dim]" if again else "[green]new[/green]"
        digest = f"{version.content_digest[:12]}…"
        table.add_row(version.ref, kind, source, f"{version.rows:,}", digest, state)
    return table


def _policy_effects(raw: steward.DatasetVersion, found: Mapping[str, list[str]]) -> str:
    """Say what the policy did to each column it did not keep, and which rule made it do so."""
    from steward.data.privacy import PrivacyPolicy

    policy = PrivacyPolicy.from_dict(PRIVACY)
    done = {"drop": "dropped", "pseudonymize": "pseudonymised", "mask": "masked", "generalize": "generalised"}
    effects = []
    for name in (str(c["name"]) for c in raw.arrow_schema):
        rule = policy.rule_for(name, found.get(name, ()))
        if rule.action != "keep":
            why = "its column rule" if name in policy.by_column else f"tag {', '.join(found.get(name, ()))}"
            effects.append(f"{escape(name)} {done[rule.action]} ({why})")
    return ", ".join(effects) or "nothing to do"


def _profile_table(version: steward.DatasetVersion, columns: list[str]) -> Table:
    table = new_table(
        Column("Column", no_wrap=True),
        Column("Min", justify="right"),
        Column("Max", justify="right"),
        Column("Mean", justify="right"),
        Column("Distribution", no_wrap=True),
        title=f"Profile of {version.ref} (a glance; steward data profile shows every column)",
    )
    profiles = {str(c["name"]): c for c in version.profile.get("columns", ())}
    for name in columns:
        stats = profiles.get(name, {})
        counts = (stats.get("histogram") or {}).get("counts") or ()
        table.add_row(
            escape(name),
            format_number(stats.get("min"), digits=4),
            format_number(stats.get("max"), digits=4),
            format_number(stats.get("mean"), digits=4),
            f"[cyan]{sparkline(counts)}[/cyan]",
        )
    return table
