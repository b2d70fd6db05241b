"""Serves the plain HTML pages, each with a strict Content-Security-Policy and a CSRF cookie."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.response import Redirect

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSRF_COOKIE = "csrftoken"


def page(name: str, request: Request[Any, Any, Any]) -> Response[bytes]:
    body = (FRONTEND / name).read_bytes()
    response: Response[bytes] = Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )
    if not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(Cookie(key=CSRF_COOKIE, value=secrets.token_urlsafe(32), samesite="strict", path="/"))
    return response


@get("/", include_in_schema=False)
async def index() -> Redirect:
    return Redirect("/search")


@get("/search", include_in_schema=False)
async def search_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    return page("search.html", request)


def _page_route(path: str, name: str) -> Any:
    @get(path, include_in_schema=False, name=f"page-{name}-{path}")
    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return page(f"{name}.html", request)

    return handler


PAGES = {
    "/register": "register",
    "/login": "login",
    "/account": "account",
    "/pricing": "pricing",
    "/solutions": "solutions",
    "/solutions/{solution_id:str}": "solutions",
    "/partners/apply": "apply",
    "/admin": "admin",
}

ROUTES = [index, search_page, *(_page_route(path, name) for path, name in PAGES.items())]
