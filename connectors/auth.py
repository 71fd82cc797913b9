"""Who may post orders: a bearer token or an HMAC signature of the raw body.

Pure functions, so the rule is unit-tested without a server. The signature
covers the raw bytes as received (not a re-serialised body), so a proxy that
reformats JSON breaks it: that is the point of signing.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

SIGNATURE_HEADER = "X-Stockflow-Signature"


def sign(secret: str, body: bytes) -> str:
    """The header value a channel sends: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def refusal(headers: Mapping[str, str], body: bytes, token: str | None, hmac_secret: str | None) -> str | None:
    """None when the request may pass, else why not (safe to show the caller).

    With neither secret configured intake is open (the local demo). With
    either, one valid credential is enough, so a channel can move from a
    token to signatures without a flag day.
    """
    if not token and not hmac_secret:
        return None
    auth = headers.get("Authorization", "")
    sig = headers.get(SIGNATURE_HEADER, "")
    if token and auth.startswith("Bearer "):
        if hmac.compare_digest(auth[len("Bearer "):].strip().encode(), token.encode()):
            return None
        if not (hmac_secret and sig):
            return "invalid bearer token"
    if hmac_secret and sig:
        if hmac.compare_digest(sig.strip().encode(), sign(hmac_secret, body).encode()):
            return None
        return f"invalid {SIGNATURE_HEADER} signature"
    wanted = " or ".join(w for w, on in (("Authorization: Bearer <token>", token),
                                         (f"{SIGNATURE_HEADER}: sha256=<hex hmac of the body>", hmac_secret)) if on)
    return f"authentication required: {wanted}"
