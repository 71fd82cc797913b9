"""Kafka security settings reach every client, and secrets never print."""
from __future__ import annotations

import ssl

import faust
import pytest
from pydantic import ValidationError

from stockflow.app import _faust_credentials, kafka_client_kwargs
from stockflow.settings import Settings


def test_plaintext_passes_no_tls_or_sasl():
    s = Settings(_env_file=None)
    assert s.kafka_security() == {"security_protocol": "PLAINTEXT"}
    assert _faust_credentials(s) is None


def test_sasl_ssl_reaches_python_clients_and_faust():
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="svc", kafka_sasl_password="s3cret-pw")
    kw = kafka_client_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL"
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("SCRAM-SHA-512", "svc", "s3cret-pw")
    creds = _faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.ssl_context is not None and creds.password == "s3cret-pw"


def test_ssl_only_gives_faust_ssl_credentials_with_the_ca(tmp_path):
    s = Settings(kafka_security_protocol="SSL")
    creds = _faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials) and isinstance(creds.context, ssl.SSLContext)
    missing = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "no-such-ca.pem")
    with pytest.raises(OSError):
        missing.kafka_ssl_context()


def test_unknown_protocol_or_mechanism_is_refused():
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError):
        Settings(kafka_sasl_mechanism="GSSAPI-ish")


def test_secrets_never_appear_in_printed_settings():
    s = Settings(kafka_sasl_mechanism="PLAIN", kafka_sasl_password="hunter2-pw",
                 shopify_webhook_secret="shpss_topsecret", kafka_ssl_key_password="keypw-xyz")
    for text in (repr(s), str(s), s.model_dump_json()):
        for secret in ("hunter2-pw", "shpss_topsecret", "keypw-xyz"):
            assert secret not in text
