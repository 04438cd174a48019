"""The actions automation takes, and their audit entries: run a pipeline, roll an endpoint back.

``run_pipeline`` imports a ``@pipeline`` by its import path and runs it. **Importing it runs the module's
code in the scheduler's process**, with the scheduler's access to the stores: the import path is the
trust boundary, as it is for ``steward run``. Only people with ``automation:write`` name one, and each
creation is audited. A retraining pipeline's register step makes a new model *version*, nothing more:
no action sets an alias, so the version reaches ``production`` only through the policy gate and its
approvals (``steward models promote``), like any other.

``rollback_endpoint`` is ``DeployService.rollback``: with a rollout under way, its baseline takes 100% at
once (a canary or B arm kept at weight 0, a shadow or warming candidate dropped); after a rollout that
succeeded, the two arms of its end plan swap back (the previous version was kept loaded as ``standby``,
so the switch is instant). An endpoint that has neither has no previous version to return to, and the
action fails saying so.

Every action is audited as ``automation.<kind>`` on the trigger or alert that caused it (``details``:
``cause`` and what happened); the pipeline run carries the cause in its tags
(``steward.automation.trigger`` or ``steward.automation.alert``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from steward.automation.models import ActionResult, Outcome, Trigger
from steward.core.time import from_ms
from steward.deploy.models import arm_to_json
from steward.errors import InvalidInput, StewardError
from steward.governance import audit
from steward.pipelines.sdk import Pipeline, load_pipeline

if TYPE_CHECKING:
    from steward.monitoring.models import Alert, Monitor
    from steward.store.platform import Platform

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_target(target: object, allowed: str | None = None) -> Pipeline:
    """Import the ``@pipeline`` at ``target``, ``package.module:attribute``.

    This runs the module's code: see the module docstring on the trust boundary. File paths
    (``steward run``'s ``file.py:name``) are refused: a trigger fires in the scheduler's process, maybe on
    another machine and in another directory, and must name code installed there, not a file that
    whoever created the trigger could write.

    Args:
        target: The import path.
        allowed: ``Settings.automation_packages``: the comma-separated packages it must lie in (None:
            any). Checked before anything is imported.

    Raises:
        InvalidInput: Naming ``pipeline``, if it is not an import path, lies outside the allowed
            packages, does not import or is not a ``steward`` pipeline.
    """
    if not isinstance(target, str) or not _TARGET.match(target):
        raise InvalidInput(
            f"pipeline {target!r} is not an import path: write package.module:attribute (an installed or "
            "importable module, not a file path)",
            {"field": "pipeline"},
        )
    if allowed is not None:
        packages = [p.strip() for p in allowed.split(",") if p.strip()]
        module = target.split(":", 1)[0]
        if not any(module == p or module.startswith(f"{p}.") for p in packages):
            message = (
                f"pipeline {target!r} is outside the packages automation may run "
                f"(STEWARD_AUTOMATION_PACKAGES: {', '.join(packages) or 'none'})"
            )
            raise InvalidInput(message, {"field": "pipeline"})
    return load_pipeline(target)


def check_executor(spec: object) -> str:
    """Return ``spec`` if it names an executor (``local``, ``processes``, ``processes:N``, ``ray``,
    ``ray://host:port``), without starting it.

    Raises:
        InvalidInput: Naming ``executor`` otherwise.
    """
    if isinstance(spec, str):
        name, sep, arg = spec.partition(":")
        if spec in ("local", "processes", "ray") or (name == "processes" and sep and arg.isdigit()):
            return spec
        if name == "ray" and arg.startswith("//") and len(arg) > 2:
            return spec
    raise InvalidInput(
        f"unknown executor {spec!r}: use local, processes, processes:N, ray or ray://host:port",
        {"field": "executor"},
    )


# -- causes --------------------------------------------------------------------------------------------


def trigger_cause(trigger: Trigger, due_ms: int, **facts: Any) -> dict[str, Any]:
    """The cause of a trigger's firing, as audit entries and firings record it."""
    due = from_ms(due_ms).isoformat()
    return {"kind": "trigger", "trigger": trigger.name, "trigger_id": trigger.id, "due_at": due, **facts}


def alert_cause(alert: Alert, monitor: Monitor) -> dict[str, Any]:
    """The cause of an alert's action."""
    return {
        "kind": "alert",
        "alert": alert.id,
        "monitor": monitor.name,
        "endpoint": monitor.endpoint,
        "rule": alert.rule,
        "value": alert.value,
        "threshold": alert.threshold,
    }


def describe(cause: Mapping[str, Any]) -> str:
    """A sentence naming a cause (``alert 0190… of monitor churn-drift: psi(income) > 0.2``)."""
    if cause.get("kind") == "alert":
        return f"alert {cause['alert']} of monitor {cause['monitor']}: {cause['rule']}"
    return f"trigger {cause.get('trigger')} due at {cause.get('due_at')}"


def _tags(cause: Mapping[str, Any]) -> dict[str, str]:
    if cause.get("kind") == "alert":
        return {
            "steward.automation.alert": str(cause["alert"]),
            "steward.automation.monitor": str(cause["monitor"]),
        }
    return {"steward.automation.trigger": str(cause.get("trigger"))}


# -- actions -------------------------------------------------------------------------------------------


def run_pipeline(
    target: str,
    params: Mapping[str, Any],
    executor: str,
    cause: Mapping[str, Any],
    *,
    kind: str = "pipeline",
    allowed: str | None = None,
) -> ActionResult:
    """Import the pipeline at ``target`` and run it with ``params`` until it ends.

    It runs through the SDK's connection (``steward.configure``, or the environment), like
    ``my_pipeline.run``: the scheduler's settings, in the acting project. Its tracking run is tagged with
    the cause. Nothing here sets an alias on what it registers.

    Args:
        target: ``package.module:attribute`` of a ``@pipeline``.
        params: Its parameters.
        executor: Where its steps run.
        cause: The trigger firing or alert that started it (``trigger_cause`` / ``alert_cause``).
        kind: ``pipeline`` for a trigger's action, ``retrain`` for an alert's.
        allowed: ``Settings.automation_packages`` (see ``load_target``).

    Returns:
        ``succeeded`` if every step did; ``failed`` if a step failed (the run id and error are in the
        details) or if it could not start (bad import path, bad parameters, user code that raised).
    """
    facts: dict[str, Any] = {"target": target, "params": dict(params), "executor": executor}
    try:
        found = load_target(target, allowed)
        run = found.run(executor, tags=_tags(cause), **dict(params))
    except StewardError as exc:
        return ActionResult(kind, Outcome.FAILED, {**facts, "error": exc.message})
    except Exception as exc:  # user code (the module, the graph's construction) may raise anything
        log.warning("automatic pipeline %s failed to start: %s", target, exc, exc_info=True)
        return ActionResult(kind, Outcome.FAILED, {**facts, "error": f"{type(exc).__name__}: {exc}"})
    facts.update(pipeline=found.name, run_id=run.id, state=run.state.value)
    if run.info.error:
        facts["error"] = run.info.error
    return ActionResult(kind, Outcome.SUCCEEDED if run.succeeded else Outcome.FAILED, facts)


def rollback_endpoint(platform: Platform, endpoint: str, cause: Mapping[str, Any]) -> ActionResult:
    """Give the endpoint's previous version all its traffic at once (``DeployService.rollback``: the
    baseline of the rollout under way, or the standby that a succeeded rollout left).

    Returns:
        ``succeeded`` with the rollout, the version now stable and the plan; ``failed`` with the reason
        when there is nothing to roll back (no rollout, or the plan changed since the last one) or the
        endpoint does not exist.
    """
    from steward.deploy.service import DeployService

    deploy = DeployService(platform)
    try:
        rollout = deploy.rollback(endpoint, reason=f"automatic: {describe(cause)}")
        ep = deploy.get_endpoint(endpoint)
    except StewardError as exc:
        return ActionResult("rollback", Outcome.FAILED, {"endpoint": endpoint, "error": exc.message})
    return ActionResult(
        "rollback",
        Outcome.SUCCEEDED,
        {
            "endpoint": endpoint,
            "rollout": rollout.id,
            "strategy": rollout.strategy.value,
            "from_version": rollout.version,
            "stable": ep.stable,
            "revision": ep.revision,
            "plan": [arm_to_json(a) for a in ep.arms],
        },
    )


def record(platform: Platform, conn: Connection, result: ActionResult, cause: Mapping[str, Any]) -> None:
    """Append the audit entry of an automatic action inside the caller's transaction: action
    ``automation.<kind>``, on the alert or trigger that caused it."""
    by_alert = cause.get("kind") == "alert"
    audit.record(
        platform, conn, f"automation.{result.kind}", "alert" if by_alert else "trigger",
        str(cause["alert"] if by_alert else cause["trigger"]),
        outcome="ok" if result.succeeded else "failed", details={"cause": dict(cause), **result.to_json()},
    )  # fmt: skip


def run_alert_actions(
    platform: Platform,
    monitor: Monitor,
    alert: Alert,
    record_action: Callable[[str, dict[str, Any]], object],
) -> list[ActionResult]:
    """Run a monitor's actions for one alert that just fired: ``retrain`` starts the pipeline the
    action names (executor ``local``), ``rollback`` rolls the monitor's endpoint back. Each result is
    added to the alert (``record_action``) and audited with the alert as its cause; one failing does not
    stop the next.
    """
    results = []
    cause = alert_cause(alert, monitor)
    for action in monitor.actions:
        if action.kind == "retrain":
            allowed = platform.settings.automation_packages
            result = run_pipeline(
                action.target, action.params, "local", cause, kind="retrain", allowed=allowed
            )
        elif action.kind == "rollback":
            result = rollback_endpoint(platform, monitor.endpoint, cause)
        else:
            result = ActionResult(action.kind, Outcome.FAILED, {"error": f"unknown action {action.kind!r}"})
        try:
            record_action(alert.id, result.to_json())
        except StewardError as exc:
            log.warning("could not add action %s to alert %s: %s", result.kind, alert.id, exc.message)
        with platform.metadata.transaction() as conn:
            record(platform, conn, result, cause)
        results.append(result)
    return results
