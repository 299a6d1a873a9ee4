"""What Resend's SDKs call that durable-mail does not serve: answered in Resend's error
format with a message that says so, never a bare 404 page.

Resend's other APIs (domains, contacts, broadcasts, ...) are 404 `not_found` naming the
API; a path of a served API (`/emails`, `/suppressions`) that no route takes is 404, or
405 `method_not_allowed` when the path exists with other methods. These routes come last
in `routes.router`: every served route is tried first. `/webhooks` is not here: its
router (api/resend_compat/webhooks.py) is included on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from api.resend_compat.errors import PREFIXES, as_response, error

# Resend's APIs served here, whose other paths and methods still answer in its format;
# the surface's other prefixes are Resend's APIs that durable-mail does not serve.
SERVED = ("/emails", "/suppressions")
UNSERVED = tuple(p for p in PREFIXES if p not in SERVED)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SERVED_APIS = "emails (send, batch, get, list, update, cancel), webhooks and suppressions"


def _allowed(served: Sequence[APIRouter], request: Request) -> list[str]:
    """The methods the served routes take on the request's path."""
    return sorted(
        {
            method
            for router in served
            for route in router.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] == Match.PARTIAL
            for method in route.methods or ()
        }
    )


def _answer(api: str, served: Sequence[APIRouter], request: Request) -> JSONResponse:
    if api in UNSERVED:
        message = (
            f"durable-mail does not serve Resend's `{api}` API; it serves {SERVED_APIS}. "
            "Keep using Resend for the others."
        )
        return as_response(error(404, "not_found", message))
    allowed = _allowed(served, request)
    if allowed:
        methods = ", ".join(allowed)
        message = f"Method {request.method} is not allowed on this path; use {methods}."
        return as_response(error(405, "method_not_allowed", message, {"allow": methods}))
    message = f"No route {request.method} {api}/... in durable-mail's `{api}` API."
    return as_response(error(404, "not_found", message))


def answering_the_rest(served: Sequence[APIRouter]) -> APIRouter:
    """The routes for every path of the surface that `served` (the routers of its served
    APIs, whose routes are tried first) does not take."""
    router = APIRouter(include_in_schema=False)
    for api in (*UNSERVED, *SERVED):
        for path in (api, api + "/{rest:path}"):
            router.add_api_route(
                path, _handler(api, served), methods=METHODS, name=f"unserved {api}"
            )
    return router


def _handler(api: str, served: Sequence[APIRouter]) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def unserved(request: Request) -> JSONResponse:
        return _answer(api, served, request)

    return unserved
