"""Pin what a model needs to load: distributions at the versions installed here.

A flavor reports distribution names (``"scikit-learn"``) and the top-level modules its classes come
from (``"xgboost"``); the user may add requirements of their own. ``pinned_requirements`` turns all of
them into one sorted list of requirement strings for the model version's manifest.

The module → distribution map and the installed versions are read from the environment once per
process (``importlib.metadata`` scans every installed distribution, which takes tens of milliseconds)
and cached; a package installed or upgraded after the first call is not seen until a restart.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from steward.errors import InvalidInput


def pinned_requirements(
    packages: Iterable[str], modules: Iterable[str], extra: Iterable[str] = ()
) -> list[str]:
    """Return requirement strings pinning a model's dependencies to the installed versions.

    Each distribution in ``packages``, and each distribution that provides a module in ``modules``,
    becomes ``name==version`` with the canonical distribution name and the version installed in this
    environment. Distributions that are not installed, and modules that no distribution provides (the
    standard library, the user's own files), are skipped. Each ``extra`` requirement is kept verbatim
    (stripped) and replaces the automatic pin of the same distribution: what the user wrote wins.

    Example:
        >>> pinned_requirements(["numpy"], ["sklearn"], ["my-tokenizer>=2"])  # doctest: +SKIP
        ['my-tokenizer>=2', 'numpy==2.4.6', 'scikit-learn==1.9.1']

    Args:
        packages: Distribution names (``"scikit-learn"``, ``"onnxruntime"``).
        modules: Top-level module names (``"sklearn"``, ``"xgboost"``).
        extra: Requirement strings given by the user (``"tokenizers>=0.19"``).

    Returns:
        The requirements, sorted by canonical distribution name, without duplicates.

    Raises:
        InvalidInput: If an ``extra`` requirement is malformed.
    """
    explicit: dict[str, set[str]] = {}
    for text in extra:
        requirement = _parse(text)
        explicit.setdefault(canonicalize_name(requirement.name), set()).add(text.strip())

    versions = _installed_versions()
    providers = _module_providers()
    wanted: set[str] = {canonicalize_name(name) for name in packages}
    for module in modules:
        wanted.update(providers.get(module.partition(".")[0], ()))

    pins = {name: f"{name}=={versions[name]}" for name in wanted if name in versions and name not in explicit}
    result: list[tuple[str, str]] = list(pins.items())
    result += [(name, text) for name, texts in explicit.items() for text in texts]
    return [text for _, text in sorted(result)]


def _parse(text: str) -> Requirement:
    try:
        return Requirement(text.strip())
    except InvalidRequirement as exc:
        raise InvalidInput(
            f"{text!r} is not a valid requirement (PEP 508, e.g. 'tokenizers>=0.19'): {exc}",
            {"field": "requirements", "value": text},
        ) from exc


@functools.cache
def _installed_versions() -> Mapping[str, str]:
    """Canonical distribution name → installed version; the first match on ``sys.path`` wins."""
    versions: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        if name := distribution.name:  # a broken installation can lack its metadata
            versions.setdefault(canonicalize_name(name), distribution.version)
    return versions


@functools.cache
def _module_providers() -> Mapping[str, tuple[str, ...]]:
    """Top-level module → canonical names of the distributions that provide it."""
    return {
        module: tuple(sorted({canonicalize_name(name) for name in names}))
        for module, names in importlib.metadata.packages_distributions().items()
    }
