"""Adaptive micro-batching: requests to one model version that arrive together run as one batch.

A lone request never waits for company: when nothing is queued and nothing runs, its batch runs on the
event loop's next pass. Requests that arrive during that pass, or while a batch runs in its thread,
join the next batch. A batch keeps gathering only while it still grows from one loop pass to the next,
and never longer than ``max_wait_ms`` after its oldest request arrived, nor beyond ``max_batch_size``
rows. So at one connection every batch holds one request and adds no wait, and under concurrency the
batch size follows the number of requests in flight.

Gathering costs every request of the batch one more loop pass, so it is only worth it for a model whose
own call is costly: ``steward.serving.runtime`` turns it off (``gather=False``) for a model that
answers one row in microseconds (ONNX Runtime), whose batches then take what is queued when they start.

Where a batch runs is decided per model (``steward.serving.runtime`` times the warm-up): a fast model
(ONNX Runtime: microseconds) runs *inline*, in the event loop, which is cheaper than any thread hop; a
slow one runs in the version's own worker thread, one batch at a time, so the loop keeps reading and
answering other requests meanwhile.

When a batch of several requests fails, each request is run again alone, so one bad input fails only
its own request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger("steward.serving")

DEFAULT_MAX_BATCH_SIZE: Final = 64
DEFAULT_MAX_WAIT_MS: Final = 2.0

RunBatch = Callable[[Sequence[Any]], Sequence[Any]]
"""Runs the model on the items of one batch and returns one result per item, in order."""


@dataclass
class _Entry:
    item: Any
    rows: int
    future: asyncio.Future[Any]
    at: float


@dataclass
class _Outcome:
    """What running one item gave: its result, or the exception that failed it."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class BatchCounts:
    """How batches went so far (for tests and the operator; ``/metrics`` has the histogram).

    Attributes:
        batches: Batches run.
        rows: Rows run in them.
        largest: The most requests one batch held.
        sizes: How many batches held each number of requests.
    """

    batches: int = 0
    rows: int = 0
    largest: int = 0
    sizes: Counter[int] = field(default_factory=Counter, repr=False)


class Batcher:
    """Coalesces concurrent requests for one model version into batches.

    Args:
        run: Runs one batch (called inline or in the worker thread); see :data:`RunBatch`.
        inline: Run batches in the event loop (fast models) instead of the worker thread.
        gather: Let a growing batch wait for more requests (up to ``max_wait_ms``); without it a batch
            takes what is queued when it starts.
        max_batch_size: The most rows a batch gathers (one larger request still runs, alone).
        max_wait_ms: The longest a batch keeps gathering after its oldest request arrived.
        on_batch: Called in the event loop after each batch with its rows and its number of requests.
        name: Names the worker thread.

    Raises:
        ValueError: For a batch size below 1 or a negative wait.
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        inline: bool = True,
        gather: bool = True,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        on_batch: Callable[[int, int], None] | None = None,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self._run = run
        self.inline = inline
        self.gather = gather
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._name = name
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._scheduled = False
        self._running = False
        self._seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.counts = BatchCounts()

    async def submit(self, item: Any, rows: int = 1) -> Any:
        """Queue ``item`` (``rows`` rows) for the next batch and return its result.

        Args:
            item: One request's model-ready input.
            rows: How many rows it holds.

        Raises:
            Exception: Whatever running the item alone raised.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Entry(item, rows, future, loop.time()))
        self._pending_rows += rows
        if not self._scheduled and not self._running:
            self._seen = len(self._pending)
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def close(self) -> None:
        """Stop the worker thread (the batcher must be idle: its version is being unloaded)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _schedule(self) -> None:
        if not self._scheduled and self._loop is not None:
            self._seen = len(self._pending)
            self._scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._running or not self._pending:
            return
        assert self._loop is not None
        count = len(self._pending)
        if (
            self.gather
            and count > self._seen
            and self._pending_rows < self.max_batch_size
            and self._loop.time() - self._pending[0].at < self.max_wait
        ):
            # Still growing: give the requests already read by the loop one more pass to join.
            self._seen = count
            self._scheduled = True
            self._loop.call_soon(self._dispatch)
            return
        batch = self._take()
        if self.inline:
            self._finish(batch, self._run_safely([entry.item for entry in batch]))
            if self._pending:
                self._schedule()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"steward-{self._name}")
        self._running = True
        done = self._loop.run_in_executor(self._executor, self._run_safely, [entry.item for entry in batch])
        done.add_done_callback(lambda finished: self._threaded_done(batch, finished))

    def _take(self) -> list[_Entry]:
        rows = 0
        taken = 0
        for entry in self._pending:
            if taken and rows + entry.rows > self.max_batch_size:
                break
            rows += entry.rows
            taken += 1
        batch = self._pending[:taken]
        del self._pending[:taken]
        self._pending_rows -= rows
        return batch

    def _threaded_done(self, batch: list[_Entry], finished: asyncio.Future[list[_Outcome]]) -> None:
        self._running = False
        try:
            outcomes = finished.result()
        except BaseException as exc:  # the executor itself failed (shut down): fail the batch, not the loop
            outcomes = [_Outcome(error=exc)] * len(batch)
        self._finish(batch, outcomes)
        if self._pending:
            self._schedule()

    def _run_safely(self, items: list[Any]) -> list[_Outcome]:
        try:
            results = self._run(items)
            if len(results) != len(items):
                raise RuntimeError(f"a batch of {len(items)} items gave {len(results)} results")
            return [_Outcome(value=result) for result in results]
        except Exception as exc:
            if len(items) == 1:
                return [_Outcome(error=exc)]
        outcomes = []
        for item in items:  # find the request that failed the batch: the others still get answers
            try:
                outcomes.append(_Outcome(value=self._run([item])[0]))
            except Exception as exc:
                outcomes.append(_Outcome(error=exc))
        return outcomes

    def _finish(self, batch: list[_Entry], outcomes: list[_Outcome]) -> None:
        rows = 0
        for entry, outcome in zip(batch, outcomes, strict=True):
            rows += entry.rows
            if entry.future.done():
                continue
            if outcome.error is not None:
                entry.future.set_exception(outcome.error)
            else:
                entry.future.set_result(outcome.value)
        counts = self.counts
        counts.batches += 1
        counts.rows += rows
        counts.largest = max(counts.largest, len(batch))
        counts.sizes[len(batch)] += 1
        if self._on_batch is not None:
            try:
                self._on_batch(rows, len(batch))
            except Exception:  # counting must never fail a batch
                log.exception("recording a batch of %s failed", self._name)
