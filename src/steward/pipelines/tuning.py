"""``tune``: hyperparameter search over a step, a function or a whole pipeline, on Optuna.

A study is one parent run (named after the study) and one child run per trial, all tracked; the study
itself is Optuna's journal in Steward's database (``pipelines/journal.py``), so calling ``tune`` again
with the same study name resumes it::

    result = steward.tune(train_pipeline, space={"C": {"low": 1e-3, "high": 10.0, "log": True},
                                                 "kernel": ["rbf", "linear"]},
                          n_trials=10, direction="max", metric="auc", executor="processes")
    result.best_params, result.best_value, result.best_run_id

The search space maps each parameter to a spec:

- a list or tuple: the choices of a categorical parameter (``["rbf", "linear"]``);
- ``{"low": a, "high": b}``: a float range, or an integer range when ``a`` and ``b`` are both ``int``
  (write ``0.0`` to mean a float); ``"log": True`` samples on a log scale, ``"step": s`` on a grid;
  ``{"choices": [...]}`` is a categorical too. ``float_range``, ``int_range`` and ``choice`` build the
  same specs;
- an Optuna distribution, as it is.

An objective returns its metric: a number, or a dict holding it under ``metric`` (the dict's other
numbers are logged too). A step or function can report intermediate values with ``report(value, step)``
so that the pruner (Optuna's ``MedianPruner`` unless told) stops hopeless trials early.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import math
import numbers
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import optuna
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from steward.core.names import validate_key, validate_name
from steward.errors import Conflict, InvalidInput, StewardError
from steward.pipelines import sdk
from steward.pipelines.dsl import Step, parse_duration
from steward.pipelines.executors import Executor
from steward.pipelines.journal import journal_storage
from steward.pipelines.models import StepState
from steward.pipelines.sdk import Pipeline
from steward.pipelines.space import parse_space
from steward.tracking import fluent
from steward.tracking.models import RunStatus

log = logging.getLogger(__name__)

_DIRECTIONS = {
    "max": StudyDirection.MAXIMIZE,
    "maximize": StudyDirection.MAXIMIZE,
    "min": StudyDirection.MINIMIZE,
    "minimize": StudyDirection.MINIMIZE,
}
_OWNER = f"{socket.gethostname()}:{os.getpid()}"
_A_RUN_ID = "steward.run_id"
_A_OWNER = "steward.owner"
_A_INTERRUPTED = "steward.interrupted"
_A_METRIC = "steward.metric"


# -- the trial a step is running in ------------------------------------------------------------------


@dataclass
class _TrialScope:
    trial: optuna.Trial
    run: fluent.ActiveRun
    metric_key: str
    pruned: bool = False


_current: contextvars.ContextVar[_TrialScope | None] = contextvars.ContextVar(
    "steward_tuning_trial", default=None
)


def current_trial() -> optuna.Trial | None:
    """The Optuna trial being evaluated, inside an objective that ``tune`` runs (else ``None``).

    Use it for what a fixed space cannot say, e.g. a parameter that exists only for one model:
    ``current_trial().suggest_int("depth", 2, 8)``.
    """
    scope = _current.get()
    return scope.trial if scope is not None else None


def report(value: float, step: int) -> None:
    """Report an intermediate value of the current trial, and stop it if the pruner says so.

    The value is also logged to the trial's run as the study's metric at ``step``, so the run holds
    its learning curve. Outside a trial (the objective run on its own) this does nothing, so the same
    code runs with or without ``tune``. The trial lives in the process that called ``tune``: a
    pipeline step reports on the ``local`` executor (its pipeline run then fails on the pruning, while
    the trial is PRUNED); in a worker process there is no trial and nothing is reported.

    Args:
        value: The objective's value so far (the same quantity, and direction, as the final one).
        step: Where in training it was measured (an epoch, a number of trees …).

    Raises:
        optuna.TrialPruned: When the pruner stops the trial; let it propagate (``tune`` records the
            trial as PRUNED, its run FINISHED).
        InvalidInput: For a value that is not a finite number.
    """
    scope = _current.get()
    if scope is None:
        return
    number = _finite(value)
    if number is None:
        raise InvalidInput(f"report: {value!r} is not a finite number", {"field": "value"})
    scope.trial.report(number, step)
    scope.run.buffer.add(scope.metric_key, number, step)
    if scope.trial.should_prune():
        scope.pruned = True
        raise optuna.TrialPruned(f"pruned at step {step} (value {number:g})")


# -- what tune returns -------------------------------------------------------------------------------


class TrialRecord(NamedTuple):
    """One trial of a study.

    Attributes:
        number: Its number in the study (from 0).
        params: The sampled parameters.
        value: The metric, for a complete trial (a pruned one keeps its last reported value).
        state: ``COMPLETE``, ``PRUNED``, ``FAIL`` or ``RUNNING``.
        run_id: The trial's tracking run.
    """

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    run_id: str | None


class TrialCounts(NamedTuple):
    """How a study's trials ended (interrupted trials count as failed)."""

    complete: int
    pruned: int
    failed: int

    @property
    def total(self) -> int:
        """Every ended trial."""
        return self.complete + self.pruned + self.failed


