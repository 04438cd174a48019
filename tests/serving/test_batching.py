"""Adaptive micro-batching: no wait and no company at one connection, coalescing under concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from steward.serving.app import ServingApp
from steward.serving.batching import Batcher
from tests.serving.conftest import Models, make_app, serving


def _echo(seen: list[int]) -> Any:
    def run(items: Sequence[Any]) -> list[Any]:
        seen.append(len(items))
        return [item * 10 for item in items]

    return run


def test_a_lone_request_runs_alone_at_once() -> None:
    seen: list[int] = []
    batcher = Batcher(_echo(seen), inline=True)

    async def sequential() -> list[Any]:
        return [await batcher.submit(n) for n in range(20)]

    assert asyncio.run(sequential()) == [n * 10 for n in range(20)]
    assert seen == [1] * 20 and batcher.counts.largest == 1


def test_requests_arriving_together_share_a_batch() -> None:
    seen: list[int] = []
    batcher = Batcher(_echo(seen), inline=True, max_batch_size=64)

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(batcher.submit(n) for n in range(100))))

    assert asyncio.run(together()) == [n * 10 for n in range(100)]
    assert seen == [64, 36]  # never beyond max_batch_size rows
    assert batcher.counts.batches == 2 and batcher.counts.rows == 100


def test_requests_arriving_while_a_threaded_batch_runs_join_the_next() -> None:
    release = threading.Event()
    started = threading.Event()
    seen: list[int] = []

    def slow(items: Sequence[Any]) -> list[Any]:
        seen.append(len(items))
        started.set()
        release.wait(10)
        return list(items)

    batcher = Batcher(slow, inline=False, max_batch_size=64)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.to_thread(started.wait, 10)  # the first batch (of one) is running now
        rest = [asyncio.ensure_future(batcher.submit(n)) for n in range(1, 11)]
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *[await task for task in rest]]

    assert asyncio.run(scenario()) == list(range(11))
    batcher.close()
    assert seen == [1, 10]


def test_a_failing_request_fails_alone() -> None:
    def picky(items: Sequence[Any]) -> list[Any]:
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return list(items)

    batcher = Batcher(picky, inline=True)

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(batcher.submit(n) for n in (1, -1, 2)), return_exceptions=True))

    answers = asyncio.run(together())
    assert answers[0] == 1 and answers[2] == 2 and isinstance(answers[1], ValueError)


@pytest.mark.parametrize(("wait_ms", "sizes"), [(60_000.0, [6]), (0.0, [2, 1, 1, 1, 1])])
def test_a_batch_gathers_while_it_grows_within_max_wait(wait_ms: float, sizes: list[int]) -> None:
    seen: list[int] = []
    batcher = Batcher(_echo(seen), inline=True, max_wait_ms=wait_ms)

    async def late(n: int) -> Any:  # joins n loop passes after the first request
        for _ in range(n):
            await asyncio.sleep(0)
        return await batcher.submit(n)

    async def trickle() -> list[Any]:
        return list(await asyncio.gather(batcher.submit(-1), *(late(n) for n in range(5))))

    assert asyncio.run(trickle()) == [n * 10 for n in range(-1, 5)]
    assert seen == sizes


@pytest.fixture(scope="module")
def app_url(models: Models) -> Iterator[tuple[ServingApp, str]]:
    app = make_app(models, references=("bc_sk",))
    with serving(app) as url:
        yield app, url


def _batcher(app: ServingApp) -> Batcher:
    return next(iter(app.router.loaded.values())).batcher


def test_over_http_one_connection_never_batches(app_url: tuple[ServingApp, str], models: Models) -> None:
    app, url = app_url
    batcher = _batcher(app)
    before = batcher.counts.batches
    with httpx.Client(base_url=url, timeout=30) as http:
        for row in range(30):
            assert http.post("/predict/bc_sk", json={"records": models.records([row])}).status_code == 200
    assert batcher.counts.batches - before == 30 and batcher.counts.sizes[1] >= 30


def test_over_http_concurrent_requests_are_coalesced(app_url: tuple[ServingApp, str], models: Models) -> None:
    app, url = app_url
    batcher = _batcher(app)
    body = {"records": models.records([0])}
    expected = models.lr.predict(models.X.iloc[[0]]).tolist()

    def client(_: int) -> list[Any]:
        with httpx.Client(base_url=url, timeout=30) as http:
            return [http.post("/predict/bc_sk", json=body).json()["predictions"] for _ in range(40)]

    before = sum(batcher.counts.sizes.values())
    with ThreadPoolExecutor(16) as pool:
        answers = [a for batch in pool.map(client, range(16)) for a in batch]
    assert answers == [expected] * (16 * 40)
    batches = sum(batcher.counts.sizes.values()) - before
    assert batcher.counts.largest > 1 and batches < 16 * 40
    metrics = httpx.get(f"{url}/metrics").text
    assert 'steward_batch_size_bucket{le="1.0",model="bc_sk",version="1.0.0"}' in metrics
    assert np.isfinite(
        float(metrics.split('steward_batch_size_sum{model="bc_sk",version="1.0.0"} ')[1].split()[0])
    )
