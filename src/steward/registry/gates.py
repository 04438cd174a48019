"""The facts a policy gate judges, gathered from the registry and data layers for one model version.

``gather`` turns what is recorded about a version into the plain ``Facts`` that
``steward.governance.policy.evaluate`` reads (the policy engine never reaches into the registry):

- ``metrics.*``: the producing run's latest metrics, with the metrics recorded when the version was
  registered winning where both name a key (the version is immutable; a run may log more later).
- ``fairness.*``: those of its metrics whose keys start with ``fairness.`` (``fairness.dpd``).
- ``current.*``: ``version``, ``flavor``, ``metrics.*`` and ``fairness.*`` of the version holding the
  alias now; absent when none does.
- ``data_validated``: every Steward dataset version it was trained on, and each version those derive
  from, passed its checks: it was published, not released from quarantine despite failed checks.
- ``pii_protected``: no column that a PII scan tagged in a training dataset version is left as it was: a
  tagged column passes only in a version made by a privacy policy that changed it (``protect``); a
  version never scanned fails.
- ``residency_ok``: the artifact store's region is allowed for every training dataset (the registry's
  ``check_residency`` rule, here without refusing or auditing).
- ``card_present``: a model card was saved for the version.
- ``safe_flavor``: no format of the version is code-bearing (``pyfunc``) and no bundle file is a pickle.
- ``approvals``: the approvals of the open request to move the alias to this version.

A version trained on no Steward dataset version records no value for ``data_validated`` and
``pii_protected`` (a rule on them fails: there is nothing to vouch for), while ``residency_ok`` holds
(no region rules apply), as in ``check_residency``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from steward.data import repository as data_repo
from steward.data.residency import check_write, residency_of
from steward.errors import NotFound, ResidencyViolation
from steward.governance.approvals import ApprovalService
from steward.governance.policy import Facts, Verdict, combine, evaluate
from steward.governance.policy_store import PolicyStore, StoredPolicy
from steward.registry import repository as repo
from steward.registry.safety import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from steward.registry.models import ModelVersion
    from steward.registry.service import RegistryService

CODE_BEARING_FLAVORS = frozenset({"pyfunc"})
"""Flavors whose ``code_bearing`` is true: loading them runs the model's own code. Kept by name here so
a gate need not import torch or onnxruntime to ask (``tests/registry/test_promotion.py`` checks it
against the flavors)."""

FAIRNESS_PREFIX = "fairness."
"""Metric keys under this prefix are the version's fairness figures."""


def version_metrics(registry: RegistryService, version: ModelVersion) -> dict[str, float]:
    """The version's metrics: its run's latest ones, overridden by those recorded with the version."""
    found: dict[str, float] = {}
    if version.run_id is not None:
        with contextlib.suppress(NotFound):  # the run is gone: what the version recorded remains
            found.update(registry._tracking.get_run(version.run_id).metrics)
    found.update(version.metrics)
    return found


def _described(registry: RegistryService, version: ModelVersion, prefix: str) -> dict[str, Any]:
    metrics = version_metrics(registry, version)
    values: dict[str, Any] = {f"{prefix}version": version.version, f"{prefix}flavor": version.flavor}
    for key, value in metrics.items():
        values[f"{prefix}metrics.{key}"] = value
        if key.startswith(FAIRNESS_PREFIX):
            values[f"{prefix}fairness.{key[len(FAIRNESS_PREFIX) :]}"] = value
    return values


