"""JSON responses rendered by orjson (numpy arrays included), used by every route."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import numpy as np
import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # orjson hands over what it cannot encode natively: non-contiguous arrays, numpy scalars, paths.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """Encode ``content`` as JSON bytes with orjson (numpy arrays and scalars allowed).

    Raises:
        TypeError: If something in ``content`` has no JSON form.
    """
    return orjson.dumps(content, default=_default, option=_OPTIONS)


class OrjsonResponse(JSONResponse):
    """A JSON response encoded by orjson: several times faster than ``json`` for large metric columns.

    Args:
        content: Anything ``dumps`` accepts.
        status_code: The HTTP status.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content`` (called by Starlette)."""
        return dumps(content)
