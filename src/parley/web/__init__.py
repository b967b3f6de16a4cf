"""The browser pages: the chat page at `/` and the dashboard at `/dashboard`, with every file they load.

The pages are static files (no build step, no CDN): `static/chat`, `static/dashboard`, and the third-party
libraries they use in `static/vendor` (see `static/vendor/VENDOR.md` for versions, licences and how to refresh
them). They hold no data: everything comes from the API with the key the user enters in the page.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