def _data_facts(conn: Connection, project: str, ids: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``data_validated`` and ``pii_protected`` for the training dataset versions ``ids``."""
    rows = [row for row in (data_repo.version_by_id(conn, project, i) for i in ids) if row is not None]
    if not rows:
        why = "it records no Steward dataset version it was trained on"
        return {}, {"data_validated": why, "pii_protected": why}
    unvalidated: list[str] = []
    for row in rows:
        for link in data_repo.version_ancestry(conn, project, row.id):
            if json.loads(link.source).get("kind") == "quarantine":
                unvalidated.append(f"{link.dataset_name}@{link.number}")
    exposed = [
        f"{row.dataset_name}@{row.number}: {', '.join(cols)}" for row in rows if (cols := _exposed(row))
    ]
    refs = ", ".join(f"{r.dataset_name}@{r.number}" for r in rows)
    notes = {
        "data_validated": (
            f"released from quarantine despite failed checks: {', '.join(dict.fromkeys(unvalidated))}"
            if unvalidated
            else f"validated: {refs}"
        ),
        "pii_protected": f"personal data left unprotected in {'; '.join(exposed)}"
        if exposed
        else f"protected: {refs}",
    }
    return {"data_validated": not unvalidated, "pii_protected": not exposed}, notes


def _exposed(row: Any) -> list[str]:
    """The PII-tagged columns of a dataset version that no privacy policy changed."""
    if row.pii is None:
        return ["(never scanned for personal data)"]
    tagged = [str(f["column"]) for f in json.loads(row.pii) if f.get("tags")]
    source = json.loads(row.source)
    protected = set(source.get("actions") or ()) if source.get("kind") == "privacy" else set()
    return [c for c in tagged if c not in protected]


def _residency(registry: RegistryService, conn: Connection, ids: list[str]) -> tuple[bool, str]:
    platform = registry.platform
    rows = data_repo.datasets_of_versions(conn, platform.project, ids) if ids else []
    if not rows:
        return True, "no Steward dataset version: no region rules apply"
    store = platform.settings.store_region
    for row in rows:
        listed = json.loads(row.allowed_regions) if row.allowed_regions else None
        try:
            check_write(residency_of(row.name, row.region, listed, platform.settings), store, "a model")
        except ResidencyViolation as exc:
            return False, exc.message
    return True, f"the store region {store!r} is allowed for {', '.join(sorted({r.name for r in rows}))}"


def _safety(version: ModelVersion) -> tuple[bool, str]:
    formats: dict[str, Mapping[str, Any]] = {"model": version.manifest, **version.formats}
    risky = [
        f"{name} ({m.get('flavor')})"
        for name, m in formats.items()
        if m.get("flavor") in CODE_BEARING_FLAVORS
    ]
    pickles = [
        f"{name}:{f['path']}"
        for name, m in formats.items()
        for f in m.get("files", ())
        if {s.lower() for s in PurePosixPath(str(f["path"])).suffixes} & PICKLE_SUFFIXES
    ]
    if risky or pickles:
        parts = ([f"code-bearing formats {', '.join(risky)}"] if risky else []) + (
            [f"pickle files {', '.join(pickles)}"] if pickles else []
        )
        return False, "; ".join(parts)
    listed = ", ".join(f"{name} ({m.get('flavor')})" for name, m in formats.items())
    return True, f"formats {listed}"


def gather(registry: RegistryService, version: ModelVersion, alias: str, approvals: int = 0) -> Facts:
    """The facts about ``version`` taking ``alias`` (see the module docstring for each).

    Args:
        registry: The registry the version is in.
        version: The version.
        alias: The alias it would take (``current.*`` describes the version holding it now).
        approvals: How many distinct approvers approved the open request.
    """
    values: dict[str, Any] = {
        "model": version.model,
        "approvals": approvals,
        **_described(registry, version, ""),
    }
    held = registry.get_model(version.model).aliases.get(alias)
    if held is not None:
        values.update(_described(registry, registry.get_version(version.model, held), "current."))
    ids = sorted(set(version.datasets.values()))
    platform = registry.platform
    with platform.metadata.read() as conn:
        data_values, notes = _data_facts(conn, platform.project, ids)
        values["residency_ok"], notes["residency_ok"] = _residency(registry, conn, ids)
        values["card_present"] = repo.card_row(conn, version.id) is not None
    values.update(data_values)
    values["safe_flavor"], notes["safe_flavor"] = _safety(version)
    if not values["card_present"]:
        notes["card_present"] = f"write one: steward models card {version.model} {version.version}"
    return Facts(values, notes)


def _subject(version: ModelVersion, alias: str) -> dict[str, str]:
    return {"model": version.model, "version": version.version, "alias": alias}


def verdict_for(
    registry: RegistryService,
    version: ModelVersion,
    alias: str,
    found: Iterable[StoredPolicy],
    approvals: int,
) -> Verdict:
    """Evaluate ``found`` policies over the facts of ``version`` taking ``alias``, into one verdict."""
    listed = list(found)
    if not listed:
        return combine([], _subject(version, alias))
    facts = gather(registry, version, alias, approvals)
    return combine([evaluate(p.policy, facts, p.version) for p in listed], _subject(version, alias))


def check(registry: RegistryService, model: str, version: str, alias: str = "production") -> Verdict:
    """The verdict of every policy in force that gates ``model`` ``version`` taking ``alias``; acts on
    nothing. Approvals count those of the open request for this move, if any.

    Raises:
        NotFound: The model or version does not exist.
        InvalidInput: For a bad name or version.
    """
    target = registry.get_version(model, version)
    found = PolicyStore(registry.platform).protecting(model, alias)
    if not found:
        return verdict_for(registry, target, alias, found, 0)
    request = ApprovalService(registry.platform).find_open(registry.get_model(model).id, target.id, alias)
    return verdict_for(registry, target, alias, found, request.approvals if request is not None else 0)
