"""Serves the pages: one shell (head, nav, footer) around each page's fragment, with a strict
Content-Security-Policy and a CSRF cookie; the favicon; and the small config the pages read."""

from __future__ import annotations

import functools
import html
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get

from api.state import Services
from payments.gst import STATES

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CSRF_COOKIE = "csrftoken"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    """One page: its title, its fragment in frontend/pages/<name>.html and its script frontend/<name>.js."""

    name: str
    title: str


PAGES: dict[str, Page] = {
    "/": Page("home", "Find the AWS solution for what you want to build"),
    "/search": Page("search", "Search"),
    "/register": Page("register", "Create your account"),
    "/login": Page("login", "Log in"),
    "/verify": Page("verify", "Verify your email"),
    "/password/forgot": Page("forgot", "Reset your password"),
    "/account": Page("account", "Your account"),
    "/pricing": Page("pricing", "Pricing"),
    "/solutions": Page("solutions", "Solutions"),
    "/solutions/{solution_id:str}": Page("solution", "Solution"),
    "/partners": Page("partner", "Your listings"),
    "/partners/apply": Page("apply", "Sell your solution"),
    "/admin": Page("admin", "Admin"),
    "/payments/{merchant_order_id:str}": Page("payment", "Your payment"),
}


@functools.cache
def _read(relative: str) -> str:
    return (FRONTEND / relative).read_text(encoding="utf-8")


def render(page: Page) -> bytes:
    """The shell with the page's fragment in <main>; the same head, nav and footer for every page."""
    replacements = {
        "{{title}}": html.escape(page.title),
        "{{script}}": page.name,
        "{{page}}": page.name,
        "{{main}}": _read(f"pages/{page.name}.html"),
    }
    text = _read("shell.html")
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text.encode()


def page_response(page: Page, request: Request[Any, Any, Any]) -> Response[bytes]:
    response: Response[bytes] = Response(render(page), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
    if not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(key=CSRF_COOKIE, value=secrets.token_urlsafe(32), samesite="strict", path="/")
    return response


def _page_route(path: str, page: Page) -> Any:
    @get(path, include_in_schema=False, name=f"page-{page.name}")
    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return page_response(page, request)

    return handler


@get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response[bytes]:
    return Response(
        _read("favicon.svg").encode(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


class SiteConfig(msgspec.Struct):
    finder_origins: list[str]
    states: dict[str, str]


def finder_origins(services: Services) -> list[str]:
    """Origins a sign-in may hand a fresh token back to (FINDER_ORIGINS; POST /api/finder-handoff checks)."""
    return services.settings.finder_origin_list


@get("/api/config", summary="What the pages need to know: hand-off origins and GST state codes")
async def site_config(services: Services) -> SiteConfig:
    return SiteConfig(
        finder_origins=finder_origins(services),
        states={code: name for code, (name, _) in STATES.items()},
    )


ROUTES = [favicon, site_config, *(_page_route(path, page) for path, page in PAGES.items())]
