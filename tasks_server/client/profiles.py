"""Saved credentials: ``$XDG_CONFIG_HOME/tasks-server/profiles.json`` (0600, its folder 0700).

The file maps a profile name to ``{"url", "ownerId", "key"}``. It is written to a temp file
that `tempfile.mkstemp` creates 0600 and renamed over the old one, so a key is never readable
by others, not even for a moment, and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    url: str
    owner_id: str
    key: str


class ProfileError(Exception):
    """The profile file is unreadable or malformed."""


def profiles_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tasks-server" / "profiles.json"


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path} is not a JSON object of profiles")
    return data


def load(name: str, path: Path | None = None) -> Profile | None:
    path = path or profiles_path()
    entry = _read(path).get(name)
    if entry is None:
        return None
    try:
        return Profile(url=entry["url"], owner_id=entry["ownerId"], key=entry["key"])
    except (KeyError, TypeError):
        raise ProfileError(f"profile {name!r} in {path} lacks url, ownerId or key") from None


def save(name: str, profile: Profile, path: Path | None = None) -> Path:
    path = path or profiles_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    profiles = _read(path)
    profiles[name] = {"url": profile.url, "ownerId": profile.owner_id, "key": profile.key}
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".profiles-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(profiles, file, indent=2)
            file.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
