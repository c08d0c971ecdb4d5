"""Secrets are compared in constant time: no ``==`` / ``!=`` (nor ``in``) touches one.

A scan of the source (``src``, ``web``, ``sdk``) with ``ast``: a comparison is flagged when one
side names a secret. Naming rules, to keep false alarms out without letting a secret through:

* an identifier (a name, an attribute, a called function, a subscripted value, a constant
  string key such as ``session["csrf"]``) split at ``_`` holds one of :data:`SECRET_WORDS`, or
  ``key`` together with one of :data:`KEY_KINDS` (``role_key``, ``session_key``, ``api_key``;
  a bare ``key`` is a dict key throughout this code base);
* ALL_CAPS names are constants written in the source, hence public (``_TOKEN_PREFIX``);
* a call is named by its function only (``len(token)`` is a length, ``hasher.hexdigest()`` a
  content hash: neither is a secret; an HMAC is ``_mac(...)`` or ``hmac.new(...).digest()``).

Comparing with ``hmac.compare_digest`` is not a comparison node, so it is never flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET_WORDS = frozenset({"token", "tokens", "proof", "secret", "secrets", "password",
                          "passwords", "passwd", "csrf", "mac", "hmac", "cookie",
                          "credential", "credentials", "stamp"})
KEY_KINDS = frozenset({"cluster", "role", "session", "admin", "api", "private", "signing",
                       "job", "seal", "direction"})


def _identifiers(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr, *_identifiers(node.value)]
    if isinstance(node, ast.Call):
        keys = [a.value for a in node.args[:1] if isinstance(a, ast.Constant)
                and isinstance(a.value, str) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "pop", "getenv", "setdefault")]
        return [*_identifiers(node.func), *keys]
    if isinstance(node, ast.Subscript):
        key = node.slice
        named = [key.value] if isinstance(key, ast.Constant) and isinstance(key.value, str) \
            else []
        return [*_identifiers(node.value), *named]
    return []


def _is_secret(identifier: str) -> bool:
    if identifier.isupper():
        return False
    words = {w for w in identifier.lower().replace("-", "_").split("_") if w}
    return bool(words & SECRET_WORDS) or ("key" in words and bool(words & KEY_KINDS)) \
        or identifier == "key_for"


def variable_time_comparisons(source: str, where: str = "<source>") -> list[str]:
    """``where:line: code`` of each comparison in ``source`` that touches a secret."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
            # ``in``: a lookup among secrets is a hash, then an ``==``
            if not isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                continue
            if any(_is_secret(i) for side in (left, right) for i in _identifiers(side)):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("code", [
    "ok = sent == token",
    "ok = proof.proof != expected_mac",
    "ok = request.form['csrf_token'] == session.get('csrf')",
    "ok = via == _password_stamp()",
    "ok = hmac.new(k, m, 'sha256').digest() == tag",
    "ok = self._role_secret == other",
    "ok = header.value in valid_tokens",
    "ok = a == b == session_key",
])
def test_the_scan_finds_a_planted_comparison(code):
    assert variable_time_comparisons(code)


@pytest.mark.parametrize("code", [
    "ok = hmac.compare_digest(sent.encode(), token.encode())",
    "ok = len(hello.nonce) != NONCE_SIZE",
    "ok = parts[0] != _TOKEN_PREFIX",
    "ok = hasher.hexdigest() != info.digest",
    "ok = key == 'script'",
    "ok = attempt[:2] == key",
])
def test_the_scan_leaves_public_values_alone(code):
    assert variable_time_comparisons(code) == []


def test_no_secret_is_compared_in_variable_time():
    found = []
    for folder in ("src", "web", "sdk"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += variable_time_comparisons(path.read_text(), str(path.relative_to(ROOT)))
    assert found == [], "use hmac.compare_digest:\n" + "\n".join(found)
