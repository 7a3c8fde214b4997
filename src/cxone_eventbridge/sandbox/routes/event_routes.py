"""The routing table routers pull (``cxeb router serve --from-api``): every target of the tenant, with secrets."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cxone_eventbridge.models import RoutesTable
from cxone_eventbridge.sandbox import targets as ops
from cxone_eventbridge.sandbox.routes.common import RoutesPrincipal, error_docs
from cxone_eventbridge.sandbox.state import state_of

ROUTES_PATH = "/api/v2/events/routes"

router = APIRouter(tags=["routes"])


@router.get(
    ROUTES_PATH,
    summary="The routing table, with secrets, for routers",
    responses={200: {"model": RoutesTable}, **error_docs(401, 403, 429)},
)
async def routes_table(request: Request, principal: RoutesPrincipal) -> JSONResponse:
    state = state_of(request)
    now = state.clock()
    items = [ops.routes_view(row.target, now=now) for row in state.store.all(principal.tenant)]
    generated = dt.datetime.fromtimestamp(state.clock(), dt.UTC).isoformat().replace("+00:00", "Z")
    return JSONResponse({"items": items, "generatedAt": generated}, headers={"Cache-Control": "no-store"})
