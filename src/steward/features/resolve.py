"""Resolve feature references (``view:feature``, ``view``, or a feature service's name) against the
stored definitions into what each view must give: its definition, its join keys and the features."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steward.errors import InvalidInput, NotFound
from steward.features.models import (
    KIND_ENTITY,
    KIND_SERVICE,
    KIND_VIEW,
    Entity,
    FeatureView,
    StoredDefinition,
)
from steward.features.specs import from_spec, parse_ref

Lookup = Callable[[str, str], "StoredDefinition | None"]
"""``(kind, name) ->`` the latest stored version, or None."""


@dataclass(frozen=True)
class Selection:
    """What one view gives a read: the view, its entity join keys (in entity order), its features, and
    what the data layer said of its source when it was applied (``derived``)."""

    view: FeatureView
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    derived: Mapping[str, Any]


def view_of(lookup: Lookup, name: str) -> FeatureView:
    """The stored view ``name``.

    Raises:
        NotFound: Naming the view.
    """
    stored = lookup(KIND_VIEW, name)
    if stored is None:
        raise NotFound(f"feature view {name!r} not found", {"field": "features", "view": name})
    view = from_spec(KIND_VIEW, stored.spec)
    assert isinstance(view, FeatureView)
    return view


def join_keys_of(lookup: Lookup, view: FeatureView) -> tuple[str, ...]:
    """The join keys of a view's entities, in order.

    Raises:
        NotFound: If one of its entities is not defined.
    """
    keys: list[str] = []
    for name in view.entities:
        stored = lookup(KIND_ENTITY, name)
        if stored is None:
            message = f"entity {name!r} of feature view {view.name!r} not found"
            raise NotFound(message, {"field": "entities", "entity": name})
        entity = from_spec(KIND_ENTITY, stored.spec)
        assert isinstance(entity, Entity)
        keys.extend(k for k in entity.join_keys if k not in keys)
    return tuple(keys)


def expand(lookup: Lookup, features: Sequence[str] | str) -> list[str]:
    """The ``view:feature`` references named by a list of references or a feature service's name.

    Raises:
        InvalidInput: If the list is empty or malformed.
        NotFound: For an unknown service, view or feature (naming it).
    """
    if isinstance(features, str):
        if ":" in features:
            refs: Sequence[str] = [features]
        else:
            stored = lookup(KIND_SERVICE, features)
            if stored is None:
                raise NotFound(f"feature service {features!r} not found", {"field": "features"})
            refs = list(stored.spec["features"])
    else:
        refs = list(features)
    if not refs:
        raise InvalidInput("no features asked for", {"field": "features"})
    out: list[str] = []
    for ref in refs:
        if not isinstance(ref, str):
            raise InvalidInput(f"{ref!r} is not a feature reference", {"field": "features"})
        view_name, feature = parse_ref(ref)
        view = view_of(lookup, view_name)
        if feature is None:
            out.extend(f"{view_name}:{f.name}" for f in view.features)
        elif view.feature(feature) is None:
            known = ", ".join(f.name for f in view.features)
            message = f"feature view {view_name!r} has no feature {feature!r} (it has {known})"
            raise NotFound(message, {"field": "features", "feature": ref})
        else:
            out.append(ref)
    return list(dict.fromkeys(out))


def select(lookup: Lookup, features: Sequence[str] | str) -> list[Selection]:
    """Group the references by view, in order of first mention.

    Raises:
        InvalidInput, NotFound: As ``expand`` and ``join_keys_of``.
    """
    grouped: dict[str, list[str]] = {}
    for ref in expand(lookup, features):
        view_name, feature = ref.split(":", 1)
        grouped.setdefault(view_name, []).append(feature)
    out = []
    for view_name, names in grouped.items():
        stored = lookup(KIND_VIEW, view_name)
        view = view_of(lookup, view_name)
        derived = stored.derived if stored is not None else {}
        out.append(Selection(view, join_keys_of(lookup, view), tuple(names), derived))
    return out


def whole_view(lookup: Lookup, name: str) -> Selection:
    """Every feature of view ``name``.

    Raises:
        NotFound: For an unknown view or one of its entities.
    """
    view = view_of(lookup, name)
    stored = lookup(KIND_VIEW, name)
    derived = stored.derived if stored is not None else {}
    return Selection(view, join_keys_of(lookup, view), tuple(f.name for f in view.features), derived)
