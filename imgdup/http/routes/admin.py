"""GET /admin and /admin/static/* -> the moderators' page (HTML, script and styles from this API only).

The page holds no data: its script logs in (a credential kept in sessionStorage) and fetches
everything with `Authorization: Bearer`, thumbnails included (as blob: URLs). A browser opening
/admin sends no credentials, so without an authenticating proxy it gets 401 with the page itself,
which shows the login form; the static script and styles are public (code, no data)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from imgdup.http.auth import Access
from imgdup.http.deps import LoginRequired, allow

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The admin page loads nothing from elsewhere: scripts, styles and images come from this API
# (thumbnails as blob: URLs made from authenticated fetches).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self';"
        " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
        " form-action 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["moderation"])


@router.get(
    "/admin",
    response_class=FileResponse,
    include_in_schema=False,
    dependencies=[allow(Access.READ, page=True)],
)
async def admin_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "admin.html", media_type="text/html", headers=_PAGE_HEADERS)


async def login_page(request: Request, exc: Exception) -> Response:
    """401 on /admin: the same page (no data in it), whose script shows the login form."""
    assert isinstance(exc, LoginRequired)
    headers = {**(exc.headers or {}), **_PAGE_HEADERS}
    return FileResponse(
        STATIC_DIR / "admin.html", status_code=exc.status_code, media_type="text/html", headers=headers
    )


router.mount("/admin/static", StaticFiles(directory=STATIC_DIR), name="admin-static")
