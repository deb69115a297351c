"""Where chat history lives: a URL that names the backend, parsed once and never shown
with its password.

    sqlite:///relative/path.sqlite3    a file; relative to `base_dir` (the app file's folder)
    sqlite:////absolute/path.sqlite3   (four slashes: the path itself starts with /)
    postgresql://[user[:password]@]host[:port]/dbname[?param=value...]   (also postgres://)

PostgreSQL URLs go to libpq as written, so every libpq parameter works (`sslmode=`,
`options=-csearch_path%3Dmy_schema`, several hosts). Pure: no sockets, no files opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import InvalidHistoryStore

Backend = Literal["sqlite", "postgresql"]
REDACTED = "***"
_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):(?P<password>[^?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)")


@dataclass(frozen=True, slots=True)
class HistoryUrl:
    url: str = field(repr=False)
    """As written: it may hold a password, so it is never logged or shown."""
    backend: Backend
    path: Path | None = None
    """The SQLite file (None for PostgreSQL)."""

    @classmethod
    def parse(cls, url: str, *, base_dir: Path | None = None) -> HistoryUrl:
        """Check `url`; a relative SQLite path is taken from `base_dir` (else the working
        directory). Raises InvalidHistoryStore, with the URL redacted, when it cannot be used."""
        if (problem := url_problem(url)) is not None:
            raise InvalidHistoryStore(f"bad history URL {redact(url) if isinstance(url, str) else url!r}: {problem}")
        if url.startswith(_POSTGRES):
            return cls(url, "postgresql")
        path = Path(unquote(url[len(_SQLITE):]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return cls(f"{_SQLITE}{path}", "sqlite", path)

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by ***: safe to log and show."""
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """`text` (an error from a driver, say) with this URL's password taken out."""
        secrets = {s for written in passwords_in(self.url) for s in (written, unquote(written))}
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


def url_problem(url: object) -> str | None:
    """Why `url` is not a history URL (without repeating it), or None when it is one."""
    if not isinstance(url, str):
        return f"a history URL is a string, not {type(url).__name__}"
    if url.startswith(_POSTGRES):
        try:
            urlsplit(url)
        except ValueError as exc:
            return str(exc)
        return None
    if not url.startswith(_SQLITE):
        return "write sqlite:///PATH or postgresql://HOST/DATABASE"
    rest = url[len(_SQLITE):]
    if not rest or "?" in rest or "#" in rest:
        return "write sqlite:///PATH (a file; no query or fragment)"
    if Path(unquote(rest)).name in ("", ".", "..", ":memory:"):
        return "the SQLite path must name a file"
    return None


def passwords_in(url: str) -> list[str]:
    """The passwords a URL carries as written: in the user info and as `?password=`."""
    found = [m["password"] for m in _QUERY_PASSWORD.finditer(url)]
    if match := _USERINFO_PASSWORD.match(url):
        found.append(match["password"])
    return [p for p in found if p]


def redact(url: str) -> str:
    """`url` with its passwords replaced by ***. Textual, so that URLs which do not
    parse are redacted too."""
    url = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", url)
