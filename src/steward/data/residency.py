"""Data residency: where a dataset (and what is built on it) may be written.

Every dataset carries a home ``region``; its *allowed* regions are the ones it lists (or, by default,
its home region alone), narrowed by the installation's ``allowed_regions`` (the project restriction
until projects arrive). The artifact store's region is ``Settings.store_region``. Writing a dataset
version, or a model trained on one, into a store outside the allowed regions is refused with
``ResidencyViolation`` naming both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from steward.config import REGION_PATTERN, Settings
from steward.errors import InvalidInput, ResidencyViolation


@dataclass(frozen=True)
class Residency:
    """The regions one dataset may reside in.

    Attributes:
        dataset: The dataset's name.
        region: Its home region.
        allowed: The regions its data may be written to (its home region is always one of them).
    """

    dataset: str
    region: str
    allowed: frozenset[str]

    def permits(self, region: str) -> bool:
        """Whether data of this dataset may be written to a store in ``region``."""
        return region in self.allowed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``allowed`` sorted)."""
        return {"dataset": self.dataset, "region": self.region, "allowed": sorted(self.allowed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Residency:
        """Build from the dict ``to_dict`` returns."""
        return cls(str(data["dataset"]), str(data["region"]), frozenset(str(r) for r in data["allowed"]))


def residency_of(dataset: str, region: str, listed: Iterable[str] | None, settings: Settings) -> Residency:
    """Combine a dataset's own region rules with the installation's.

    Args:
        dataset: Its name.
        region: Its home region.
        listed: The regions it allows (None: its home region only).
        settings: For ``allowed_regions``.
    """
    allowed = frozenset(listed) if listed else frozenset({region})
    installation = settings.allowed_region_set
    if installation is not None:
        allowed &= installation
    return Residency(dataset, region, allowed)


def check_new_dataset(
    dataset: str, region: str, listed: Iterable[str] | None, settings: Settings
) -> list[str] | None:
    """Refuse region rules a dataset may not have; return its allowed list, normalised.

    Raises:
        InvalidInput: A region is not a region name, or the home region is not in its own list.
        ResidencyViolation: The home region is outside the installation's ``allowed_regions``.
    """
    regions = sorted(set(listed)) if listed else None
    for r in [region, *(regions or ())]:
        if not isinstance(r, str) or not REGION_PATTERN.match(r):
            raise InvalidInput(f"{r!r} is not a region name", {"field": "region"})
    if regions is not None and region not in regions:
        raise InvalidInput(
            f"dataset {dataset!r}: its region {region!r} must be one of its allowed regions {regions}",
            {"field": "allowed_regions"},
        )
    installation = settings.allowed_region_set
    if installation is not None and region not in installation:
        raise ResidencyViolation(
            f"dataset {dataset!r} would reside in {region!r}, outside the regions this installation "
            f"allows ({', '.join(sorted(installation))})",
            {"dataset": dataset, "region": region, "allowed": sorted(installation)},
        )
    return regions


def check_write(residency: Residency, store_region: str, what: str) -> None:
    """Refuse to write ``what`` (built from the dataset) into a store in ``store_region``.

    Raises:
        ResidencyViolation: Naming the dataset's allowed regions and the store's region.
    """
    if residency.permits(store_region):
        return
    allowed = ", ".join(sorted(residency.allowed)) or "none"
    raise ResidencyViolation(
        f"{what} of dataset {residency.dataset!r} may reside only in {allowed}; "
        f"the artifact store is in {store_region!r}",
        {
            "dataset": residency.dataset,
            "allowed_regions": sorted(residency.allowed),
            "store_region": store_region,
        },
    )
