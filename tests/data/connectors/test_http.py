"""The HTTP connector against a real local JSON API that fails on purpose: pages, retries, timeouts."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from steward.config import load_settings
from steward.data.connectors import HttpConnector, connector_for
from steward.data.service import DataService
from steward.errors import InvalidInput, NotFound, ServiceUnavailable
from steward.store.platform import Platform
from tests.services import free_port

PAGES = 5
PER_PAGE = 3
SLOW_SECONDS = 3.0
FAST: dict[str, Any] = {"timeout": 0.5, "retries": 3, "backoff": 0.01}


@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    page: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Fault:
    """What the API answers instead of the page: a status (with headers and body), or ``slow``/``drop``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    slow: bool = False
    drop: bool = False


@dataclass
class Api:
    """A JSON API of ``PAGES`` pages of ``PER_PAGE`` records, with faults per (page, attempt) or per page.

    Routes: ``/next?page=N`` (a ``links.next`` URL), ``/paged?page=N`` (an empty page past the end),
    ``/cursor?cursor=N`` (``meta.next_cursor``).
    """

    url: str
    faults: dict[tuple[int, int], Fault] = field(default_factory=dict)
    always: dict[int, Fault] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    extra_field_on: int | None = None
    loop_back_from: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def records(self, page: int) -> list[dict[str, Any]]:
        if not 1 <= page <= PAGES:
            return []
        rows: list[dict[str, Any]] = [
            {"id": (page - 1) * PER_PAGE + i, "name": f"r{page}.{i}"} for i in range(1, PER_PAGE + 1)
        ]
        if page == self.extra_field_on:
            rows = [row | {"extra": page} for row in rows]
        return rows

    def attempts(self, page: int) -> int:
        return sum(1 for h in self.hits if h.page == page)

    def gaps(self, page: int) -> list[float]:
        """Seconds between one attempt at ``page`` and the next."""
        times = [h.at for h in self.hits if h.page == page]
        return [b - a for a, b in itertools.pairwise(times)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def do_GET(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path.strip("/")
        page = int(query.get("cursor" if route == "cursor" else "page", "1"))
        with api.lock:
            attempt = api.attempts(page) + 1
            api.hits.append(Hit(time.monotonic(), self.path, page, dict(self.headers.items())))
        fault = api.faults.get((page, attempt)) or api.always.get(page) or Fault()
        if fault.drop:
            return  # close the connection without an answer
        if fault.slow:
            api.released.wait(SLOW_SECONDS)
        body = fault.body if fault.body is not None else json.dumps(self._page(api, route, page)).encode()
        try:
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in fault.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (the slow fault)
            pass

    @staticmethod
    def _page(api: Api, route: str, page: int) -> dict[str, Any]:
        data = api.records(page)
        if route == "next":
            target = 2 if page == api.loop_back_from else page + 1
            link = f"/next?page={target}" if page < PAGES else None
            return {"data": data, "links": {"next": link}}
        if route == "cursor":
            return {"data": data, "meta": {"next_cursor": str(page + 1) if page < PAGES else None}}
        return {"data": data}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: Api


@pytest.fixture
def api() -> Iterator[Api]:
    """The API on a free 127.0.0.1 port, served from a thread until the test ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = Api(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.api
    finally:
        server.api.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataService]:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    yield DataService(platform)
    platform.close()


ALL_IDS = list(range(1, PAGES * PER_PAGE + 1))
NEXT = {"next": "links.next"}


def ingested_ids(data: DataService, name: str) -> list[int]:
    (version,) = data.list_versions(name)
    return list(data.read_table(version).column("id").to_pylist())


def assert_nothing_published(data: DataService, name: str) -> None:
    with pytest.raises(NotFound):
        data.get_version(name)


def test_every_page_arrives_exactly_once_through_errors_throttling_and_timeouts(
    api: Api, data: DataService
) -> None:
    api.faults = {
        (2, 1): Fault(500),
        (3, 1): Fault(429, {"Retry-After": "1"}),
        (4, 1): Fault(slow=True),
        (4, 2): Fault(503, {"Retry-After": "0"}),
        (5, 1): Fault(drop=True),
    }
    source = {"http": f"{api.url}/next", "pagination": NEXT, **FAST}
    result = data.ingest(source, "listing")
    assert result.version is not None and len(result.versions) == 1
    assert ingested_ids(data, "listing") == ALL_IDS
    assert result.version.source == {"kind": "http", "url": f"{api.url}/next", "pages": PAGES}
    assert [api.attempts(page) for page in range(1, PAGES + 1)] == [1, 2, 2, 3, 2]
    assert api.gaps(3)[0] >= 0.95  # Retry-After: 1 was honoured
    assert api.gaps(4)[0] >= 0.45  # the slow answer was given up after the 0.5 s timeout


def test_retries_back_off_exponentially(api: Api) -> None:
    api.faults = {(1, 1): Fault(500), (1, 2): Fault(502), (1, 3): Fault(504)}
    connector = HttpConnector(f"{api.url}/paged", retries=3, backoff=0.08)
    (batch,) = connector.batches()
    assert batch.table.column("id").to_pylist() == [1, 2, 3]
    gaps = api.gaps(1)
    assert len(gaps) == 3
    for attempt, gap in enumerate(gaps):
        assert gap >= 0.08 * 2**attempt / 2  # equal jitter: at least half of the doubled backoff
    assert gaps[2] > gaps[0]


@pytest.mark.parametrize(
    ("route", "pagination"),
    [
        ("next", NEXT),
        ("paged", {"page_param": "page", "start": 1}),
        ("cursor", {"cursor_param": "cursor", "cursor_path": "meta.next_cursor"}),
    ],
)
def test_each_pagination_reads_every_page_once(api: Api, route: str, pagination: dict[str, Any]) -> None:
    api.faults = {(2, 1): Fault(503)}
    (batch,) = connector_for({"http": f"{api.url}/{route}", "pagination": pagination, **FAST}).batches()
    assert batch.table.column("id").to_pylist() == ALL_IDS
    fetched = PAGES + 1 if route == "paged" else PAGES  # counting pages stops at the first empty one
    assert batch.source["pages"] == fetched
    assert [api.attempts(p) for p in range(1, fetched + 1)] == [1, 2] + [1] * (fetched - 2)


def test_a_field_that_first_appears_on_a_later_page_is_a_column(api: Api) -> None:
    api.extra_field_on = 4
    (batch,) = HttpConnector(f"{api.url}/next", pagination=NEXT).batches()
    assert batch.table.column_names == ["id", "name", "extra"]
    assert batch.table.column("extra").to_pylist() == [None] * 9 + [4] * 3 + [None] * 3


def test_a_permanently_failing_page_raises_after_the_retries_and_publishes_nothing(
    api: Api, data: DataService
) -> None:
    api.always = {3: Fault(503)}
    source = {"http": f"{api.url}/next", "pagination": NEXT, **FAST, "retries": 2}
    with pytest.raises(ServiceUnavailable) as caught:
        data.ingest(source, "failing")
    message = caught.value.message
    assert f"GET {api.url}/next?page=3 (page 3) failed after 3 attempts; last: HTTP 503" == message
    assert caught.value.details["status"] == 503
    assert api.attempts(3) == 3 and api.attempts(4) == 0
    assert_nothing_published(data, "failing")


def test_a_page_that_always_times_out_fails_within_the_timeouts(api: Api, data: DataService) -> None:
    api.always = {1: Fault(slow=True)}
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"failed after 2 attempts; last: timed out after 0.3 s"):
        data.ingest({"http": f"{api.url}/paged", "timeout": 0.3, "retries": 1, "backoff": 0}, "slow")
    assert time.monotonic() - started < SLOW_SECONDS - 1  # neither attempt waited for the slow answer
    assert_nothing_published(data, "slow")


def test_an_unreachable_api_is_service_unavailable_and_publishes_nothing(data: DataService) -> None:
    url = f"http://127.0.0.1:{free_port()}/items"
    with pytest.raises(
        ServiceUnavailable, match=f"GET {url} \\(page 1\\) failed after 2 attempts; last: ConnectError"
    ):
        data.ingest({"http": url, "retries": 1, "backoff": 0}, "unreachable")
    assert_nothing_published(data, "unreachable")


def test_invalid_json_names_the_page_and_its_url(api: Api, data: DataService) -> None:
    api.always = {2: Fault(body=b'{"data": [oops')}
    with pytest.raises(InvalidInput, match=f"page 2 of {api.url}/paged\\?page=2 is not JSON") as caught:
        data.ingest({"http": f"{api.url}/paged", "pagination": {"page_param": "page"}, **FAST}, "broken")
    assert caught.value.details["page"] == 2
    assert api.attempts(2) == 1  # a malformed answer is not retried
    assert_nothing_published(data, "broken")


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, NotFound, "answered 404"),
        (400, InvalidInput, "answered 400: no such filter"),
        (501, ServiceUnavailable, "answered 501"),
    ],
)
def test_a_status_that_is_not_worth_retrying_fails_at_once(
    api: Api, status: int, error: type[Exception], message: str
) -> None:
    api.always = {1: Fault(status, body=b"no such filter")}
    with pytest.raises(error, match=message):
        list(HttpConnector(f"{api.url}/paged", **FAST).batches())
    assert api.attempts(1) == 1


def test_max_pages_stops_the_listing_and_says_it_is_truncated(api: Api) -> None:
    (batch,) = HttpConnector(f"{api.url}/next", pagination=NEXT, max_pages=2).batches()
    assert batch.table.column("id").to_pylist() == list(range(1, 7))
    assert batch.source == {"kind": "http", "url": f"{api.url}/next", "pages": 2, "truncated": True}
    assert api.attempts(3) == 0


def test_a_pagination_loop_is_invalid_input(api: Api) -> None:
    api.loop_back_from = 3
    with pytest.raises(InvalidInput, match="loops: page 3 points back to /next\\?page=2"):
        list(HttpConnector(f"{api.url}/next", pagination=NEXT).batches())


def test_a_page_without_the_records_path_is_invalid_input_naming_it(api: Api) -> None:
    with pytest.raises(InvalidInput, match=f"page 1 of {api.url}/next has no records at 'items'"):
        list(HttpConnector(f"{api.url}/next", records_path="items").batches())


def test_headers_are_sent_on_every_page_and_secrets_never_recorded(api: Api, data: DataService) -> None:
    source = {
        "http": f"{api.url}/next?api_key=k-123&author=ann",
        "pagination": NEXT,
        "headers": {"Authorization": "Bearer t-456"},
    }
    version = data.ingest(source, "secret").version
    assert version is not None and version.rows == PAGES * PER_PAGE
    assert [h.headers.get("Authorization") for h in api.hits] == ["Bearer t-456"] * PAGES
    recorded = json.dumps(version.source)
    assert "k-123" not in recorded and "t-456" not in recorded
    assert version.source["url"] == f"{api.url}/next?api_key=***&author=ann"


@pytest.mark.parametrize("url", ["ftp://example.com/data", "not a url", "http://"])
def test_a_url_that_is_not_http_is_invalid_input_at_once(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="not an HTTP URL"):
        list(connector_for({"http": url}).batches())
    assert time.monotonic() - started < 0.5  # no retries with backoff for what cannot work
