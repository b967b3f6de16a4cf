"""The chat page (`/`), the dashboard (`/dashboard`) and their static files (`/static/...`).

The pages are public shells: they carry no data and ask the API for everything with the key the user enters,
so the API's scopes guard the data (the dashboard's needs `admin`). Served with a strict Content-Security-Policy:
scripts, styles, fonts and requests only from this server.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from parley.web import STATIC

router = APIRouter(tags=["Web"], include_in_schema=False)

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # KaTeX and highlight.js set inline styles
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
])
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/")
async def chat_page() -> FileResponse:
    return _page("chat")


@router.get("/dashboard")
async def dashboard_page() -> FileResponse:
    return _page("dashboard")


static_files = StaticFiles(directory=STATIC)
