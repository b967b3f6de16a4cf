"""`/v1/profiles`: list, read, create or replace, and delete use-case profiles (scope `admin`). A change is
written to the profiles file and takes effect on the next request, on every replica that shares the file."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from parley.errors import InvalidRequest, NotFound, ProfileNotFound
from parley.profiles import ProfileError, Profiles
from parley.server.auth import Access

router = APIRouter(prefix="/v1/profiles", tags=["Profiles"], dependencies=[Depends(Access("admin"))])


def _profiles(request: Request) -> Profiles:
    return request.app.state.profiles


@router.get("")
async def list_profiles(request: Request) -> dict[str, Any]:
    profiles = _profiles(request)
    found = await asyncio.to_thread(profiles.all)
    return {"object": "list", "data": [p.public() for p in found], "file": str(profiles.path),
            "error": profiles.error}  # fmt: skip


@router.get("/{name}")
async def get_profile(name: str, request: Request) -> dict[str, Any]:
    profile = await asyncio.to_thread(_profiles(request).get, name)
    if profile is None:
        raise ProfileNotFound(f"The profile `{name}` does not exist.", param="name")
    return profile.public()


@router.put("/{name}", responses={201: {"description": "Created (200: replaced)"}})
async def put_profile(name: str, request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
    """Create or replace a profile (the whole profile: fields left out take their defaults)."""
    profiles = _profiles(request)
    existed = profiles.get(name) is not None
    try:
        profile = await asyncio.to_thread(profiles.put, name, body)
    except ProfileError as exc:
        raise InvalidRequest(str(exc), param="profile") from exc
    return JSONResponse(profile.public(), status_code=200 if existed else 201)


@router.delete("/{name}")
async def delete_profile(name: str, request: Request) -> dict[str, Any]:
    """Delete a profile from the file. A built-in cannot be deleted; deleting a file profile that replaced
    one brings the built-in back."""
    profiles = _profiles(request)
    try:
        removed = await asyncio.to_thread(profiles.delete, name)
    except ProfileError as exc:
        raise InvalidRequest(str(exc), param="profile") from exc
    if not removed:
        if profiles.get(name) is not None:
            raise InvalidRequest(f"`{name}` is a built-in profile; replace it with PUT instead.", param="name")
        raise NotFound(f"The profile `{name}` does not exist.", param="name")
    restored = profiles.get(name)
    return {"id": name, "object": "profile", "deleted": True, "builtin_restored": restored is not None}
