"""Secrets never reach the terminal or a JSON document: the one list of what a secret is, and the
masking that utils/output.py applies to every line it writes.

A secret can surface where no one formats it: an exception's text (an HTTP library quoting a
header value that holds AWS_SESSION_TOKEN), a traceback, a botocore message. So rather than
trusting every error path, the values themselves are known (secret-named environment variables,
the resolved credentials) and replaced wherever they appear. Imports nothing: it sits on every
script's fail-fast path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MASK = "****"
SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "ACCESS_KEY", "API_KEY", "CREDENTIAL",
                  "PRIVATE")
# Shorter values are not masked inside other text: a fake key like "testing" would blank out
# ordinary words. Real AWS key IDs are 20 characters, secret keys 40, session tokens hundreds.
MIN_MASKED_LENGTH = 16

_known: set[str] = set()


def is_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def remember_secrets(values: Iterable[str | None]) -> None:
    """Mask these values (and their stripped forms) in everything printed from now on."""
    for value in values:
        for form in (value, (value or "").strip()):
            if form and len(form) >= MIN_MASKED_LENGTH:
                _known.add(form)


def remember_secret_variables(*environments: Mapping[str, str]) -> None:
    for env in environments:
        remember_secrets(value for name, value in env.items() if is_secret(name))


def redact(text: str) -> str:
    if not _known:
        return text
    for secret in sorted(_known, key=len, reverse=True):  # a token before its own prefix
        if secret in text:
            text = text.replace(secret, MASK)
        escaped = secret.encode("unicode_escape").decode("ascii")  # as repr() shows it
        if escaped != secret and escaped in text:
            text = text.replace(escaped, MASK)
    return text


def forget_secrets() -> None:
    """Start again with nothing known (once per run, when the output is configured)."""
    _known.clear()
