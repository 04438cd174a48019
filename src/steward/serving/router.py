"""Which loaded version answers each request, and moving traffic without dropping any.

Each endpoint has an immutable :class:`RoutingTable`: its :class:`TrafficPlan` and the loaded version
of every arm it holds (below). A request picks a live arm by weight — at random, or by a stable hash of
the plan's ``sticky_key`` so that one key always lands on one arm — and keeps that version until it is
answered.

The :class:`Router` polls its ``TrafficSource`` every ``poll_interval`` seconds. When a plan changes, the
versions it holds that are not loaded yet are loaded and warmed up in a worker thread while the old
table goes on serving; the new table replaces it in one assignment only once every one of its versions
is ready. A version that fails to load leaves the endpoint on its old table, marked not ready with the
error (retried after ``retry_seconds``).

A plan *holds* the versions of its arms that can be asked for an answer: live arms with a weight above 0,
shadows, and standbys (kept loaded and warm on purpose). A live arm at weight 0 — the canary or B arm a
rollback leaves listed — holds nothing: its version is not loaded for the plan, and the plan's table has
no route to it. Once a new table is in place, a version that neither it nor a plan still waiting to load
holds is released: at once if no request is using it, else when the last one in flight ends. It is never
released before: the table that routes to it stays in force until its replacement is ready.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from steward.errors import StewardError
from steward.serving.models import LIVE_ROLES, Arm, TrafficPlan, TrafficSource
from steward.serving.runtime import ServedVersion, VersionKey

log = logging.getLogger("steward.serving")

DEFAULT_POLL_INTERVAL: Final = 1.0
DEFAULT_RETRY_SECONDS: Final = 30.0
_TWO_64: Final = float(2**64)

LoadVersion = Callable[[VersionKey], ServedVersion]
"""Loads and warms up one version (blocking; the router calls it in a worker thread)."""


def sticky_fraction(endpoint: str, key: str) -> float:
    """Map a sticky key to a point in [0, 1), the same in every process and on every run.

    Args:
        endpoint: The endpoint's name (so one user is not in the same arm of every experiment).
        key: The request's sticky key.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=endpoint.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def holds(arm: Arm) -> bool:
    """Whether a plan needs ``arm``'s version loaded: not for a live arm at weight 0 (see the module).

    Args:
        arm: One arm of a plan.
    """
    return arm.weight > 0 or arm.role not in LIVE_ROLES


def held(plan: TrafficPlan) -> tuple[Arm, ...]:
    """The arms of ``plan`` whose versions it needs loaded (:func:`holds`)."""
    return tuple(arm for arm in plan.arms if holds(arm))


@dataclass(frozen=True)
class Route:
    """One arm of an endpoint with the loaded version that serves it."""

    served: ServedVersion
    arm: Arm


class RoutingTable:
    """An endpoint's plan with a loaded version for every arm it holds (:func:`held`); never changed once
    built.

    Args:
        plan: The traffic plan.
        loaded: The loaded version of each version the plan holds.
    """

    def __init__(self, plan: TrafficPlan, loaded: Mapping[str, ServedVersion]) -> None:
        self.plan = plan
        self.routes: dict[str, Route] = {arm.version: Route(loaded[arm.version], arm) for arm in held(plan)}
        self.live: tuple[Route, ...] = tuple(self.routes[arm.version] for arm in plan.live)
        self.shadows: tuple[Route, ...] = tuple(self.routes[arm.version] for arm in plan.shadows)
        total = sum(route.arm.weight for route in self.live)
        bounds = []
        running = 0.0
        for route in self.live:
            running += route.arm.weight / total
            bounds.append(running)
        self._bounds = bounds
        self._only = self.live[0] if len(self.live) == 1 else None
        self._sticky = plan.sticky_key

    def pick(self, key: str | None = None) -> Route:
        """Choose the live arm for one request.

        Args:
            key: The request's sticky key, if it sent one (used only when the plan has a sticky key).
        """
        if self._only is not None:
            return self._only
        if key is not None and self._sticky is not None:
            point = sticky_fraction(self.plan.endpoint, key)
        else:
            point = random.random()
        return self.live[min(bisect.bisect_right(self._bounds, point), len(self.live) - 1)]

    def version(self, version: str) -> Route | None:
        """The route of one version the plan holds (any role), bypassing the split; None for a version it
        does not name, or names at weight 0 in a live role."""
        return self.routes.get(version)


