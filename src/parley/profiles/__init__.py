"""Use-case profiles (docs/profiles.md): built-ins and a TOML file, editable through `/v1/profiles`."""

from parley.profiles.registry import ProfileError, Profiles
from parley.profiles.schema import FORMATS, Profile

__all__ = ["FORMATS", "Profile", "ProfileError", "Profiles"]
