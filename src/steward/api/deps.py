"""FastAPI dependencies: the services stored on ``app.state`` by ``create_app``."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from steward.data.service import DataService
from steward.pipelines.service import PipelineService
from steward.registry.service import RegistryService
from steward.tracking.service import TrackingService

API_PREFIX = "/api/v1"
"""Where every versioned route lives."""


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_tracking(request: Request) -> TrackingService:
    """Return the app's ``TrackingService``."""
    return cast(TrackingService, request.app.state.tracking)


Tracking = Annotated[TrackingService, Depends(get_tracking)]
"""A route parameter annotated ``Tracking`` receives the app's ``TrackingService``."""


async def get_registry(request: Request) -> RegistryService:
    """Return the app's ``RegistryService``."""
    return cast(RegistryService, request.app.state.registry)


Registry = Annotated[RegistryService, Depends(get_registry)]
"""A route parameter annotated ``Registry`` receives the app's ``RegistryService``."""


async def get_data(request: Request) -> DataService:
    """Return the app's ``DataService``."""
    return cast(DataService, request.app.state.data)


Data = Annotated[DataService, Depends(get_data)]
"""A route parameter annotated ``Data`` receives the app's ``DataService``."""


async def get_pipelines(request: Request) -> PipelineService:
    """Return the app's ``PipelineService``."""
    return cast(PipelineService, request.app.state.pipelines)


Pipelines = Annotated[PipelineService, Depends(get_pipelines)]
"""A route parameter annotated ``Pipelines`` receives the app's ``PipelineService``."""
