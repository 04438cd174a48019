"""``EndpointSource``: the ``serving.models.TrafficSource`` over the endpoints table, for servers that
follow endpoints (``steward serve --endpoint churn``).

A server polls ``plans()`` every second, so it costs one indexed query of the endpoints' revisions; the
arms are read again only for an endpoint whose revision moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from steward.core.names import validate_name
from steward.deploy import repository as repo
from steward.errors import NotFound
from steward.serving.models import TrafficPlan
from steward.store.tables import endpoints as endpoints_table

if TYPE_CHECKING:
    from steward.store.platform import Platform


class EndpointSource:
    """The traffic plans of a project's endpoints, as stored by ``deploy``.

    Args:
        platform: The platform whose metadata store holds the endpoints; its project (at construction)
            is the one served.
        endpoints: The endpoints to serve; None serves every endpoint of the project (as they come and go).

    Raises:
        InvalidInput: For a malformed endpoint name.
        NotFound: A named endpoint does not exist.
    """

    def __init__(self, platform: Platform, endpoints: Sequence[str] | None = None) -> None:
        self.platform = platform
        self.project = platform.project
        self.names = [validate_name(n, "endpoint") for n in endpoints] if endpoints is not None else None
        self._cache: dict[str, tuple[int, TrafficPlan]] = {}
        if self.names is not None:
            with platform.metadata.read() as conn:
                found = {r.name for r in repo.endpoint_rows(conn, self.project, self.names)}
            missing = [n for n in self.names if n not in found]
            if missing:
                raise NotFound(
                    f"endpoint {missing[0]!r} not found in project {self.project!r}: create it with "
                    f"steward deploy create {missing[0]} --model MODEL --version VERSION",
                    {"field": "endpoint"},
                )

    def plans(self) -> Sequence[TrafficPlan]:
        """Return the current plan of every endpoint served (one that was deleted drops out)."""
        c = endpoints_table.c
        query = select(c.id, c.name, c.revision).where(c.project == self.project)
        if self.names is not None:
            query = query.where(c.name.in_(self.names))
        with self.platform.metadata.read() as conn:
            heads = list(conn.execute(query.order_by(c.name)))
            stale = [h for h in heads if self._cache.get(h.id, (-1,))[0] != h.revision]
            if stale:
                rows = {r.id: r for r in repo.endpoint_rows(conn, self.project, [h.name for h in stale])}
                arms = repo.arms_of(conn, self.project, list(rows))
                for row in rows.values():
                    plan = repo.to_endpoint(row, arms.get(row.id, ())).plan
                    self._cache[row.id] = (plan.revision, plan)
        live = {h.id for h in heads}
        for gone in set(self._cache) - live:
            del self._cache[gone]
        return [self._cache[h.id][1] for h in heads if h.id in self._cache]
