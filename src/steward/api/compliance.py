"""Compliance routes: one model version's compliance report, as JSON, HTML or PDF, under ``/api/v1``.

=======  ===========================================================  ==================================
Method   Path                                                         Answer
=======  ===========================================================  ==================================
GET      ``/models/{name}/versions/{version}/compliance?format=``     the report: ``application/json``,
                                                                      ``text/html`` or ``application/pdf``
=======  ===========================================================  ==================================

``format`` is ``json`` (the default), ``html`` or ``pdf``; another is 400, an unknown model or version
404, and ``pdf`` on a server without fpdf2 400 naming the extra. The report reads the audit trail, so the
route needs ``audit:read`` (the ``auditor`` and ``admin`` roles); the audit entries it holds are those of
the request's project (and, for holders of a global role, the platform-wide ones). HTML and PDF come
with a ``Content-Disposition`` that names ``<model>-<version>-compliance.<ext>`` (HTML inline, under a
``Content-Security-Policy`` that lets nothing but its inline CSS load; PDF as an attachment).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Registry
from steward.api.responses import OrjsonResponse
from steward.registry.compliance import MEDIA_TYPES, build_report, check_format

router = APIRouter(prefix=API_PREFIX, tags=["compliance"])

_HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
"""The page needs nothing but its inline CSS: no script, image, font or frame may load, from anywhere."""
_Format = Annotated[str, Query(alias="format", max_length=16, description="``json``, ``html`` or ``pdf``")]


@router.get(
    "/models/{name}/versions/{version}/compliance",
    dependencies=[requires("audit:read")],
    summary="A model version's compliance report (JSON, HTML or PDF)",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
def compliance_report(name: str, version: str, registry: Registry, fmt: _Format = "json") -> Response:
    """Lineage, data validation, PII handling, residency, policy verdicts, approvals and the audit entries
    of the version, with the audit trail's verification, in one document."""
    check_format(fmt)
    report = build_report(registry, name, version)
    if fmt == "json":
        return OrjsonResponse(report.to_json())
    disposition = "inline" if fmt == "html" else "attachment"
    headers = {"Content-Disposition": f'{disposition}; filename="{report.filename_stem}.{fmt}"'}
    if fmt == "html":
        headers["Content-Security-Policy"] = _HTML_POLICY
    return Response(report.render(fmt), media_type=MEDIA_TYPES[fmt], headers=headers)
