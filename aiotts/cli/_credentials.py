"""Where the command line finds credentials: never in a flag value.

Order: ``--credentials-file FILE``; else ``ASPOSE_CLIENT_ID`` and ``ASPOSE_CLIENT_SECRET``;
else ``$AIOTTS_CREDENTIALS_FILE``; else ``~/.config/aiotts/credentials`` if it exists.
A credentials file holds either ``KEY=VALUE`` lines (``ASPOSE_CLIENT_ID=...``,
``ASPOSE_CLIENT_SECRET=...``; ``#`` starts a comment) or a JSON object with ``client_id``
and ``client_secret``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from aiotts._errors import UsageError

__all__ = ["Credentials", "find_credentials"]

DEFAULT_FILE = Path("~/.config/aiotts/credentials")


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)
    source: str
    warning: str | None = None


def _parse(path: Path) -> tuple[str | None, str | None]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"credentials file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"credentials file {path} must hold a JSON object")
        return data.get("client_id"), data.get("client_secret")
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return (
        values.get("ASPOSE_CLIENT_ID") or values.get("client_id"),
        values.get("ASPOSE_CLIENT_SECRET") or values.get("client_secret"),
    )


def _from_file(path: Path) -> Credentials:
    try:
        client_id, secret = _parse(path)
        mode = path.stat().st_mode
    except OSError as exc:
        raise UsageError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise UsageError(
            f"credentials file {path} must set ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET "
            "(or a JSON object with client_id and client_secret)"
        )
    warning = None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warning = f"credentials file {path} is readable by other users; chmod 600 {path}"
    return Credentials(client_id, secret, f"file {path}", warning)


def find_credentials(explicit_file: str | None) -> Credentials | None:
    """The credentials to use, or None when there are none anywhere."""
    if explicit_file:
        return _from_file(Path(explicit_file).expanduser())
    client_id = os.environ.get("ASPOSE_CLIENT_ID")
    secret = os.environ.get("ASPOSE_CLIENT_SECRET")
    if client_id and secret:
        return Credentials(client_id, secret, "environment")
    env_file = os.environ.get("AIOTTS_CREDENTIALS_FILE")
    if env_file:
        return _from_file(Path(env_file).expanduser())
    default = DEFAULT_FILE.expanduser()
    if default.is_file():
        return _from_file(default)
    return None
