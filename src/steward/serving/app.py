"""The inference server's ASGI app: raw ASGI on the hot path, orjson for JSON, nothing per request that
is not needed to answer it.

==========  ==================================================  ==========================================
Method      Path                                                Answer
==========  ==================================================  ==========================================
GET         ``/v2``                                             server metadata
GET         ``/v2/health/live``                                 200 while the process runs
GET         ``/v2/health/ready``                                200 when every endpoint serves a version
GET         ``/v2/models/{name}[/versions/{v}]``                model metadata: inputs, outputs, versions
GET         ``/v2/models/{name}[/versions/{v}]/ready``          200 when ready, else 503 with the error
POST        ``/v2/models/{name}[/versions/{v}]/infer``          OIP inference (a version bypasses the split)
POST        ``/predict/{name}``                                 ``{"predictions": [...], ...}``
GET         ``/metrics``                                        Prometheus text
==========  ==================================================  ==========================================

``{name}`` is an endpoint. Every answer carries ``X-Request-Id`` (the client's, if it sent a sane one,
else a new time-ordered id). With an ``authorise`` callable (``steward serve --auth``) model routes need
``serving:predict`` in the endpoint's project; health, server metadata and ``/metrics`` stay public.
The app never answers a request with a traceback: refusals are JSON errors (``steward.serving.refusals``:
the protocol's ``{"error": "<message>", "code", "details"}`` on ``/v2`` routes, Steward's
``{"error": {"code", "message", "details"}}`` elsewhere) and a failing model is a 500 ``model_error``
after which the server goes on.

An endpoint whose plan names a feature service takes entity keys: before a version decodes the request,
its features are read from the online store for all of its rows at once and fill the model's inputs
(``steward.serving.features``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import orjson

from steward.errors import InvalidInput, NotFound, StewardError
from steward.serving import oip, predict_json
from steward.serving.accounting import Accounting
from steward.serving.asgi import (
    JSON,
    OCTETS,
    Disconnected,
    HttpRequest,
    MethodNotAllowed,
    int_header,
    read_body,
    send_answer,
)
from steward.serving.features import Enrichment, FeatureStoreUnavailable, OnlineFeatureReader
from steward.serving.metrics import CONTENT_TYPE, ServingMetrics
from steward.serving.models import PredictionSink
from steward.serving.refusals import (
    ModelError,
    NotReady,
    Unprocessable,
    error_json,
    is_oip,
    status_of,
)
from steward.serving.router import EndpointState, Route, Router, RoutingTable
from steward.serving.runtime import ServedVersion
from steward.serving.shadow import Decode, Original, ShadowMirror
from steward.serving.stats import WindowRecorder

log = logging.getLogger("steward.serving")

DEFAULT_MAX_REQUEST_BYTES: Final = 16 * 1024 * 1024
DROPPED_EVERY_SECONDS: Final = 2.0
PERMISSION: Final = "serving:predict"

try:
    SERVER_VERSION = version("steward-ml")
except PackageNotFoundError:  # running from a source tree that is not installed
    SERVER_VERSION = "0"


@dataclass(frozen=True)
class Access:
    """What an ``authorise`` callable decides on.

    Attributes:
        method: The HTTP method.
        path: The request path.
        headers: The request headers (lower-case names).
        project: The endpoint's project.
        permission: The permission needed (``serving:predict``).
        request_id: The request's id (for the audit trail).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    project: str
    permission: str
    request_id: str


Authorise = Callable[[Access], Awaitable[None]]
"""Admits a request or raises ``Unauthenticated`` (401) / ``Forbidden`` (403)."""