class EndpointState:
    """What one endpoint serves now and what it is waiting for.

    Attributes:
        name: The endpoint.
        table: The table requests use (None until a plan's versions have all loaded).
        plan: The newest plan seen.
        error: Why ``plan`` is not serving yet (a version failed to load), else None.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.table: RoutingTable | None = None
        self.plan: TrafficPlan | None = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        """Whether the newest plan is the one serving."""
        return self.table is not None and self.error is None and self.table.plan == self.plan


class Router:
    """Routes requests by each endpoint's plan and follows the plans' changes.

    Args:
        source: Where the plans come from.
        load: Loads one version (see :data:`LoadVersion`).
        poll_interval: Seconds between reads of the source.
        retry_seconds: How long a version that failed to load is left before it is tried again.
        on_change: Called in the event loop after each read of the plans (to bring gauges up to date).
    """

    def __init__(
        self,
        source: TrafficSource,
        load: LoadVersion,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        on_change: Callable[[Router], None] | None = None,
    ) -> None:
        self.source = source
        self._load = load
        self.poll_interval = poll_interval
        self.retry_seconds = retry_seconds
        self.on_change = on_change
        self.endpoints: dict[str, EndpointState] = {}
        self.loaded: dict[VersionKey, ServedVersion] = {}
        self.failures: dict[VersionKey, tuple[str, float]] = {}
        self.source_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()

    # -- the request path ---------------------------------------------------------------------------

    def endpoint(self, name: str) -> EndpointState | None:
        """The state of endpoint ``name``, or None if no plan names it."""
        return self.endpoints.get(name)

    @staticmethod
    def enter(served: ServedVersion) -> None:
        """Count a request that will use ``served`` (so it is not unloaded under the request)."""
        served.inflight += 1

    @staticmethod
    def leave(served: ServedVersion) -> None:
        """Count that request's end; unload ``served`` if it was retired and this was its last."""
        served.inflight -= 1
        if served.retired and served.inflight == 0 and not served.closed:
            served.close()
            log.info("unloaded %s", served.key)

    @property
    def ready(self) -> bool:
        """Whether every endpoint has a table to serve from."""
        return bool(self.endpoints) and all(state.table is not None for state in self.endpoints.values())

    # -- following the plans ------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the plans and load their versions once, then keep polling in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="steward-router-poll")

    async def stop(self) -> None:
        """Stop polling and unload every version."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for served in self.loaded.values():
            served.retired = True
            if served.inflight == 0:
                served.close()
        self.loaded = {}

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the polling for good
                log.exception("refreshing the traffic plans failed")

    async def refresh(self) -> None:
        """Read the plans once and move every endpoint whose plan changed, when its versions are ready."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            plans = list(await asyncio.to_thread(self.source.plans))
        except Exception as exc:  # the database is down, a config file is broken: keep serving
            message = exc.message if isinstance(exc, StewardError) else f"{type(exc).__name__}: {exc}"
            if message != self.source_error:
                log.warning("cannot read the traffic plans (serving the last ones): %s", message)
            self.source_error = message
            return
        self.source_error = None
        wanted: dict[str, TrafficPlan] = {}
        for plan in plans:
            if plan.endpoint in wanted:
                log.warning("two plans name endpoint %r; the first is used", plan.endpoint)
                continue
            wanted[plan.endpoint] = plan
        states = dict(self.endpoints)
        for name, plan in wanted.items():
            state = states.get(name)
            if state is None:
                state = states[name] = EndpointState(name)
            await self._follow(state, plan)
        for name in set(states) - set(wanted):
            log.info("endpoint %s is no longer served", name)
            del states[name]
        self.endpoints = states
        self._unload_unused()
        if self.on_change is not None:
            self.on_change(self)

    async def _follow(self, state: EndpointState, plan: TrafficPlan) -> None:
        state.plan = plan
        if state.table is not None and state.table.plan == plan:
            state.error = None
            return
        loaded: dict[str, ServedVersion] = {}
        for arm in held(plan):
            key = VersionKey(plan.project, plan.model, arm.version)
            served = self.loaded.get(key) or await self._load_version(key)
            if served is None:
                message, _ = self.failures[key]
                if state.error != message:
                    where = "keeps serving its current versions" if state.table else "is not ready"
                    log.error("endpoint %s %s: %s", state.name, where, message)
                state.error = message
                return
            loaded[arm.version] = served
        state.table = RoutingTable(plan, loaded)
        state.error = None
        split = ", ".join(f"{arm.version} {arm.role} {arm.weight:g}" for arm in plan.arms)
        log.info("endpoint %s now routes: %s (revision %d)", state.name, split, plan.revision)

    async def _load_version(self, key: VersionKey) -> ServedVersion | None:
        failed = self.failures.get(key)
        if failed is not None and time.monotonic() - failed[1] < self.retry_seconds:
            return None
        try:
            served = await asyncio.to_thread(self._load, key)
        except Exception as exc:
            reason = exc.message if isinstance(exc, StewardError) else f"{type(exc).__name__}: {exc}"
            self.failures[key] = (
                f"version {key.version} of model {key.model} failed to load: {reason}",
                time.monotonic(),
            )
            return None
        self.failures.pop(key, None)
        self.loaded[key] = served
        return served

    def _unload_unused(self) -> None:
        """Release every loaded version that no table in force and no plan waiting to load holds.

        Called only after the new tables are in place: a version the table in force still routes to is
        held by that table's plan, so it stays until its replacement has taken over.
        """
        used: set[VersionKey] = set()
        for state in self.endpoints.values():
            for plan in (state.table.plan if state.table else None, state.plan):
                if plan is not None:
                    used.update(VersionKey(plan.project, plan.model, arm.version) for arm in held(plan))
        gone = [key for key in self.loaded if key not in used]
        for key in gone:
            served = self.loaded.pop(key)
            served.retired = True
            if served.inflight == 0:
                served.close()
                log.info("unloaded %s", key)
            else:
                log.info("unloading %s once its %d requests in flight end", key, served.inflight)
