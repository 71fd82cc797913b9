"""Who may post orders: pure checks of the intake authentication rule."""
from __future__ import annotations

from stockflow.connectors.auth import SIGNATURE_HEADER, refusal, sign

BODY = b'{"type":"create","order_id":"A-1"}'


def test_open_when_nothing_is_configured():
    assert refusal({}, BODY, None, None) is None


def test_bearer_token_must_match_exactly():
    assert refusal({"Authorization": "Bearer tok-123"}, BODY, "tok-123", None) is None
    assert refusal({"Authorization": "Bearer tok-124"}, BODY, "tok-123", None) == "invalid bearer token"
    assert "authentication required" in refusal({}, BODY, "tok-123", None)
    assert "authentication required" in refusal({"Authorization": "Basic dTpw"}, BODY, "tok-123", None)


def test_signature_covers_the_raw_body():
    good = sign("s3cret", BODY)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert refusal({SIGNATURE_HEADER: good}, BODY, None, "s3cret") is None
    # the same JSON with one more space is another body: refused
    assert refusal({SIGNATURE_HEADER: good}, BODY.replace(b":", b": ", 1), None, "s3cret") is not None
    assert refusal({SIGNATURE_HEADER: sign("other", BODY)}, BODY, None, "s3cret") is not None


def test_either_credential_passes_when_both_are_configured():
    sig = sign("s3cret", BODY)
    assert refusal({"Authorization": "Bearer tok"}, BODY, "tok", "s3cret") is None
    assert refusal({SIGNATURE_HEADER: sig}, BODY, "tok", "s3cret") is None
    # a wrong token does not hide a good signature
    assert refusal({"Authorization": "Bearer bad", SIGNATURE_HEADER: sig}, BODY, "tok", "s3cret") is None
    why = refusal({}, BODY, "tok", "s3cret")
    assert "Bearer" in why and SIGNATURE_HEADER in why


def test_refusals_never_echo_the_secret():
    for headers in ({}, {"Authorization": "Bearer nope"}, {SIGNATURE_HEADER: "sha256=00"}):
        why = refusal(headers, BODY, "tok-very-secret", "hmac-very-secret")
        assert "very-secret" not in why
