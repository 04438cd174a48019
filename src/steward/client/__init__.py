"""Steward's remote mode: the same service interfaces as embedded mode, spoken over the REST API.

``HttpClient`` holds the connection pool and turns error responses back into ``steward.errors``;
``RemoteTrackingService`` implements ``TrackingBackend`` on it. ``steward.connect("http://…")`` wires both.
"""

from steward.client.http import HttpClient
from steward.client.tracking import RemoteTrackingService

__all__ = ["HttpClient", "RemoteTrackingService"]
