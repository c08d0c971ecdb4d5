"""Who may use the console, and proof that a change was meant.

* Host check: when the console listens on loopback only, a request must name a loopback host
  (``localhost``, ``127.x``, ``[::1]``), so a web page that rebinds its own DNS name to
  127.0.0.1 cannot read the console.
* Login: with a cluster key configured, every page but ``/login``, ``/livez``, ``/readyz`` and
  the static files needs a signed-in session. The password is checked against the scrypt hash
  that ``titanctl passwd`` stored (``passwords.py``); the admin key's secret (the hex of
  ``titanctl key derive KEY OUT --role admin``) is accepted too. ``/metrics`` also takes that
  secret as ``Authorization: Bearer HEX`` (for a scraper). Without a key no login is asked: the
  console then refuses to listen off loopback (``web_main``).
* CSRF: every state-changing request (anything but GET, HEAD, OPTIONS) carries the session's
  token (form field ``csrf_token`` or header ``X-CSRF-Token``) and comes from this origin
  (``Origin``, or ``Referer`` when a browser sends no Origin); otherwise 403, saying which.
* The session is Flask's signed cookie: HttpOnly, SameSite=Strict, 12 h.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from titan_actors.config_security import is_loopback_host
from titan_actors.offload import run_in_thread

from .passwords import read_password_hash, verify_password

bp = Blueprint("auth", __name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPEN_ENDPOINTS = frozenset({"auth.login", "ops.livez", "ops.readyz", "static"})
_FAILURES_ALLOWED = 5       # failed logins from one address ...
_FAILURE_WINDOW = 60.0      # ... within this many seconds; then refused until it passes
_MAX_TRACKED = 1000


def init_auth(app: Flask, options) -> None:
    """Configure the session and register the checks and the login pages."""
    app.secret_key = options.session_secret
    app.config.update(SESSION_COOKIE_NAME="titan_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=False,
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=12))
    app.extensions["titan_failures"] = {}
    app.before_request(_guard)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(bp)


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def signed_in() -> bool:
    """A session that signed in, with a password still the current one (``titanctl passwd``
    signs out every session that used the old password)."""
    if not _options().auth_required:
        return True
    via = session.get("via", "")
    stamp = _password_stamp()
    return bool(session.get("user")) and (
        via == "admin" or (bool(stamp) and hmac.compare_digest(str(via).encode(), stamp.encode())))


def _password_stamp() -> str:
    """A mark of the current password hash (its hash), "" when none is set."""
    stored = read_password_hash(_options().web_dir)
    return "pw:" + hashlib.sha256(stored.encode()).hexdigest()[:32] if stored else ""


def _options():
    return current_app.extensions["titan_console"].options


def _guard():
    options = _options()
    if options.loopback_only and not is_loopback_host(_host_name(request.host)):
        abort(400, description=f"this console answers only to a loopback host name "
                               f"(localhost, 127.0.0.1); this request named "
                               f"{request.host!r}")
    if request.method not in _SAFE_METHODS:
        _check_origin()
        _check_csrf()
    if request.endpoint in _OPEN_ENDPOINTS or signed_in():
        return None
    if request.endpoint == "ops.metrics" and _bearer_ok():
        return None
    if request.method == "GET" and not request.headers.get("HX-Request") \
            and not _is_data_path(request.path):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(401, description="sign in first (at /login)")


def _is_data_path(path: str) -> bool:
    """Endpoints read by scripts and scrapers (answered 401, not sent to the sign-in page)."""
    return path.startswith(("/api/", "/events", "/metrics")) or path.endswith(("/stream",
                                                                              ".txt"))


def _host_name(host: str) -> str:
    """The name in a Host header, without port or brackets ("" when it has none)."""
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""


def _check_origin() -> None:
    expected = request.host_url.rstrip("/")
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin != expected:
            abort(403, description=f"refused: this request came from {origin!r}, not from "
                                   f"this console ({expected})")
        return
    referer = request.headers.get("Referer")
    if referer is None:
        abort(403, description="refused: the request names no Origin or Referer, so it "
                               "cannot be told apart from a forged one")
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}" != expected:
        abort(403, description=f"refused: this request came from a page of "
                               f"{parts.scheme}://{parts.netloc}, not of this console")


def _check_csrf() -> None:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    token = session.get("csrf") or ""
    if not token or not hmac.compare_digest(sent.encode(), token.encode()):
        abort(403, description="refused: the form's CSRF token is missing or stale; reload "
                               "the page and try again")


def _bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and _is_admin_secret(value.strip())


def _is_admin_secret(text: str) -> bool:
    secret = _options().admin_secret
    if secret is None or not text:
        return False
    text = text.strip().rpartition(":")[2]  # the whole role key file line works too
    return hmac.compare_digest(text.lower().encode(), secret.hex().encode())


def _headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # scripts only from our own files (no inline script, no eval); styles may be set by the
    # graph library
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'")
    return response


# -- the login page ----------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    options = _options()
    target = local_path(request.values.get("next", "/"))
    if not options.auth_required:
        return redirect(target)
    error = ""
    status = 200
    if request.method == "POST":
        address = request.remote_addr or "?"
        if _too_many_failures(address):
            error, status = "Too many failed sign-ins; wait a minute and try again.", 429
        elif via := _password_ok(request.form.get("password", "")):
            session.clear()
            session.permanent = True
            session["user"] = "admin"
            session["via"] = via
            csrf_token()
            return redirect(target)
        else:
            _failed(address)
            error, status = "That password is not right.", 401
    has_password = read_password_hash(options.web_dir) is not None
    return render_template("login.html", error=error, next=target,
                           has_password=has_password), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


def _password_ok(password: str) -> str:
    """How ``password`` signs in: "admin" (the admin key), the password's stamp, or ""."""
    if not password:
        return ""
    if _is_admin_secret(password):
        return "admin"
    stored = read_password_hash(_options().web_dir)
    # scrypt takes ~50-100 ms and 32 MiB: in the threadpool, so the console's loop goes on
    if stored is not None and run_in_thread(verify_password, password, stored):
        return _password_stamp()
    return ""


def local_path(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect)."""
    # browsers drop tabs and newlines from URLs ("/\t/evil" becomes "//evil"): refuse any
    # control character, then anything with a scheme or a host
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _too_many_failures(address: str) -> bool:
    failures = current_app.extensions["titan_failures"]
    count, since = failures.get(address, (0, 0.0))
    if time.monotonic() - since > _FAILURE_WINDOW:
        failures.pop(address, None)
        return False
    return count >= _FAILURES_ALLOWED


def _failed(address: str) -> None:
    failures = current_app.extensions["titan_failures"]
    if len(failures) >= _MAX_TRACKED:
        failures.clear()
    count, since = failures.get(address, (0, time.monotonic()))
    failures[address] = (count + 1, since)
