"""Steward's REST API: a FastAPI app over the domain services, one router per domain.

``create_app`` builds the app; ``steward.api.server.serve`` runs it under uvicorn (``steward server``).
Routes only parse, call one service method and map the result; ``errors`` maps ``StewardError`` to
HTTP statuses and the body ``{"error": {"code", "message", "details"}}``.
"""

from steward.api.app import create_app

__all__ = ["create_app"]
