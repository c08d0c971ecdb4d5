"""Who may use the console: scrypt passwords, sign-in only with a cluster key, CSRF tokens and
origins on every change, loopback Host names, cookie flags, no open redirect."""

from __future__ import annotations

import stat

import pytest

from titan_actors.errors import ConfigError
from titan_web.passwords import (
    hash_password,
    read_password_hash,
    verify_password,
    write_password,
)

ADMIN = bytes(range(32))


def test_scrypt_hashes_are_salted_and_checked_in_full():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")  # a random salt each time
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct hors", first)
    assert not verify_password("correct horse", "scrypt$bad")
    assert not verify_password("correct horse", "md5$1$1$1$00$00")


def test_the_password_file_is_private_and_short_passwords_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 8"):
        write_password(tmp_path, "short")
    assert read_password_hash(tmp_path) is None
    path = write_password(tmp_path, "long enough")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify_password("long enough", read_password_hash(tmp_path))


def test_without_a_key_no_sign_in_is_asked(make_console):
    browser, _, _ = make_console(auth=False)
    assert browser.get("/").status_code == 200
    assert browser.get("/login").status_code == 302


def test_with_a_key_every_page_needs_a_sign_in(make_console, tmp_path):
    browser, _, _ = make_console(auth=True, admin=ADMIN)
    write_password(tmp_path, "open sesame")
    page = browser.get("/approvals", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.location.startswith("/login?next=/approvals")
    assert browser.get("/api/runs/r1/graph").status_code == 401
    assert browser.get("/events").status_code == 401
    assert browser.get("/livez").status_code == 200  # probes and the sign-in page stay open
    login = browser.get("/login")
    assert login.status_code == 200 and b'name="password"' in login.data

    wrong = browser.post("/login", {"password": "sesame open", "next": "/approvals"})
    assert wrong.status_code == 401 and b"not right" in wrong.data
    right = browser.post("/login", {"password": "open sesame", "next": "/approvals"})
    assert right.status_code == 302 and right.location == "/approvals"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert browser.get("/approvals").status_code == 200

    browser.post("/logout")
    assert browser.get("/approvals").status_code == 302


def test_the_admin_key_signs_in_and_opens_metrics_to_a_scraper(make_console):
    browser, _, _ = make_console(auth=True, admin=ADMIN)
    assert browser.get("/metrics").status_code == 401
    scraped = browser.get("/metrics", headers={"Authorization": f"Bearer {ADMIN.hex()}"})
    assert scraped.status_code == 200 and b"titan_master_up 1" in scraped.data
    line = f"titan-role-key:admin:{ADMIN.hex()}"  # the whole role key file line works too
    assert browser.post("/login", {"password": line}).status_code == 302
    assert browser.get("/").status_code == 200


def test_repeated_failed_sign_ins_are_slowed_down(make_console, tmp_path):
    browser, _, _ = make_console(auth=True)
    write_password(tmp_path, "open sesame")
    codes = [browser.post("/login", {"password": f"guess {n}"}).status_code for n in range(6)]
    assert codes == [401] * 5 + [429]
    assert browser.post("/login", {"password": "open sesame"}).status_code == 429


@pytest.mark.parametrize("auth", [False, True])
def test_a_change_without_the_csrf_token_or_from_elsewhere_is_refused(make_console, auth):
    browser, master, _ = make_console(auth=auth, admin=ADMIN)
    if auth:
        assert browser.post("/login", {"password": ADMIN.hex()}).status_code == 302
    decide = {"gate": "r1/gate", "decision": "approve"}
    no_token = browser.post("/approvals/decide", decide, token=False)
    assert no_token.status_code == 403 and b"CSRF token" in no_token.data
    elsewhere = browser.post("/approvals/decide", decide, origin="http://evil.example")
    assert elsewhere.status_code == 403 and b"evil.example" in elsewhere.data
    nameless = browser.post("/approvals/decide", decide, origin=None)
    assert nameless.status_code == 403 and b"Origin or Referer" in nameless.data
    referred = browser.post("/approvals/decide", decide, origin=None,
                            headers={"Referer": "http://localhost/approvals"})
    assert referred.status_code == 303
    assert master.calls == [("decide", "r1/gate", True, "")]


def test_the_sign_in_form_is_protected_too(make_console, tmp_path):
    browser, _, _ = make_console(auth=True)
    write_password(tmp_path, "open sesame")
    assert browser.post("/login", {"password": "open sesame"}, token=False).status_code == 403


def test_only_loopback_host_names_are_answered_on_loopback(make_console):
    browser, _, _ = make_console()
    rebound = browser.get("/", headers={"Host": "attacker.example:5000"})
    assert rebound.status_code == 400 and b"loopback" in rebound.data
    for host in ("127.0.0.1:5000", "localhost", "[::1]:5000"):
        assert browser.get("/livez", headers={"Host": host}).status_code == 200


def test_after_sign_in_only_local_paths_are_followed(make_console):
    browser, _, _ = make_console(auth=True, admin=ADMIN)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = browser.post("/login", {"password": ADMIN.hex(), "next": target})
        assert answer.location == "/", target


def test_every_answer_forbids_framing_sniffing_and_foreign_scripts(make_console):
    browser, _, _ = make_console()
    headers = browser.get("/").headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_a_new_password_signs_out_the_sessions_of_the_old_one(make_console, tmp_path):
    browser, _, _ = make_console(auth=True, admin=ADMIN)
    write_password(tmp_path, "open sesame")
    assert browser.post("/login", {"password": "open sesame"}).status_code == 302
    assert browser.get("/approvals").status_code == 200

    write_password(tmp_path, "a brand new one")  # titanctl passwd

    assert browser.get("/approvals").status_code == 302  # back to the sign-in page
    admin = make_console(auth=True, admin=ADMIN)[0]
    assert admin.post("/login", {"password": ADMIN.hex()}).status_code == 302
    write_password(tmp_path, "and another")
    assert admin.get("/approvals").status_code == 200  # the admin key's session stays
