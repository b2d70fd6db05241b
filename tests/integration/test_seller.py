"""The seller side over HTTP: a partner lists (pending until an admin approves), edits and retires their
own solutions and nobody else's; the catalog browse API; the pages' shell, favicon and config."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import Stack
from tests.helpers import make_admin, register


async def become_partner(stack: Stack, http: httpx.AsyncClient, admin: httpx.AsyncClient) -> dict[str, str]:
    """Registers `http` as a user whose partner application `admin` (made an admin if new) approves."""
    _, headers = await register(http)
    application = {"company": "Acme", "website": "https://acme.example", "description": "Tools for AWS users."}
    applied = (await http.post("/api/partners/applications", json=application, headers=headers)).json()
    if "session" not in admin.cookies:
        admin_email, _ = await register(admin)
        make_admin(stack, admin_email)
    admin_headers = {"X-CSRFToken": admin.cookies["csrftoken"]}
    approve = f"/api/admin/partner-applications/{applied['application_id']}/approve"
    assert (await admin.post(approve, headers=admin_headers)).status_code == 200
    return headers


def listing(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "solution_id": f"tool-{uuid.uuid4().hex[:8]}",
        "name": "Cost Watch",
        "description": "Finds idle resources.",
        "price_paise": 29900,
    }
    return {**body, **overrides}


async def test_a_partner_lists_edits_and_retires_only_their_own(client: httpx.AsyncClient, stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.base_url) as partner,
        httpx.AsyncClient(base_url=stack.base_url) as rival,
        httpx.AsyncClient(base_url=stack.base_url) as admin,
    ):
        p_headers = await become_partner(stack, partner, admin)
        r_headers = await become_partner(stack, rival, admin)
        ad_headers = {"X-CSRFToken": admin.cookies["csrftoken"]}
        body = listing()
        sid = body["solution_id"]
        made = await partner.post("/api/partners/solutions", json=body, headers=p_headers)
        assert made.status_code == 201 and made.json()["status"] == "pending"
        assert (await client.get(f"/api/solutions/{sid}")).status_code == 404  # not public before approval
        assert sid not in {s["solution_id"] for s in (await client.get("/api/solutions")).json()}
        waiting = (await admin.get("/api/admin/solutions", params={"status": "pending"})).json()
        assert sid in {s["solution_id"] for s in waiting}
        assert (await partner.post(f"/api/admin/solutions/{sid}/approve", headers=p_headers)).status_code == 403
        assert (await admin.post(f"/api/admin/solutions/{sid}/approve", headers=ad_headers)).json()[
            "status"
        ] == "active"
        twice = await admin.post(f"/api/admin/solutions/{sid}/approve", headers=ad_headers)
        assert twice.status_code == 404 and twice.json()["reason"] == "not_pending"
        assert (await client.get(f"/api/solutions/{sid}")).json()["name"] == "Cost Watch"

        edited = await partner.put(f"/api/partners/solutions/{sid}", json={"price_paise": 39900}, headers=p_headers)
        assert edited.json()["price_paise"] == 39900
        hijack = await rival.put(f"/api/partners/solutions/{sid}", json={"name": "Mine"}, headers=r_headers)
        assert hijack.status_code == 403 and hijack.json()["reason"] == "not_owner"
        steal = await rival.post(f"/api/partners/solutions/{sid}/retire", headers=r_headers)
        assert steal.status_code == 403
        assert [s["solution_id"] for s in (await rival.get("/api/partners/solutions")).json()] == []
        mine = (await partner.get("/api/partners/solutions")).json()
        assert [(s["solution_id"], s["status"]) for s in mine] == [(sid, "active")]

        retired = await partner.post(f"/api/partners/solutions/{sid}/retire", headers=p_headers)
        assert retired.json()["status"] == "retired"
        assert sid not in {s["solution_id"] for s in (await client.get("/api/solutions")).json()}
        assert [s["status"] for s in (await partner.get("/api/partners/solutions")).json()] == ["retired"]
        finder = await admin.post("/api/admin/solutions/aws-solution-finder/retire", headers=ad_headers)
        assert finder.status_code == 403 and finder.json()["reason"] == "not_retirable"


async def test_only_partners_may_list_and_input_is_bounded(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    refused = await client.post("/api/partners/solutions", json=listing(), headers=headers)
    assert refused.status_code == 403 and refused.json()["reason"] == "partners_only"
    assert (await client.get("/api/partners/solutions")).status_code == 403
    assert (await client.get("/api/admin/solutions")).status_code == 403
    assert (await client.get("/api/admin/solutions", params={"status": "nope"})).status_code == 400
    await client.post("/api/auth/logout", headers=headers)
    assert (await client.get("/api/partners/solutions")).status_code == 401


@pytest.mark.parametrize(
    "bad",
    [{"solution_id": "Not Valid"}, {"price_paise": 1}, {"name": ""}, {"anonymous_limit": -1}, {"extra": "x"}],
)
async def test_bad_listings_are_refused_with_a_reason(stack: Stack, bad: dict[str, object]) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.base_url) as partner,
        httpx.AsyncClient(base_url=stack.base_url) as admin,
    ):
        headers = await become_partner(stack, partner, admin)
        response = await partner.post("/api/partners/solutions", json=listing(**bad), headers=headers)
        assert response.status_code == 400 and response.json()["reason"], response.text


async def test_the_catalog_is_browsed_by_words_category_and_service(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/catalog", params={"limit": 50})).json()
    assert everything["total"] > 50 and len(everything["items"]) == 50
    assert "Amazon CloudFront" in everything["services"] and "Compute" in everything["categories"]
    cdn = (await client.get("/api/catalog", params={"service": "Amazon CloudFront", "q": "image"})).json()
    assert 0 < cdn["total"] < everything["total"]
    for item in cdn["items"]:
        assert "Amazon CloudFront" in item["services"]
        assert "image" in (item["title"] + item["summary"]).lower() or any(
            "image" in s.lower() for s in item["services"]
        )
    storage = (await client.get("/api/catalog", params={"category": "Storage"})).json()
    assert storage["total"] and all("Storage" in i["categories"] for i in storage["items"])
    page2 = (await client.get("/api/catalog", params={"offset": 20, "limit": 20})).json()
    assert page2["items"][0] == everything["items"][20]
    assert (await client.get("/api/catalog", params={"category": "Nothing"})).json()["total"] == 0
    assert (await client.get("/api/catalog", params={"limit": 500})).status_code == 400
    assert (await client.get("/api/catalog", params={"q": "x" * 201})).status_code == 400
    assert (await client.get("/api/catalog", params={"offset": -1})).status_code == 400


PAGES = [
    "/",
    "/search",
    "/register",
    "/login",
    "/verify",
    "/password/forgot",
    "/account",
    "/pricing",
    "/solutions",
    "/solutions/aws-solution-finder",
    "/partners",
    "/partners/apply",
    "/admin",
    "/payments/ORDER1",
]


async def test_every_page_is_the_one_shell_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    navs = set()
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        text = response.text
        assert text.count("<h1") == 1 and 'class="skip" href="#main"' in text, path
        assert text.count('<script type="module"') == 1, path
        navs.add(text[text.index("<nav") : text.index("</nav>")])
    assert len(navs) == 1  # the same nav everywhere


async def test_favicon_and_config(client: httpx.AsyncClient, stack: Stack) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    config = (await client.get("/api/config")).json()
    assert config["states"]["27"] == "Maharashtra" and isinstance(config["finder_origins"], list)
    assert (await client.get("/static/app.js")).status_code == 200