@dataclass(frozen=True)
class TuneResult:
    """The outcome of ``tune``, over the whole study (earlier sessions of a resumed study included).

    Attributes:
        study: The study's name (pass it to ``tune`` again to resume).
        best_params: The parameters of the best complete trial.
        best_value: Its metric.
        best_run_id: Its tracking run.
        best_trial: Its number.
        parent_run_id: The run of this ``tune`` call, parent of its trials' runs.
        n_trials: How many trials completed, were pruned, failed.
        trials: Every trial, by number.
    """

    study: str
    best_params: dict[str, Any]
    best_value: float
    best_run_id: str | None
    best_trial: int
    parent_run_id: str
    n_trials: TrialCounts
    trials: list[TrialRecord]
    _study: optuna.Study = field(repr=False, compare=False)

    @property
    def optuna_study(self) -> optuna.Study:
        """The Optuna study itself (for its plots, ``trials_dataframe()`` and so on)."""
        return self._study


# -- the objective -----------------------------------------------------------------------------------


@dataclass
class _Objective:
    target: Pipeline | Callable[..., Any]
    name: str
    signature: inspect.Signature

    @property
    def is_pipeline(self) -> bool:
        return isinstance(self.target, Pipeline)


def _objective(target: Any) -> _Objective:
    if isinstance(target, Pipeline):
        return _Objective(target, target.name, inspect.signature(target.fn))
    if isinstance(target, Step):
        return _Objective(target, target.name, target.signature)
    if callable(target):
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"tune: cannot read the objective's parameters: {exc}", {"field": "objective"}
            ) from None
        return _Objective(target, getattr(target, "__name__", type(target).__name__), signature)
    raise InvalidInput(
        f"tune: the objective must be a @pipeline, a @step or a function, not {type(target).__name__}",
        {"field": "objective"},
    )


def _check_params(objective: _Objective, space: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    both = sorted(set(space) & set(fixed))
    if both:
        raise InvalidInput(
            f"tune: {', '.join(both)} is both searched (space) and fixed (keyword argument)",
            {"field": both[0]},
        )
    parameters = objective.signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {
        n
        for n, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(set(space) - named) + sorted(set(fixed) - named)
    if unknown and not takes_any:
        raise InvalidInput(
            f"tune: {objective.name!r} has no parameter {', '.join(repr(u) for u in unknown)} "
            f"(its parameters: {', '.join(sorted(named)) or 'none'})",
            {"field": unknown[0]},
        )
    missing = sorted(
        n
        for n, p in parameters.items()
        if n in named and p.default is inspect.Parameter.empty and n not in space and n not in fixed
    )
    if missing:
        raise InvalidInput(
            f"tune: {objective.name!r} needs {', '.join(missing)}: put it in the space or pass it fixed "
            f"(tune(..., {missing[0]}=…))",
            {"field": missing[0]},
        )


def _finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class _Fatal(Exception):
    """A mistake every trial would repeat (a bad return shape, a bad pipeline call): stop the study."""

    def __init__(self, error: StewardError) -> None:
        super().__init__(error.message)
        self.error = error


class _TrialFailed(Exception):
    """The trial's pipeline run failed (its steps' errors are in their runs)."""


@dataclass
class _Outcome:
    state: TrialState
    value: float | None = None
    error: str | None = None
    fatal: StewardError | None = None


def _loggable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)}


