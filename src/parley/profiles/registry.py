"""The profiles a server serves: the built-ins, replaced or added to by a TOML file.

The file is the source of truth (it can be kept in git and shared by replicas on one volume). The admin API
writes it atomically; every replica sees a change, from the API or an editor, on its next request (the file's
size and mtime are checked at most once a second). A file that no longer parses keeps the last good profiles
serving, and `error` says why.

    [profiles.helpdesk]
    description = "Internal IT helpdesk"
    system_prompt = "You help {{ company }} employees with IT questions."
    variables = { company = "ACME" }
    topic = "computers, accounts, printers, VPN and software"
    [profiles.helpdesk.params]
    temperature = 0.3
"""

from __future__ import annotations

import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from parley.profiles.builtin import BUILTIN
from parley.profiles.schema import Profile, check_name

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0


class ProfileError(ValueError):
    """A profile that cannot be stored, with a message for the client."""


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class Profiles:
    def __init__(
        self, path: Path, check_model: Callable[[str], None] | None = None, steps: Collection[str] | None = None
    ) -> None:
        self.path = path
        self.check_model = check_model  # raises for a model name that no engine serves
        self.steps = steps  # the post-processing steps there are (None: not checked)
        self.error: str | None = None
        self._lock = threading.Lock()
        self._file: dict[str, Profile] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._reload(force=True)

    # ---- reading --------------------------------------------------------------------------------------

    def get(self, name: str) -> Profile | None:
        self._reload()
        return self._file.get(name) or BUILTIN.get(name)

    def all(self) -> list[Profile]:
        self._reload()
        merged = {**BUILTIN, **self._file}
        return [merged[n] for n in sorted(merged)]

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < CHECK_EVERY_S:
            return
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if not force and stamp == self._stamp:
                return
            try:
                self._file = self._read()
                self.error = None
            except (OSError, tomllib.TOMLDecodeError, ProfileError) as exc:
                self.error = f"{self.path}: {exc}"
                log.error("profiles not reloaded, the last good ones keep serving: %s", self.error)
            self._stamp = stamp

    def _read(self) -> dict[str, Profile]:
        if not self.path.exists():
            return {}
        data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        out = {}
        for name, body in (data.get("profiles") or {}).items():
            out[name] = self.validate(name, body, check_model=False)
        return out

    # ---- writing --------------------------------------------------------------------------------------

    def validate(self, name: str, body: dict[str, Any], *, check_model: bool = True) -> Profile:
        try:
            check_name(name)
            if not isinstance(body, dict):
                raise ProfileError("a profile is a table (a JSON object)")
            body = {k: v for k, v in body.items() if k not in ("object", "builtin")}
            if body.get("name", name) != name:
                raise ProfileError(f"the body names profile {body['name']!r}, the URL {name!r}")
            profile = Profile.model_validate({**body, "name": name})
        except ValidationError as exc:
            raise ProfileError(f"profile {name!r}: {describe(exc)}") from exc
        except ValueError as exc:
            raise ProfileError(f"profile {name!r}: {exc}") from exc
        unknown = [s for s in profile.steps or [] if self.steps is not None and s not in self.steps]
        if unknown:
            there = ", ".join(self.steps or [])
            raise ProfileError(f"profile {name!r}: steps: unknown post-processing step(s) {', '.join(unknown)}; "
                               f"there are: {there}")  # fmt: skip
        if check_model and profile.model and self.check_model is not None:
            self.check_model(profile.model)
        return profile

    def put(self, name: str, body: dict[str, Any]) -> Profile:
        """Create or replace a profile; the file is rewritten atomically."""
        profile = self.validate(name, body)
        with self._lock:
            current = self._read_raw()
            current[name] = profile.model_dump(mode="json", exclude_none=True, exclude={"name"})
            self._write(current)
        self._reload(force=True)
        return profile

    def delete(self, name: str) -> bool:
        """Remove a profile from the file (a built-in of that name then serves again); False: not in it."""
        with self._lock:
            current = self._read_raw()
            if name not in current:
                return False
            del current[name]
            self._write(current)
        self._reload(force=True)
        return True

    def _read_raw(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            return dict(tomllib.loads(self.path.read_text(encoding="utf-8")).get("profiles") or {})
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{self.path} does not parse; fix it by hand first: {exc}") from exc

    def _write(self, profiles: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(tomli_w.dumps({"profiles": profiles}, multiline_strings=True), encoding="utf-8")
        tmp.replace(self.path)