class ServingApp:
    """The ASGI app of ``steward serve``.

    Args:
        router: Routes requests to loaded versions and follows the traffic plans.
        metrics: The Prometheus metrics (new ones if omitted).
        recorder: Window statistics (None: not recorded).
        sink: The prediction log (None: nothing logged).
        authorise: Admits model requests (None: everyone may call).
        features: Reads the online features of endpoints behind a feature service (None: such an
            endpoint answers 503).
        max_request_bytes: Larger bodies get 413.
        on_shutdown: Called, in order, after the server stopped serving (closing the log, the database).
    """

    def __init__(
        self,
        router: Router,
        *,
        metrics: ServingMetrics | None = None,
        recorder: WindowRecorder | None = None,
        sink: PredictionSink | None = None,
        authorise: Authorise | None = None,
        features: OnlineFeatureReader | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        on_shutdown: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.router = router
        self.features = features
        self.metrics = metrics or ServingMetrics()
        self.recorder = recorder
        self.sink = sink
        self.accounting = Accounting(self.metrics, recorder, sink)
        self.shadows = ShadowMirror(self.accounting)
        self.authorise = authorise
        self.max_request_bytes = max_request_bytes
        self._on_shutdown = list(on_shutdown)
        self._started = False
        self._ticker: asyncio.Task[None] | None = None

    # -- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection scope (``http`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "http":
            request = HttpRequest(scope)
            try:
                await self._http(request, receive, send)
            except Disconnected:
                return
            except StewardError as error:
                await self._refuse(request, send, error)
            except Exception:  # a bug must cost one request, never the server
                log.exception("request %s %s (%s) failed", request.method, request.path, request.id)
                body = error_json("internal_error", f"internal error (request {request.id})",
                                  {"request_id": request.id}, oip=is_oip(request.path))  # fmt: skip
                with contextlib.suppress(Exception):  # the answer may have started: nothing more to send
                    await send_answer(send, 500, body, request.id)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("the inference server failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Load every endpoint's versions, then start polling the plans and writing window statistics."""
        self.router.on_change = self._changed
        await self.router.start()
        _freeze_heap()
        self._changed(self.router)
        if self.recorder is not None:
            self.recorder.start()
        if self.sink is not None:
            self._ticker = asyncio.create_task(self._tick(), name="steward-serving-dropped")
        self._started = True

    async def _tick(self) -> None:
        while True:  # each worker brings its own count of dropped log records into /metrics
            await asyncio.sleep(DROPPED_EVERY_SECONDS)
            self._poll_dropped()

    async def shutdown(self) -> None:
        """Finish shadow copies, stop polling, write the last window statistics, run ``on_shutdown``."""
        if self._ticker is not None:
            self._ticker.cancel()
        await self.shadows.drain()
        await self.router.stop()
        if self.recorder is not None:
            self.recorder.close()
        self._poll_dropped()
        self.metrics.close()
        for action in self._on_shutdown:
            try:
                action()
            except Exception:
                log.exception("shutting down: %r failed", action)

    def _changed(self, router: Router) -> None:
        self.metrics.track(router)

    def _poll_dropped(self) -> None:
        dropped = getattr(self.sink, "dropped", None)
        if isinstance(dropped, int):
            self.metrics.dropped(dropped)

    # -- routing ------------------------------------------------------------------------------------

    async def _http(self, request: HttpRequest, receive: Any, send: Any) -> None:
        path = request.path
        if request.method == "POST":
            if path.startswith("/predict/"):
                await self._predict(request, receive, send, path[9:])
                return
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                parts = path[11:-6].split("/")
                if len(parts) == 1:
                    await self._infer(request, receive, send, parts[0], None)
                    return
                if len(parts) == 3 and parts[1] == "versions":
                    await self._infer(request, receive, send, parts[0], parts[2])
                    return
        elif request.method == "GET":
            await self._get(request, send, path)
            return
        if _known(path):
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}")
        raise NotFound(f"no route {path}", {"field": "path"})

    async def _get(self, request: HttpRequest, send: Any, path: str) -> None:
        if path == "/metrics":
            self._poll_dropped()
            await send_answer(send, 200, self.metrics.render(), request.id, CONTENT_TYPE.encode())
        elif path in ("/v2", "/v2/"):
            metadata = {"name": "steward", "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]}
            await send_answer(send, 200, orjson.dumps(metadata), request.id)
        elif path == "/v2/health/live":
            await send_answer(send, 200, b'{"live":true}', request.id)
        elif path == "/v2/health/ready":
            ready = self._started and self.router.ready
            await send_answer(send, 200 if ready else 503, orjson.dumps({"ready": ready}), request.id)
        elif path.startswith("/v2/models/"):
            parts = path[11:].split("/")
            ready = parts[-1] == "ready"
            if ready:
                parts = parts[:-1]
            if len(parts) == 1:
                await self._model(request, send, parts[0], None, ready)
            elif len(parts) == 3 and parts[1] == "versions":
                await self._model(request, send, parts[0], parts[2], ready)
            else:
                raise NotFound(f"no route {path}", {"field": "path"})
        else:
            if _known(path):
                raise MethodNotAllowed(f"GET is not allowed on {path}")
            raise NotFound(f"no route {path}", {"field": "path"})

    # -- model routes -------------------------------------------------------------------------------

    def _state(self, name: str) -> EndpointState:
        state = self.router.endpoints.get(name)
        if state is None:
            raise NotFound(f"no endpoint or model named {name[:128]!r} is served here", {"field": "model"})
        return state

    @staticmethod
    def _table(state: EndpointState) -> RoutingTable:
        table = state.table
        if table is None:
            raise NotReady(
                f"endpoint {state.name!r} is not ready: {state.error or 'its model is still loading'}",
                {"field": "model", "error": state.error},
            )
        return table

    async def _admit(self, request: HttpRequest, table: RoutingTable) -> None:
        if self.authorise is not None:
            await self.authorise(
                Access(
                    request.method,
                    request.path,
                    request.headers(),
                    table.plan.project,
                    PERMISSION,
                    request.id,
                )
            )

    async def _model(
        self, request: HttpRequest, send: Any, name: str, wanted: str | None, ready_only: bool
    ) -> None:
        state = self._state(name)
        if ready_only:  # a probe: public, like the health routes
            if wanted is None:
                ready, body = state.ready, {"name": name, "ready": state.ready, "error": state.error}
            else:
                ready = state.table is not None and state.table.version(wanted) is not None
                body = {"name": name, "version": wanted, "ready": ready}
            await send_answer(send, 200 if ready else 503, orjson.dumps(body), request.id)
            return
        table = self._table(state)
        await self._admit(request, table)
        routes = list(table.routes.values())
        if wanted is not None:
            route = table.version(wanted)
            if route is None:
                raise NotFound(
                    f"endpoint {name!r} does not serve version {wanted[:64]!r}", {"field": "version"}
                )
            routes = [route]
        first = routes[0] if wanted is not None else table.live[0]
        metadata = {
            "name": name,
            "versions": [route.arm.version for route in routes],
            "platform": oip.platform_of(first.served),
            "inputs": oip.inputs_metadata(first.served),
            "outputs": oip.outputs_metadata(first.served),
            "ready": state.ready,
            "error": state.error,
            "model": table.plan.model,
            "feature_service": table.plan.feature_service,
            "traffic": [
                {
                    "version": r.arm.version,
                    "role": r.arm.role,
                    "weight": r.arm.weight,
                    "format": r.served.format,
                }
                for r in routes
            ],
        }
        await send_answer(send, 200, orjson.dumps(metadata), request.id)

    async def _predict(self, request: HttpRequest, receive: Any, send: Any, name: str) -> None:
        at_ms = time.time_ns() // 1_000_000
        admitted = self._table(self._state(name))
        await self._admit(request, admitted)
        data = predict_json.parse(await read_body(request, receive, self.max_request_bytes))
        table, enrichment = await self._enriched(
            request, name, admitted, lambda: predict_json.columns_of(data)
        )
        route = table.pick(request.key or predict_json.sticky_value(data, table.plan.sticky_key))

        def decode(served: ServedVersion) -> tuple[Any, int]:
            return predict_json.decode(data, served)

        chosen = decode if enrichment is None else enrichment.decode
        original = await self._answer(table, route, request, chosen, at_ms)
        body = predict_json.encode(original.answers, table.plan.model, route.served.key.version, request.id)
        await send_answer(send, 200, body, request.id)
        self._answered(table, route, request, original, mirror=True, enrichment=enrichment)

    async def _infer(
        self, request: HttpRequest, receive: Any, send: Any, name: str, wanted: str | None
    ) -> None:
        at_ms = time.time_ns() // 1_000_000
        admitted = self._table(self._state(name))
        await self._admit(request, admitted)
        body = await read_body(request, receive, self.max_request_bytes)
        infer = oip.parse_infer(body, int_header(request.header_length, oip.HEADER_LENGTH))
        table, enrichment = await self._enriched(request, name, admitted, lambda: oip.columns_of(infer))
        if wanted is not None:
            found = table.version(wanted)
            if found is None:
                raise NotFound(
                    f"endpoint {name!r} does not serve version {wanted[:64]!r}", {"field": "version"}
                )
            route = found
        else:
            key = request.key
            if key is None and table.plan.sticky_key is not None:
                value = infer.parameters.get(table.plan.sticky_key)
                key = None if value is None else str(value)
            route = table.pick(key)

        def decode(served: ServedVersion) -> tuple[Any, int]:
            return oip.decode(infer, served)

        chosen = decode if enrichment is None else enrichment.decode
        original = await self._answer(table, route, request, chosen, at_ms)
        served = route.served
        answer, binary = oip.encode_infer(
            infer, original.answers, served.output, name, served.key.version, request.id
        )
        length = [] if binary is None else [(b"inference-header-content-length", str(binary).encode())]
        await send_answer(send, 200, answer, request.id, JSON if binary is None else OCTETS, length)
        self._answered(table, route, request, original, mirror=wanted is None, enrichment=enrichment)

    async def _newest(self, request: HttpRequest, name: str, admitted: RoutingTable) -> RoutingTable:
        """The endpoint's table now, after the awaits of reading the body: the request must enter a version
        of the current table with no await in between, or that version could be unloaded under it."""
        table = self._table(self._state(name))
        if table.plan.project != admitted.plan.project:  # the endpoint moved: admit it there too
            await self._admit(request, table)
            table = self._table(self._state(name))
            if table.plan.project != admitted.plan.project and self.authorise is not None:
                raise NotReady(f"endpoint {name!r} is moving between projects; retry", {"field": "model"})
        return table

    async def _enriched(
        self, request: HttpRequest, name: str, admitted: RoutingTable, columns: Callable[[], dict[str, Any]]
    ) -> tuple[RoutingTable, Enrichment | None]:
        """The endpoint's newest table and, behind a feature service, the request's online features.

        The features are read before the newest table is taken (the read may await, and no await may come
        between taking a table and entering its version); a plan that changed its feature service in
        between is read again.
        """
        table = admitted
        given: dict[str, Any] | None = None
        for _ in range(3):
            service = table.plan.feature_service
            enrichment = None
            if service is not None:
                if self.features is None:
                    raise FeatureStoreUnavailable(
                        f"endpoint {name!r} reads feature service {service!r}, but this server has no "
                        "feature store",
                        {"field": "feature_service", "feature_service": service},
                    )
                given = given if given is not None else columns()
                enrichment = await self.features.read(table.plan, given)
            newest = await self._newest(request, name, table)
            if newest.plan.feature_service == service and newest.plan.project == table.plan.project:
                return newest, enrichment
            table = newest
        raise NotReady(f"endpoint {name!r} is changing its feature service; retry", {"field": "model"})

    async def _answer(
        self, table: RoutingTable, route: Route, request: HttpRequest, decode: Decode, at_ms: int
    ) -> Original:
        """Decode the request for the route's version and run it there (counting a refusal or failure)."""
        served = route.served
        Router.enter(served)
        try:
            try:
                item, rows = decode(served)
            except StewardError as error:
                self._account(table, route, request, status_of(error), at_ms)
                raise
            answers = await self._run(table, route, request, item, rows, at_ms)
        finally:
            Router.leave(served)
        return Original(served, item, rows, decode, answers, request.id, at_ms)

    def _answered(
        self,
        table: RoutingTable,
        route: Route,
        request: HttpRequest,
        original: Original,
        mirror: bool,
        enrichment: Enrichment | None = None,
    ) -> None:
        """After the answer is sent: count it, log it (with the entity keys of an enriched request), and
        send the shadows their copies."""
        item = original.item if enrichment is None else enrichment.logged(original.served, original.item)
        self._account(table, route, request, 200, original.at_ms, item, original.answers)
        if mirror and table.shadows:
            self.shadows.mirror(table.plan, table.shadows, original)

    async def _run(
        self, table: RoutingTable, route: Route, request: HttpRequest, item: Any, rows: int, at_ms: int
    ) -> Any:
        served = route.served
        try:
            return await served.predict(item, rows)
        except InvalidInput as error:  # the flavor's own check of what the signature let through
            self._account(table, route, request, 422, at_ms)
            raise Unprocessable(error.message, error.details) from None
        except Exception as exc:
            log.error(
                "model %s failed on request %s: %s: %s", served.key, request.id, type(exc).__name__, exc
            )
            self._account(table, route, request, 500, at_ms)
            raise ModelError(
                f"model {served.key.model} version {served.key.version} failed on this input: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                {"request_id": request.id, "version": served.key.version},
            ) from None

    def _account(
        self,
        table: RoutingTable,
        route: Route,
        request: HttpRequest,
        status: int,
        at_ms: int,
        item: Any = None,
        answers: Any = None,
    ) -> None:
        request.accounted = True
        self.accounting.answered(
            table.plan,
            route.served,
            route.arm.role,
            status,
            time.perf_counter() - request.started,
            request.id,
            at_ms,
            item,
            answers,
        )

    # -- answers ----------------------------------------------------------------------------------

    async def _refuse(self, request: HttpRequest, send: Any, error: StewardError) -> None:
        status = 405 if isinstance(error, MethodNotAllowed) else status_of(error)
        if not request.accounted:
            self.accounting.refused(status)
        extra = [(b"connection", b"close")] if status == 413 else None
        code = "method_not_allowed" if status == 405 else error.code
        body = error_json(code, error.message, error.details, oip=is_oip(request.path))
        await send_answer(send, status, body, request.id, JSON, extra)


def _freeze_heap() -> None:
    """Move everything loaded so far (libraries, models) out of the garbage collector's sight.

    The cyclic collector's full passes walk every tracked object; with scikit-learn, pandas and a model
    loaded that is over a million objects, and a pass stalls the event loop for tens of milliseconds:
    the requests it holds up become the p99. Frozen objects are never scanned (they are still freed by
    reference counting), so a full pass only walks what requests allocated since.
    """
    gc.collect()
    gc.freeze()


def _known(path: str) -> bool:
    return path in ("/metrics", "/v2", "/v2/health/live", "/v2/health/ready") or path.startswith(
        ("/predict/", "/v2/models/")
    )