# -- one session of a study --------------------------------------------------------------------------


@dataclass
class _Session:
    objective: _Objective
    study: optuna.Study
    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any]
    metric: str | None
    experiment: str
    executor: str | Executor
    parent: fluent.ActiveRun
    ran: list[_Outcome] = field(default_factory=list)
    runs: dict[int, fluent.ActiveRun] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def metric_key(self) -> str:
        return self.metric or "value"

    def counted(self) -> int:
        """Trials that count toward ``n_trials``: all but the interrupted ones."""
        return sum(1 for t in self.study.get_trials(deepcopy=False) if not t.user_attrs.get(_A_INTERRUPTED))

    def ask(self) -> optuna.Trial:
        trial = self.study.ask(self.distributions)
        trial.set_user_attr(_A_OWNER, _OWNER)
        return trial

    def run_trial(self, trial: optuna.Trial) -> _Outcome:
        """Evaluate one trial in its own run; only an interruption (Ctrl-C, SystemExit) escapes."""
        started = time.monotonic()
        tags = {"steward.study": self.study.study_name, "steward.trial": trial.number}
        run = fluent.start_run(
            self.experiment, f"trial-{trial.number}", parent_run_id=self.parent.id, tags=tags
        )
        self.runs[trial.number] = run
        trial.set_user_attr(_A_RUN_ID, run.id)
        scope = _TrialScope(trial, run, self.metric_key)
        token = _current.set(scope)
        try:
            run.backend.log_params(run.id, _loggable({**self.fixed, **trial.params}))
            outcome = self._evaluate(trial, run, scope)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: the study stops here
                run.end(RunStatus.KILLED, f"interrupted: {type(exc).__name__}")
                raise
            outcome = _Outcome(TrialState.FAIL, error=f"{type(exc).__name__}: {exc}")
        finally:
            _current.reset(token)
        if self.stopping.is_set():  # the study was interrupted meanwhile and recorded this run
            return outcome
        self._end_run(run, outcome)
        shown = "" if outcome.value is None else f" {self.metric_key}={outcome.value:g}"
        log.info(
            "study %s trial %d %s%s %s (%.2f s)%s",
            self.study.study_name,
            trial.number,
            outcome.state.name,
            shown,
            trial.params,
            time.monotonic() - started,
            f": {outcome.error}" if outcome.error else "",
        )
        return outcome

    def _evaluate(self, trial: optuna.Trial, run: fluent.ActiveRun, scope: _TrialScope) -> _Outcome:
        params = {**self.fixed, **trial.params}
        try:
            returned = self._call(trial, run, params, scope)
            value = self._metric_of(returned, run)
        except optuna.TrialPruned:
            return _Outcome(TrialState.PRUNED)
        except _Fatal as exc:
            return _Outcome(TrialState.FAIL, error=exc.error.message, fatal=exc.error)
        except Exception as exc:
            if scope.pruned:  # a step caught TrialPruned (a pipeline step's failure is not an exception)
                return _Outcome(TrialState.PRUNED)
            message = str(exc) if isinstance(exc, _TrialFailed) else f"{type(exc).__name__}: {exc}"
            return _Outcome(TrialState.FAIL, error=message)
        if value is None:
            return _Outcome(TrialState.FAIL, error=f"the objective's {self.metric_key} is not finite")
        return _Outcome(TrialState.COMPLETE, value=value)

    def _call(
        self, trial: optuna.Trial, run: fluent.ActiveRun, params: dict[str, Any], scope: _TrialScope
    ) -> Any:
        target = self.objective.target
        if not isinstance(target, Pipeline):
            return target(**params)
        try:
            piped = target.run(
                self.executor,
                experiment=self.experiment,
                run_name=f"trial-{trial.number}",
                parent_run_id=run.id,
                tags={"steward.study": self.study.study_name, "steward.trial": str(trial.number)},
                **params,
            )
        except InvalidInput as exc:  # refused before it ran: bad parameters, graph or executor
            raise _Fatal(exc) from exc
        run.backend.set_tags(run.id, {"steward.pipeline_run": piped.id})
        if not piped.succeeded:
            if scope.pruned:  # report() in a step (local executor): the step failed on TrialPruned
                raise optuna.TrialPruned()
            failed = [s for s in piped.info.steps if s.state is StepState.FAILED]
            detail = ""
            if failed and failed[0].error:
                lines = failed[0].error.strip().splitlines()
                detail = f": {failed[0].key}: {lines[-1] if lines else ''}"
            raise _TrialFailed(f"pipeline run {piped.id} {piped.state.value.lower()}{detail}")
        return piped.result

    def _metric_of(self, returned: Any, run: fluent.ActiveRun) -> float | None:
        if isinstance(returned, Mapping):
            numbers_in = {str(k): v for k, v in returned.items() if _finite(v) is not None}
            if self.metric is None:
                raise _Fatal(
                    InvalidInput(
                        f"tune: the objective returned a dict ({', '.join(map(str, returned)) or 'empty'}): "
                        "pass metric= to say which value to optimise",
                        {"field": "metric"},
                    )
                )
            if self.metric not in returned:
                raise _Fatal(
                    InvalidInput(
                        f"tune: the objective's result has no {self.metric!r} "
                        f"(it has: {', '.join(map(str, returned)) or 'nothing'})",
                        {"field": "metric", "keys": sorted(map(str, returned))},
                    )
                )
            for key, value in numbers_in.items():
                if key != self.metric:
                    with contextlib.suppress(InvalidInput):  # a key that is no metric key is not logged
                        run.buffer.add(key, float(value))
            target = returned[self.metric]
        else:
            target = returned
        if isinstance(target, bool) or not isinstance(target, numbers.Real):
            raise _Fatal(
                InvalidInput(
                    f"tune: the objective returned {type(target).__name__}, not a number "
                    f"(return the metric, or a dict holding it under metric=)",
                    {"field": "metric"},
                )
            )
        return _finite(target)

    def _end_run(self, run: fluent.ActiveRun, outcome: _Outcome) -> None:
        if outcome.value is not None:
            run.buffer.add(self.metric_key, outcome.value)
        run.backend.set_tags(run.id, {"steward.trial_state": outcome.state.name})
        failed = outcome.state is TrialState.FAIL
        run.end(RunStatus.FAILED if failed else RunStatus.FINISHED, outcome.error if failed else None)

    def tell(self, trial: optuna.Trial, outcome: _Outcome) -> None:
        self.study.tell(trial, outcome.value if outcome.state is TrialState.COMPLETE else None, outcome.state)
        self.ran.append(outcome)
        best = _best(self.study)
        if best is not None and best.value is not None:
            self.parent.buffer.add("best_value", float(best.value), trial.number)

    def interrupted(self, trial: optuna.Trial) -> None:
        """Record a trial cut short: failed, and not counted, so a resumed study runs it again."""
        with contextlib.suppress(Exception):  # recording must not hide the interruption itself
            trial.set_user_attr(_A_INTERRUPTED, True)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    # -- the loops ---------------------------------------------------------------------------------

    def run_serially(self, n_trials: int, deadline: float | None) -> None:
        while self.counted() < n_trials and (deadline is None or time.monotonic() < deadline):
            trial = self.ask()
            try:
                outcome = self.run_trial(trial)
            except BaseException:
                self.interrupted(trial)
                raise
            self.tell(trial, outcome)
            if outcome.fatal is not None:
                raise outcome.fatal

    def run_in_parallel(self, n_trials: int, deadline: float | None, n_parallel: int) -> None:
        # Daemon threads, not a thread pool: on Ctrl-C the process must be able to exit without
        # waiting for the trials in flight (a pool's threads are joined at exit).
        fatal: StewardError | None = None
        running: dict[int, optuna.Trial] = {}
        done: queue.SimpleQueue[tuple[optuna.Trial, _Outcome | BaseException]] = queue.SimpleQueue()

        def work(trial: optuna.Trial, context: contextvars.Context) -> None:
            try:
                done.put((trial, context.run(self.run_trial, trial)))
            except BaseException as exc:
                done.put((trial, exc))

        try:
            while True:
                while (
                    fatal is None
                    and len(running) < n_parallel
                    and self.counted() < n_trials
                    and (deadline is None or time.monotonic() < deadline)
                ):
                    trial = self.ask()
                    running[trial.number] = trial
                    name = f"steward-tune-{trial.number}"
                    args = (trial, contextvars.copy_context())
                    threading.Thread(target=work, args=args, name=name, daemon=True).start()
                if not running:
                    break
                with contextlib.suppress(queue.Empty):  # wake up now and then, so Ctrl-C is seen
                    trial, outcome = done.get(timeout=0.5)
                    if isinstance(outcome, BaseException):
                        raise outcome
                    del running[trial.number]
                    self.tell(trial, outcome)
                    fatal = fatal or outcome.fatal
        except BaseException:
            self.stopping.set()
            for trial in running.values():
                self.interrupted(trial)
                with contextlib.suppress(Exception):
                    self.runs[trial.number].end(RunStatus.KILLED, "interrupted: the study stopped")
            raise
        if fatal is not None:
            raise fatal


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _recover_interrupted(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a process of this host that has died as interrupted; count them."""
    host = socket.gethostname()
    found = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get(_A_OWNER, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner and (owner_host != host or not pid.isdigit() or _alive(int(pid))):
            continue  # another machine's, or a live process's: it may still finish
        # Optuna has no public call to end another worker's trial; its storage is the only way.
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, _A_INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        found += 1
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return True


def _check_resumable(
    study: optuna.Study, direction: StudyDirection, metric: str | None, space: dict[str, Any]
) -> None:
    name = study.study_name
    if study.direction is not direction:
        raise Conflict(
            f"study {name!r} was created to {study.direction.name.lower()}, not "
            f"{direction.name.lower()}: use another study name",
            {"field": "direction", "study": name},
        )
    earlier_metric = study.user_attrs.get(_A_METRIC)
    if earlier_metric is not None and earlier_metric != (metric or ""):
        raise Conflict(
            f"study {name!r} optimises {earlier_metric or 'the returned value'!r}, not "
            f"{metric or 'the returned value'!r}: use another study name",
            {"field": "metric", "study": name},
        )
    for trial in study.get_trials(deepcopy=False):
        for param, dist in space.items():
            if param in trial.distributions:
                try:
                    check_distribution_compatibility(trial.distributions[param], dist)
                except ValueError as exc:
                    raise Conflict(
                        f"study {name!r}: space[{param!r}] does not fit its earlier trials ({exc}); "
                        "use another study name",
                        {"field": f"space.{param}", "study": name},
                    ) from None


def _records(study: optuna.Study) -> list[TrialRecord]:
    return [
        TrialRecord(
            t.number,
            dict(t.params),
            None if t.value is None else float(t.value),
            t.state.name,
            t.user_attrs.get(_A_RUN_ID),
        )
        for t in study.get_trials(deepcopy=False)
    ]


def _counts(study: optuna.Study) -> TrialCounts:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return TrialCounts(
        states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED), states.count(TrialState.FAIL)
    )


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    # Optuna prints "A new study created …" through its own handler; Steward logs its own lines.
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


# -- tune ----------------------------------------------------------------------------------------


def tune(
    objective: Pipeline | Step | Callable[..., Any],
    space: Mapping[str, Any],
    *,
    n_trials: int = 50,
    direction: str = "maximize",
    metric: str | None = None,
    study: str | None = None,
    experiment: str | None = None,
    executor: str | Executor = "local",
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    seed: int | None = None,
    timeout: str | float | None = None,
    n_parallel: int = 1,
    **fixed_params: Any,
) -> TuneResult:
    """Search ``space`` for the parameters that optimise ``objective``'s metric; resumable by name.

    Each trial is a child run of one parent run (named after the study); a pipeline objective's trial
    run holds the pipeline run of that trial. The study lives in Steward's database: calling ``tune``
    again with the same ``study`` resumes it, running only the trials still missing.

    Args:
        objective: A ``@pipeline`` (each trial runs it on ``executor`` and reads its result), or a
            ``@step`` or function (called with the parameters in this process). It returns the metric,
            or a dict holding it under ``metric``.
        space: Parameter name to spec: a list of choices, ``{"low", "high", "log", "step"}``, or an
            Optuna distribution (see the module's help).
        n_trials: The total the study should reach, earlier sessions included (interrupted trials do
            not count and run again).
        direction: ``"maximize"`` / ``"max"`` or ``"minimize"`` / ``"min"``.
        metric: The key of the metric in a dict result; it names the logged metric too (``value`` by
            default).
        study: The study's name; ``<objective name>-tune`` by default.
        experiment: The experiment of the runs; the objective's name by default.
        executor: Where a pipeline objective's steps run (``local``, ``processes``, ``ray`` …).
        sampler: An Optuna sampler; TPE by default (seeded with ``seed``).
        pruner: An Optuna pruner for trials that ``report``; Optuna's ``MedianPruner`` by default.
        seed: Seeds the default sampler (a resumed session seeds it with ``seed`` plus the trials so
            far, so that it does not draw the first session's points again).
        timeout: Start no trial after this long (seconds, or ``"30m"``); running ones finish.
        n_parallel: Trials at once, in threads. Above 1 it needs a pipeline objective on an executor
            that runs steps in other processes (``processes``, ``ray``), since the active run of
            ``steward.log_metric`` is per process.
        **fixed_params: Parameters passed to every trial unchanged. One named like an argument of
            ``tune`` itself (``seed``, ``metric`` …) goes in the space as one choice: ``{"seed": [0]}``.

    Returns:
        A ``TuneResult``: best parameters, value and run, the parent run, counts and every trial.

    Raises:
        InvalidInput: Before any trial, for a bad space, an unknown or missing parameter, a bad
            direction, study name or count; after a trial, for a result without the metric.
        Conflict: When resuming a study with another direction, metric or incompatible space.
        StewardError: If every trial of this session failed (with the first failure's message).
    """
    target = _objective(objective)
    distributions = parse_space(space)
    _check_params(target, distributions, fixed_params)
    if direction not in _DIRECTIONS:
        raise InvalidInput(
            f"direction must be maximize, max, minimize or min, not {direction!r}", {"field": "direction"}
        )
    chosen_direction = _DIRECTIONS[direction]
    for what, count in (("n_trials", n_trials), ("n_parallel", n_parallel)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"{what} must be a whole number >= 1, got {count!r}", {"field": what})
    if metric is not None:
        validate_key(metric, "metrics")
    if sampler is not None and seed is not None:
        raise InvalidInput("pass seed to your sampler, not to tune, when you give one", {"field": "seed"})
    if n_parallel > 1 and (not target.is_pipeline or not isinstance(executor, str) or executor == "local"):
        raise InvalidInput(
            "n_parallel > 1 runs pipeline objectives on an executor named by a string that runs steps in "
            "other processes (processes, ray): functions and the local executor share this process's "
            "active run, so their metrics would land in each other's runs",
            {"field": "n_parallel"},
        )
    if not target.is_pipeline and executor != "local":
        raise InvalidInput(
            "executor applies to pipeline objectives; a step or function runs in this process",
            {"field": "executor"},
        )
    seconds = parse_duration(timeout, "timeout")
    study_name = validate_name(study or f"{target.name}-tune", "study")
    experiment_name = validate_name(experiment or target.name, "experiment")

    platform = sdk._service().platform  # the embedded platform: remote mode refuses here
    storage = journal_storage(platform.metadata, study_name, platform.project)
    with _quiet_optuna():
        existing = optuna.create_study(
            storage=storage, study_name=study_name, direction=chosen_direction, load_if_exists=True
        )
    earlier = len(existing.get_trials(deepcopy=False))
    _check_resumable(existing, chosen_direction, metric, distributions)
    if _A_METRIC not in existing.user_attrs:
        existing.set_user_attr(_A_METRIC, metric or "")
    recovered = _recover_interrupted(existing)
    if sampler is None:
        sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + earlier)
    optuna_study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)

    tags = {
        "steward.study": study_name,
        "steward.direction": chosen_direction.name.lower(),
        "steward.metric": metric or "value",
    }
    if earlier:
        tags["steward.resumed_trials"] = str(earlier)
    parent = fluent.start_run(experiment_name, run_name=study_name, tags=tags)
    session = _Session(
        target, optuna_study, distributions, dict(fixed_params), metric, experiment_name, executor, parent
    )
    log.info(
        "study %s: %d of %d trials done%s",
        study_name,
        session.counted(),
        n_trials,
        f" ({recovered} interrupted, to run again)" if recovered else "",
    )
    deadline = None if seconds is None else time.monotonic() + seconds
    settings = {
        "n_trials": n_trials,
        "direction": tags["steward.direction"],
        "sampler": type(sampler).__name__,
    }
    try:
        parent.backend.log_params(parent.id, settings | _loggable(fixed_params))
        if n_parallel == 1:
            session.run_serially(n_trials, deadline)
        else:
            session.run_in_parallel(n_trials, deadline, n_parallel)
        result = _finish(session)
    except BaseException as exc:
        if isinstance(exc, Exception):
            parent.end(RunStatus.FAILED, exc.message if isinstance(exc, StewardError) else str(exc))
        else:
            parent.end(RunStatus.KILLED, f"interrupted: {type(exc).__name__}")
        raise
    parent.end(RunStatus.FINISHED)
    return result


def _finish(session: _Session) -> TuneResult:
    study = session.study
    failures = [o for o in session.ran if o.state is TrialState.FAIL]
    best = _best(study)
    if best is None or (session.ran and len(failures) == len(session.ran)):
        why = f"every trial failed; the first: {failures[0].error}" if failures else "no trial completed"
        raise StewardError(f"study {study.study_name!r}: {why}", {"study": study.study_name})
    best_run = best.user_attrs.get(_A_RUN_ID)
    assert best.value is not None
    tags = {f"best.{k}": v for k, v in best.params.items()}
    tags |= {"best_value": best.value, "best_trial": best.number, "best_run_id": best_run or ""}
    parent = session.parent
    parent.backend.set_tags(parent.id, tags)
    if not session.ran:  # otherwise each trial's tell logged the best so far
        parent.buffer.add("best_value", float(best.value), best.number)
    return TuneResult(
        study=study.study_name,
        best_params=dict(best.params),
        best_value=float(best.value),
        best_run_id=best_run,
        best_trial=best.number,
        parent_run_id=parent.id,
        n_trials=_counts(study),
        trials=_records(study),
        _study=study,
    )
