"""Unit tests of the Mosquitto account generator (no broker: tests/test_broker_access.py
holds the rules against a real one)."""

from __future__ import annotations

import base64

import pytest

from components import InvalidId
from components.broker_acl import accounts_for, acl_text, password_hash, read_credentials, user_account_name, write_bundle
from components.cli import main

# made with `mosquitto_passwd -c -b FILE ana@acme secret` (Mosquitto 2.0.11)
MOSQUITTO_PASSWD_LINE = "ana@acme:$7$101$3fWZs7KvNTqyxeEm$2ywtGeZ05BYoa/QdjM2ZPr4Oo3EA9ZXumc7FAqPJq5XRUd313Q6nG+FlGKsy5wG3I+5DotbbbXE5BdZiqa+1OA=="


def test_password_hash_is_mosquitto_passwd_format() -> None:
    _, expected = MOSQUITTO_PASSWD_LINE.split(":", 1)
    salt = base64.b64decode(expected.split("$")[3])
    assert password_hash("secret", salt=salt) == expected
    assert password_hash("secret") != password_hash("secret")  # a fresh salt each time


def test_user_accounts_write_only_their_own_user_level() -> None:
    accounts = accounts_for(org="acme", server_accounts=["streamlit"], users=["ana"], topic_prefix="t1/")
    server, ana = accounts
    assert server.user is None and {r.access for r in server.rules} == {"readwrite"}
    writes = sorted(r.topic for r in ana.rules if r.access != "read")
    assert writes == sorted([
        "t1/chat/acme/+/ana",
        "t1/cursor/acme/+/ana/+",
        "t1/lease/acme/ana/+",
        "t1/presence/acme/ana",
        "t1/presence/acme/ana/+",
        "t1/reactions/acme/+/ana",
        "t1/receipts/acme/+/ana",
        "t1/sync/acme/+",
        "t1/typing/acme/+/ana/+",
    ])
    for rule in ana.rules:
        levels = rule.topic.split("/")
        if rule.access != "read" and levels[1] != "sync":
            assert "ana" in levels and "#" not in levels


def test_acl_text_has_one_block_per_account_and_nothing_for_anonymous() -> None:
    text = acl_text(accounts_for(org="acme", server_accounts=["streamlit"], users=["ana", "ben", "ana"]), org="acme")
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[0] == "user streamlit"  # no topic line before the first user block
    assert [line for line in body if line.startswith("user ")] == ["user streamlit", "user ana@acme", "user ben@acme"]
    assert "topic write presence/acme/ben/+" in text.split("user ben@acme")[1]


@pytest.mark.parametrize("bad", ["#", "+", "a/b", "", "ana@x", "sp ace"])
def test_ids_that_could_be_wildcards_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        accounts_for(org="acme", server_accounts=["s"], users=[bad])
    with pytest.raises(InvalidId):
        user_account_name("ana", bad)
    with pytest.raises(ValueError, match="server account"):
        accounts_for(org="acme", server_accounts=[bad], users=[])


def test_no_user_may_share_a_server_accounts_name() -> None:
    """Leases are owned by the account's user level: user `streamlit` could renew the
    leases of server account `streamlit` and keep its ghosts alive."""
    with pytest.raises(ValueError, match="streamlit"):
        accounts_for(org="acme", server_accounts=["streamlit"], users=["ana", "streamlit"])


def test_a_server_account_is_required() -> None:
    with pytest.raises(ValueError, match="server account"):
        accounts_for(org="acme", server_accounts=[], users=["ana"])


def test_bundle_keeps_existing_passwords_and_is_private(tmp_path) -> None:
    first = write_bundle(tmp_path, org="acme", accounts=accounts_for(org="acme", server_accounts=["s"], users=["ana"]))
    before = read_credentials(first.credentials.read_text())
    second = write_bundle(tmp_path, org="acme", accounts=accounts_for(org="acme", server_accounts=["s"], users=["ana", "ben"]))
    after = read_credentials(second.credentials.read_text())
    assert second.created == ("ben@acme",)
    assert {k: after[k] for k in before} == before
    assert [line.split(":")[0] for line in second.passwd.read_text().splitlines()] == ["s", "ana@acme", "ben@acme"]
    assert first.credentials.stat().st_mode & 0o777 == 0o600
    assert second.passwd.stat().st_mode & 0o777 == 0o600


def test_acl_command_refuses_a_wildcard_user_with_one_line(tmp_path, capsys) -> None:
    assert main(["acl", "--org", "acme", "--server-account", "s", "--user", "#", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "invalid user id '#'" in err
    assert not (tmp_path / "acl").exists()
