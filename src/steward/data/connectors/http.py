"""HTTP APIs: page through a JSON API with httpx, retrying what is transient, into one Arrow table.

Every page's records (a list of objects at ``records_path``) are gathered and become **one** ``Batch``
for the whole listing: an API listing is one snapshot, and one table keeps a single schema across
pages (a field that first appears on page 9 is still a column). The service would concatenate
per-page batches into one version anyway. ``max_pages`` bounds memory and runaway pagination; a
listing cut by it says ``"truncated": true`` in its source description.

Retries: a connection error, a timeout or a status in ``retry_on`` is retried up to ``retries`` times,
waiting ``backoff * 2**attempt`` seconds (at most 30 s) with jitter, or what ``Retry-After`` asks
(on 429 and 503, at most 60 s).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pyarrow as pa

from steward.data.connectors.base import Batch
from steward.errors import InvalidInput, NotFound, ServiceUnavailable

_MAX_BACKOFF = 30.0
_MAX_RETRY_AFTER = 60.0
_MODES = ("next", "page_param", "cursor_param")
# Words of a query parameter's name (split at ``_``, ``-``, ``.``) that make its value a secret, shown
# as ``***`` in messages and in the recorded source: ``api_key``, ``access_token``, ``X-Amz-Signature``.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "signature", "sig", "auth"}
    | {"credential", "credentials"}
)


class HttpConnector:
    """Read the records of a paginated JSON API.

    Args:
        url: The first page's URL.
        params: Query parameters of every request (pagination adds its own).
        headers: Request headers (e.g. ``Authorization``); never logged or recorded.
        records_path: Dotted path to the list of records in each page (``""``: the body is the list).
        pagination: ``"none"``; ``{"next": "links.next"}`` (the next page's URL, absolute or relative,
            is at that path; stop when it is missing or null); ``{"page_param": "page", "start": 1}``
            (count pages until one has no records); ``{"cursor_param": "cursor", "cursor_path":
            "meta.next_cursor"}`` (send back the cursor found at ``cursor_path`` until there is none).
        max_pages: Stop after this many pages.
        timeout: Seconds for each request.
        retries: Retries of one page after the first attempt.
        backoff: The first retry's base wait, doubled on each further retry.
        retry_on: Statuses worth retrying.

    Raises:
        InvalidInput: The URL is not an ``http(s)://`` URL with a host, or an option is out of range.
    """

    def __init__(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        records_path: str = "data",
        pagination: str | Mapping[str, Any] = "none",
        max_pages: int = 10_000,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        retry_on: Sequence[int] = (429, 500, 502, 503, 504),
    ) -> None:
        if pagination != "none" and not (
            isinstance(pagination, Mapping) and sum(mode in pagination for mode in _MODES) == 1
        ):
            raise InvalidInput(
                "pagination is 'none', {'next': path}, {'page_param': name, 'start': n} or "
                "{'cursor_param': name, 'cursor_path': path}",
                {"field": "pagination"},
            )
        if (
            isinstance(pagination, Mapping)
            and "cursor_param" in pagination
            and "cursor_path" not in pagination
        ):
            raise InvalidInput("cursor pagination needs cursor_path", {"field": "pagination"})
        if max_pages < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise InvalidInput("max_pages ≥ 1, retries ≥ 0, timeout > 0, backoff ≥ 0", {"field": "source"})
        _check_url(url, "url")
        self.url = url
        self.params = dict(params or {})
        self.headers = dict(headers or {})
        self.records_path = records_path
        self.pagination: Mapping[str, Any] = pagination if isinstance(pagination, Mapping) else {}
        self.max_pages = max_pages
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_on = frozenset(retry_on)

    def batches(self) -> Iterator[Batch]:
        """Fetch every page and yield all their records as one batch.

        Raises:
            ServiceUnavailable: A page still fails after the retries (naming the URL and last status).
            InvalidInput: A page is not JSON, lacks ``records_path``, or the records do not fit a table.
            NotFound: The API answers 404.
        """
        records: list[Any] = []
        pages = 0
        truncated = False
        with httpx.Client(timeout=self.timeout, headers=self.headers, follow_redirects=True) as client:
            for more, page in self._pages(client):
                records.extend(page)
                pages += 1
                truncated = more
        source: dict[str, Any] = {"kind": "http", "url": _shown(self.url), "pages": pages}
        if truncated:
            source["truncated"] = True
        yield Batch(_to_table(records, source["url"]), source)

    def _pages(self, client: httpx.Client) -> Iterator[tuple[bool, list[Any]]]:
        """Yield (whether a further page was left unread, the page's records) per page."""
        mode = self.pagination
        url, params = self.url, dict(self.params)
        if "page_param" in mode:
            params[mode["page_param"]] = int(mode.get("start", 1))
        seen: set[str] = set()
        for number in range(1, self.max_pages + 1):
            shown = _shown(httpx.URL(url).copy_merge_params(params) if params else url)
            body = self._get(client, url, params, number, shown)
            records = _records(body, self.records_path, number, shown)
            if "next" in mode:
                link = _dig(body, mode["next"])
                follow = str(link) if link else None
                url, params = (urljoin(url, follow), {}) if follow else (url, params)
            elif "page_param" in mode:
                follow = str(params[mode["page_param"]]) if records else None
                params[mode["page_param"]] = int(params[mode["page_param"]]) + 1
            elif "cursor_param" in mode:
                cursor = _dig(body, mode["cursor_path"])
                follow = str(cursor) if cursor not in (None, "") else None
                params[mode["cursor_param"]] = follow
            else:
                follow = None
            if follow is not None and "page_param" not in mode:
                if follow in seen:
                    raise InvalidInput(
                        f"the pagination of {_shown(self.url)} loops: page {number} points back to "
                        f"{_shown(follow)}",
                        {"field": "pagination", "page": number},
                    )
                seen.add(follow)
            yield follow is not None and number == self.max_pages, records
            if follow is None:
                return

    def _get(
        self, client: httpx.Client, url: str, params: Mapping[str, Any], number: int, page_url: str
    ) -> Any:
        """Fetch one page, retrying what is transient; ``page_url`` names it (secrets masked)."""
        last, status = "", None
        for attempt in range(self.retries + 1):
            wait = None
            try:
                response = client.get(url, params=params or None)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # a bad next link: no retry helps
                raise InvalidInput(
                    f"page {number} has a URL that cannot be fetched ({page_url}): {exc}",
                    {"field": "pagination", "url": page_url, "page": number},
                ) from exc
            except httpx.TimeoutException:
                last, status = f"timed out after {self.timeout:g} s", None
            except httpx.HTTPError as exc:  # connection refused or reset, broken encoding, redirect loop
                last, status = f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code not in self.retry_on:
                    return _body(response, number, page_url)
                last, status = f"HTTP {response.status_code}", response.status_code
                if response.status_code in (429, 503):
                    wait = _retry_after(response.headers.get("Retry-After"))
            if attempt < self.retries:
                time.sleep(wait if wait is not None else self._delay(attempt))
        raise ServiceUnavailable(
            f"GET {page_url} (page {number}) failed after {self.retries + 1} attempts; last: {last}",
            {"url": page_url, "page": number, "status": status},
        )

    def _delay(self, attempt: int) -> float:
        ceiling = min(_MAX_BACKOFF, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter": never much less than the backoff


def _check_url(url: str, field: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInput(f"not an HTTP URL: {exc}", {"field": field}) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput(
            f"not an HTTP URL: {_shown(url)!r} (expected http://host/path or https://…)", {"field": field}
        )


def _shown(url: str | httpx.URL) -> str:
    """The URL with its password and secret-looking query values (``api_key=``, ``token=``) as ``***``."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret(key) for key, _ in pairs):
            query = urlencode([(k, "***" if _secret(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _secret(name: str) -> bool:
    return any(word in _SECRET_WORDS for word in re.split(r"[_.\-]", name.lower()))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _body(response: httpx.Response, number: int, url: str) -> Any:
    where = {"field": "source", "url": url, "page": number, "status": response.status_code}
    if response.status_code == 404:
        raise NotFound(f"GET {url} (page {number}) answered 404", where)
    if response.status_code >= 500:
        raise ServiceUnavailable(f"GET {url} (page {number}) answered {response.status_code}", where)
    if response.status_code >= 400:
        detail = response.text[:200]
        raise InvalidInput(f"GET {url} (page {number}) answered {response.status_code}: {detail}", where)
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise InvalidInput(f"page {number} of {url} is not JSON: {exc}", where) from exc


def _dig(body: Any, path: str) -> Any:
    """The value at a dotted path, or ``None`` where the path does not exist."""
    value = body
    for key in (k for k in path.split(".") if k):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _records(body: Any, path: str, number: int, url: str) -> list[Any]:
    records = _dig(body, path)
    where = {"field": "records_path", "url": url, "page": number}
    if records is None and path:
        raise InvalidInput(f"page {number} of {url} has no records at {path!r}", where)
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise InvalidInput(f"page {number} of {url}: {path or 'the body'!r} is not a list of objects", where)
    return records


def _to_table(records: list[Any], url: str) -> pa.Table:
    """One table from all records: every key seen on any record is a column (null where absent)."""
    names = list(dict.fromkeys(key for record in records for key in record))
    if not records:
        return pa.table({})
    rows = [{name: records[0].get(name) for name in names}, *records[1:]]  # from_pylist reads row 0's keys
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for name in names:
            try:
                pa.array([record.get(name) for record in records])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as column_exc:
                raise InvalidInput(
                    f"field {name!r} of the records from {url} mixes types: {column_exc}",
                    {"field": "source", "column": name},
                ) from exc
        raise InvalidInput(f"the records from {url} do not fit a table: {exc}", {"field": "source"}) from exc
