"""Mosquitto accounts for one org: the password file and the ACL file that hold every
account to its own topics.

Two kinds of account:
- a **server account** (the Streamlit server, one per deployment): it opens the device
  connections of many users, so it may read and write every topic of its org;
- a **user account** (a bot, an agent, a direct mqtt.js client) may read the whole org
  but write only topics where its own user id is the user level, its processes' leases
  (`lease/ORG/USER/+`) included. A server's leases are `lease/ORG/SERVER/+`, so no user
  id may equal a server account's name.

Why explicit `user` blocks and not `pattern ... %u`: Mosquitto substitutes %u only as a
whole topic level, so the username would have to be the bare user id. Then two orgs on
one broker could not both have an `ana`, and nothing in the username would say which
org an account belongs to. The generator therefore names user accounts `USER@ORG`
(`@` is outside the id alphabet, so the name is unambiguous) and writes each account's
rules out literally. The price is one block per user, regenerated when users change.

The sync topic `sync/{org}/{observer-id}` (an observer's end-of-snapshot echo to itself)
is readable and writable by every account that watches. Its markers are random and
remembered by the observer that sent them, so another account writing there changes
nothing; it can only make that observer read a few bytes.

Passwords are hashed the way `mosquitto_passwd` does by default (Mosquitto 2.0's
`$7$`: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt), so no Mosquitto tool is
needed to generate them. Pure apart from `write_bundle`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .ids import ID_PATTERN, check_id
from .topics import ROOM_KINDS, TopicScheme

Access = Literal["read", "write", "readwrite"]
PBKDF2_ITERATIONS = 101
"""Mosquitto 2.0's default for `$7$` hashes (mosquitto_passwd -H sha512-pbkdf2)."""
_SALT_BYTES = 12
_DEVICE_KINDS = ("typing", "cursor")
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,130}$")


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    topic: str


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    rules: tuple[Rule, ...]
    user: str | None = None
    """The user id a user account speaks for; None for a server account."""


def user_account_name(user: str, org: str) -> str:
    """The broker username of `user`'s account in `org`: `USER@ORG`."""
    return f"{check_id(user, kind='user')}@{check_id(org, kind='org')}"


def _org_kinds() -> tuple[str, ...]:
    return ("presence", "lease", *ROOM_KINDS)


def server_account(name: str, *, org: str, scheme: TopicScheme) -> Account:
    """Everything of the org, both ways: the server publishes for all its users."""
    if not ID_PATTERN.fullmatch(name):
        raise ValueError(f"invalid server account name {name!r}: use 1-64 characters of A-Z a-z 0-9 _ . -")
    check_id(org, kind="org")
    p = scheme.prefix
    rules = [Rule("readwrite", f"{p}{kind}/{org}/#") for kind in _org_kinds()]
    rules.append(Rule("readwrite", f"{p}sync/{org}/+"))
    return Account(username=name, rules=tuple(rules))


def user_account(user: str, *, org: str, scheme: TopicScheme) -> Account:
    """Read the org; write only where `user` is the user level."""
    username = user_account_name(user, org)
    p = scheme.prefix
    rules = [Rule("read", f"{p}{kind}/{org}/#") for kind in _org_kinds()]
    rules += [Rule("write", f"{p}presence/{org}/{user}"), Rule("write", f"{p}presence/{org}/{user}/+")]
    rules.append(Rule("write", f"{p}lease/{org}/{user}/+"))  # the leases of its own processes (leases.py)
    for kind in ROOM_KINDS:
        tail = f"{user}/+" if kind in _DEVICE_KINDS else user
        rules.append(Rule("write", f"{p}{kind}/{org}/+/{tail}"))
    rules.append(Rule("readwrite", f"{p}sync/{org}/+"))
    return Account(username=username, rules=tuple(rules), user=user)


def accounts_for(*, org: str, server_accounts: Iterable[str], users: Iterable[str], topic_prefix: str = "") -> list[Account]:
    """The server accounts, then one account per user, in the order given (duplicates once)."""
    scheme = TopicScheme(prefix=topic_prefix)
    found: dict[str, Account] = {}
    for account in [*(server_account(n, org=org, scheme=scheme) for n in server_accounts), *(user_account(u, org=org, scheme=scheme) for u in users)]:
        held = found.get(account.username)
        if held is not None and held != account:
            raise ValueError(f"account name {account.username!r} is given twice with different rights")
        found[account.username] = account
    if not any(a.user is None for a in found.values()):
        raise ValueError("at least one server account is needed")
    servers = {a.username for a in found.values() if a.user is None}
    if clash := sorted(servers & {a.user for a in found.values() if a.user is not None}):
        # a server's leases are lease/ORG/SERVER/...: a user of that id could renew them
        raise ValueError(f"user id {clash[0]!r} is also a server account's name: rename one of them")
    return list(found.values())


def acl_text(accounts: Iterable[Account], *, org: str) -> str:
    """Mosquitto 2.0 `acl_file` text: a `user` block per account, no anonymous rights."""
    lines = [
        f"# Mosquitto ACL for org {org!r}, generated by `python -m components acl`.",
        "# Server accounts read and write the whole org (they publish for many users).",
        "# User accounts (USER@ORG) read the org and write only where their user id is the",
        "# user level. sync/ is each observer's end-of-snapshot echo: every watcher needs it.",
        "# No rule applies to anonymous clients: keep allow_anonymous false.",
    ]
    for account in accounts:
        kind = "server account" if account.user is None else f"user account of {account.user!r}"
        lines += ["", f"# {kind}", f"user {account.username}"]
        lines += [f"topic {rule.access} {rule.topic}" for rule in account.rules]
    return "\n".join(lines) + "\n"


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, base64 parts)."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_file_text(passwords: Mapping[str, str]) -> str:
    """`username:hash` lines for Mosquitto's `password_file`."""
    for username in passwords:
        if not _ACCOUNT_NAME.fullmatch(username):
            raise ValueError(f"invalid account name {username!r}")
    return "".join(f"{username}:{password_hash(pw)}\n" for username, pw in passwords.items())


def read_credentials(text: str) -> dict[str, str]:
    """`username:password` lines (the credentials file written by `write_bundle`)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            username, sep, password = line.partition(":")
            if sep and password:
                found[username] = password
    return found


@dataclass(frozen=True, slots=True)
class Bundle:
    acl: Path
    passwd: Path
    credentials: Path
    created: tuple[str, ...]
    """Accounts that got a new password (the others kept theirs)."""


def write_bundle(out: Path, *, org: str, accounts: list[Account]) -> Bundle:
    """Write `acl`, `passwd` and `credentials` (plain passwords, mode 0600) under `out`.

    Accounts already in an existing `credentials` file keep their password, so adding a
    user does not log everybody else out."""
    out.mkdir(parents=True, exist_ok=True)
    credentials_path = out / "credentials"
    known = read_credentials(credentials_path.read_text()) if credentials_path.exists() else {}
    passwords = {a.username: known.get(a.username) or secrets.token_urlsafe(24) for a in accounts}
    created = tuple(name for name in passwords if name not in known)
    _write_private(credentials_path, "# username:password, one per account; keep this file secret\n" + "".join(f"{u}:{p}\n" for u, p in passwords.items()))
    _write_private(out / "passwd", password_file_text(passwords))
    (out / "acl").write_text(acl_text(accounts, org=org))
    return Bundle(acl=out / "acl", passwd=out / "passwd", credentials=credentials_path, created=created)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with wider rights
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
