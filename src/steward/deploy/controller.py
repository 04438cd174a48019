"""The rollout controller: ``advance`` runs one analysis step of an endpoint's rollout now; ``Controller``
runs it on an interval in a thread (``steward serve --endpoint`` starts one beside the server,
``steward deploy watch`` runs it in the foreground).

What one step does, by strategy:

- ``canary``: analyse the step over the ``serving_windows`` rows written since it began (and labelled
  outcomes, where any arrived): ``wait`` records the analysis and changes nothing; ``pass`` moves to
  the next step (100% ends the rollout: the canary becomes stable, the old stable stands by); ``fail``
  rolls back at once (canary weight 0, stable 100%), audited as an automatic rollback.
- ``blue-green``: once the readiness probe says the warmed candidate is ready (and it has waited
  ``min_duration_s``), switch it to 100%. Without a probe it waits for ``promote``.
- ``shadow``: with ``min_agreement``, roll the shadow back once ``min_requests`` compared answers agree
  less often than that.
- ``ab``: nothing: the test runs until someone reads the results and promotes B or rolls back.

Each move is written only if the rollout is still where the analysis found it (a person may have
promoted or rolled it back meanwhile): otherwise the step reports ``moved`` and changes nothing.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from steward.core.time import now_ms
from steward.deploy import repository as repo
from steward.deploy import strategies
from steward.deploy.analysis import FAIL, PASS, WAIT, Analysis, analyse_canary
from steward.deploy.models import Rollout
from steward.deploy.options import Strategy
from steward.deploy.stats import outcomes, windows
from steward.deploy.writes import Subject, apply_move
from steward.errors import Conflict, InvalidInput, StewardError
from steward.governance.context import current_identity
from steward.serving.models import WindowStats

if TYPE_CHECKING:
    from steward.deploy.service import DeployService
    from steward.store.platform import Platform

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0
"""Seconds between two steps of the controller loop."""


class Readiness(Protocol):
    """Tells whether the servers of an endpoint have loaded and warmed a version.

    Example:
        >>> class Always:
        ...     def ready(self, endpoint: str, version: str) -> bool | None:
        ...         return True
    """

    def ready(self, endpoint: str, version: str) -> bool | None:
        """True when every server is ready to answer with ``version``; None when it cannot tell."""
        ...


class HttpReadiness:
    """Asks each server's Open Inference Protocol route ``/v2/models/{endpoint}/versions/{version}/ready``.

    Args:
        urls: The servers' base URLs (``http://127.0.0.1:9000``); all must answer 200.
        timeout: Seconds to wait for each.
    """

    def __init__(self, urls: Sequence[str], timeout: float = 2.0) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout

    def ready(self, endpoint: str, version: str) -> bool | None:
        """Whether every server answers 200 for the version (None with no server to ask)."""
        if not self.urls:
            return None
        path = f"/v2/models/{quote(endpoint, safe='')}/versions/{quote(version, safe='')}/ready"
        for url in self.urls:
            try:
                answer = httpx.get(f"{url}{path}", timeout=self.timeout)
            except httpx.HTTPError:
                return False
            if answer.status_code != 200:
                return False
        return True


class FixedReadiness:
    """A readiness someone vouched for (``POST /endpoints/{name}/advance`` with ``{"ready": true}``).

    Args:
        value: What ``ready`` answers.
    """

    def __init__(self, value: bool | None) -> None:
        self.value = value

    def ready(self, endpoint: str, version: str) -> bool | None:
        """The value given."""
        return self.value


def _ms(rollout: Rollout) -> int:
    return int(rollout.step_started_at.timestamp() * 1000)


def _outcome(
    rollout: Rollout, outcome: str, message: str, analysis: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "endpoint": rollout.endpoint,
        "action": outcome,
        "message": message,
        "rollout": rollout.to_json(),
        "analysis": dict(analysis) if analysis is not None else None,
    }


def _decide(
    service: DeployService,
    rollout: Rollout,
    move: strategies.Move,
    analysis: Mapping[str, Any] | None,
    *,
    rollback: bool,
    why: str = "",
) -> dict[str, Any]:
    """Write ``move`` if the rollout is still where it was analysed."""
    with service.platform.metadata.transaction() as conn:
        try:
            ep, now = service.locked_active(conn, rollout.endpoint, "advance")
        except Conflict:
            now = None
        if now is None or (now.id, now.step, now.state) != (rollout.id, rollout.step, rollout.state):
            moved = service.get_rollout(rollout.endpoint, rollout.id)
            return _outcome(
                moved, "moved", "the rollout moved while it was analysed: nothing changed", analysis
            )
        if rollback:
            service.write_rollback(conn, ep, now, move, why, automatic=True, analysis=analysis)
        else:
            apply_move(
                service.platform, conn, ep, Subject.of(now), move, "rollout.step", now_ms(),
                analysis=analysis, details={"automatic": True},
            )  # fmt: skip
    after = service.get_rollout(rollout.endpoint, rollout.id)
    return _outcome(
        after,
        "rolled_back" if rollback else move.state.value if not move.state.active else "stepped",
        after.message,
        analysis,
    )


def _note(service: DeployService, rollout: Rollout, analysis: Analysis) -> dict[str, Any]:
    """Record a ``wait`` analysis on the rollout (no state changes: not audited)."""
    found = {**analysis.to_json(), "at": now_ms()}
    with service.platform.metadata.transaction() as conn:
        repo.note_analysis(conn, service.platform.project, rollout.id, rollout.step, json.dumps(found))
    return _outcome(rollout, "waiting", analysis.message, found)


def _canary(service: DeployService, rollout: Rollout) -> dict[str, Any]:
    platform, since = service.platform, _ms(rollout)
    found = windows(platform, platform.project, rollout.endpoint, since)
    labelled = outcomes(platform, platform.project, rollout.endpoint, rollout.step_started_at)
    by_role = {
        role: labelled[v]
        for role, v in (("stable", rollout.baseline), ("canary", rollout.version))
        if v in labelled
    }
    analysis = analyse_canary(
        found.get(rollout.baseline, WindowStats()),
        found.get(rollout.version, WindowStats()),
        rollout.options,
        (now_ms() - since) / 1000,
        by_role or None,
    )
    if analysis.verdict == WAIT:
        return _note(service, rollout, analysis)
    result = {**analysis.to_json(), "at": now_ms()}
    if analysis.verdict == PASS:
        move = strategies.forward(
            rollout.strategy, rollout.baseline, rollout.version, rollout.step, rollout.options
        )
        return _decide(service, rollout, move, result, rollback=False)
    assert analysis.verdict == FAIL
    move = strategies.rollback(rollout.strategy, rollout.baseline, rollout.version, rollout.step, active=True)
    return _decide(service, rollout, move, result, rollback=True, why=analysis.message)


def _blue_green(service: DeployService, rollout: Rollout, readiness: Readiness | None) -> dict[str, Any]:
    ready = readiness.ready(rollout.endpoint, rollout.version) if readiness is not None else None
    if ready is None:
        return _outcome(
            rollout,
            "waiting",
            f"no readiness probe to ask whether {rollout.version} is ready: "
            "watch with --probe URL, or promote by hand",
        )
    if not ready:
        return _outcome(rollout, "waiting", f"{rollout.version} is not ready yet")
    waited = (now_ms() - _ms(rollout)) / 1000
    if waited < rollout.options.min_duration_s:
        return _outcome(
            rollout,
            "waiting",
            f"{rollout.version} is ready; it stands by {waited:.0f} s of "
            f"{rollout.options.min_duration_s:g} s before the switch",
        )
    move = strategies.forward(
        rollout.strategy, rollout.baseline, rollout.version, rollout.step, rollout.options
    )
    return _decide(
        service,
        rollout,
        move,
        {"verdict": PASS, "message": f"{rollout.version} reported ready"},
        rollback=False,
    )


def _shadow(service: DeployService, rollout: Rollout) -> dict[str, Any]:
    platform = service.platform
    seen = windows(platform, platform.project, rollout.endpoint, _ms(rollout)).get(
        rollout.version, WindowStats()
    )
    agreement, floor = seen.agreement, rollout.options.min_agreement
    shown = f"{seen.shadow_agreed} of {seen.shadow_compared} shadow answers agreed"
    if floor is None or agreement is None or seen.shadow_compared < rollout.options.min_requests:
        return _outcome(rollout, "waiting", shown)
    if agreement >= floor:
        return _outcome(rollout, "waiting", f"{shown} (at least {floor:.0%} needed)")
    analysis = {"verdict": FAIL, "message": f"{shown}: below {floor:.0%}", "agreement": agreement}
    move = strategies.rollback(rollout.strategy, rollout.baseline, rollout.version, rollout.step, active=True)
    return _decide(service, rollout, move, analysis, rollback=True, why=str(analysis["message"]))


def advance(service: DeployService, endpoint: str, *, readiness: Readiness | None = None) -> dict[str, Any]:
    """Run one step of ``endpoint``'s rollout now.

    Args:
        service: The deploy service.
        endpoint: The endpoint.
        readiness: What tells a blue-green rollout its candidate is ready.

    Returns:
        ``{"endpoint", "action", "message", "rollout", "analysis"}``; ``action`` is ``idle`` (nothing
        under way), ``waiting``, ``stepped``, ``succeeded``, ``rolled_back`` or ``moved``.

    Raises:
        NotFound: There is no such endpoint.
    """
    current_identity().require("deploy:write", service.platform.project)
    ep = service.get_endpoint(endpoint)
    if ep.active_rollout is None:
        return {
            "endpoint": endpoint,
            "action": "idle",
            "message": f"no rollout is under way on {endpoint!r}",
            "rollout": None,
            "analysis": None,
        }
    rollout = service.get_rollout(endpoint, ep.active_rollout)
    if rollout.strategy is Strategy.CANARY:
        return _canary(service, rollout)
    if rollout.strategy is Strategy.BLUE_GREEN:
        return _blue_green(service, rollout, readiness)
    if rollout.strategy is Strategy.SHADOW:
        return _shadow(service, rollout)
    return _outcome(
        rollout,
        "waiting",
        "the A/B test runs until you read its results (steward deploy results) and promote B or roll back",
    )


class Controller:
    """Advances the rollouts of a project's endpoints on an interval, in a daemon thread.

    Args:
        platform: The platform whose endpoints it drives (in its settings' project).
        endpoints: Only these endpoints (None: every endpoint of the project).
        interval: Seconds between steps (positive).
        readiness: What tells blue-green rollouts their candidate is ready.

    Raises:
        InvalidInput: If ``interval`` is not a positive number of seconds.
    """

    def __init__(
        self,
        platform: Platform,
        endpoints: Sequence[str] | None = None,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        readiness: Readiness | None = None,
    ) -> None:
        from steward.deploy.service import DeployService

        if not (math.isfinite(interval) and interval > 0):
            raise InvalidInput(
                f"the controller interval must be a positive number of seconds, not {interval:g}",
                {"field": "interval"},
            )
        self.service = DeployService(platform)
        self.endpoints = list(endpoints) if endpoints is not None else None
        self.interval = interval
        self.readiness = readiness
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> list[dict[str, Any]]:
        """Advance every endpoint with a rollout under way once; return what each step did."""
        names = self.endpoints
        if names is None:
            names = [e.name for e in self.service.list_endpoints() if e.active_rollout is not None]
        done = []
        for name in names:
            try:
                done.append(self.service.advance(name, readiness=self.readiness))
            except StewardError as exc:  # one endpoint's trouble must not stop the others
                log.warning("rollout step of endpoint %s failed: %s", name, exc.message)
        return done

    def run(self) -> None:
        """Step until ``stop`` is called (what the thread runs)."""
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop outlives a bad step: it is logged, and the next one tries again
                log.exception("rollout controller step failed")
            self._stop.wait(self.interval)

    def start(self) -> Controller:
        """Start the loop in a daemon thread; return self."""
        self._thread = threading.Thread(target=self.run, name="steward-rollouts", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
