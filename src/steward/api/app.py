"""``create_app``: the one factory of the FastAPI app, wiring routers to services built on a Platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from starlette.responses import Response

from steward.api.approvals import router as approvals_router
from steward.api.audit import router as audit_router
from steward.api.auth import public
from steward.api.automation import router as automation_router
from steward.api.compliance import router as compliance_router
from steward.api.data import router as data_router
from steward.api.deploy import router as deploy_router
from steward.api.deps import API_PREFIX
from steward.api.docs import install_docs
from steward.api.errors import install_error_handling
from steward.api.features import close_features
from steward.api.features import router as features_router
from steward.api.guard import Gatekeeper
from steward.api.identity import identity_service_of
from steward.api.identity import router as identity_router
from steward.api.limits import BodyLimitMiddleware
from steward.api.model_signing import router as model_signing_router
from steward.api.monitoring import router as monitoring_router
from steward.api.pipelines import router as pipelines_router
from steward.api.policy import router as policy_router
from steward.api.predictions import router as predictions_router
from steward.api.registry import router as registry_router
from steward.api.responses import OrjsonResponse
from steward.api.tracking import router as tracking_router
from steward.config import Settings, load_settings
from steward.data.service import DataService
from steward.governance.oidc import OidcVerifier
from steward.pipelines.service import PipelineService
from steward.registry.service import RegistryService
from steward.store.platform import Platform
from steward.tracking.service import TrackingService

# Read from the installed distribution: importing ``steward`` itself would pull in the SDK and, through
# ``steward._connect``, ``steward.client`` (a sibling layer the import contract keeps independent).
VERSION = version("steward-ml")


async def health() -> Response:
    """Answer ``{"status": "ok", "version": ...}`` while the server runs."""
    return OrjsonResponse({"status": "ok", "version": VERSION})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Steward API app on the stores named by ``settings``.

    The metadata store is opened (and migrated) here; ``app.state`` holds ``settings``, ``platform``,
    ``tracking``, ``registry``, ``data``, ``pipelines``, ``identity`` and ``guard``. The platform's
    connections are released when the app shuts down. OpenAPI docs are at ``/docs`` and the schema at
    ``/openapi.json``. With ``settings.auth`` every route but health, docs and the bootstrap exchange
    needs a bearer token (``steward.api.auth``); request bodies over ``settings.max_request_bytes`` get
    413.

    Args:
        settings: Where the metadata and artifacts live; from the environment and ``steward.toml`` if
            omitted (this is how ``uvicorn --factory`` worker processes get theirs).

    Returns:
        The app, ready for any ASGI server.

    Raises:
        InvalidInput: For malformed settings.
        ServiceUnavailable: If the metadata store cannot be reached.
    """
    settings = settings or load_settings()
    platform = Platform.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        close_features(app.state)
        platform.close()

    app = FastAPI(
        title="Steward",
        version=VERSION,
        summary="A governed MLOps platform: tracking, registry, serving and monitoring.",
        docs_url=None,  # served by install_docs from vendored files
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.platform = platform
    app.state.tracking = TrackingService(platform)
    app.state.registry = RegistryService(platform, app.state.tracking)
    app.state.data = DataService(platform)
    app.state.pipelines = PipelineService(platform, app.state.tracking)
    app.state.guard = Gatekeeper(
        platform, identity_service_of(app.state), settings.auth, OidcVerifier.from_settings(settings)
    )
    # Added first, so it sits inside the request-id middleware and sees a streamed body's overflow first.
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_request_bytes,
        on_refuse=app.state.guard.body_refused if settings.auth else None,
    )  # fmt: skip
    install_error_handling(app)
    install_docs(app)
    app.add_api_route(
        f"{API_PREFIX}/health", health, methods=["GET"], tags=["health"], summary="Liveness",
        dependencies=[public()],
    )  # fmt: skip
    app.include_router(tracking_router)
    app.include_router(registry_router)
    app.include_router(model_signing_router)
    app.include_router(data_router)
    app.include_router(pipelines_router)
    app.include_router(audit_router)
    app.include_router(identity_router)
    app.include_router(policy_router)
    app.include_router(approvals_router)
    app.include_router(compliance_router)
    app.include_router(predictions_router)
    app.include_router(deploy_router)
    app.include_router(features_router)
    app.include_router(monitoring_router)
    app.include_router(automation_router)
    return app
