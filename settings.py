"""Runtime settings, from the environment (prefix ``STOCKFLOW_``) and flags."""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKFLOW_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    partitions: int = Field(8, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    data_dir: Path = Path(".stockflow")
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = "127.0.0.1"
    web_bind: str = "127.0.0.1"
    same_day_radius_km: float = Field(50.0, gt=0)
    app_id: str = "stockflow"
    topic_prefix: str = "stockflow"
    # Records over this size are dead-lettered without being parsed, so one
    # hostile record cannot balloon a worker's memory.
    max_payload_bytes: int = Field(1_048_576, ge=1024)
    table_standby_replicas: int = Field(1, ge=0)
    # Bounds only a backlog's batches (at a steady load a batch is what came
    # within the window). 2,000 read better in four runs of 100,000
    # movements and worse in the bench's default 30,000 (docs/benchmarks.md,
    # session 19), so it stays 500.
    batch_size: int = Field(500, ge=1)
    batch_within_s: float = Field(0.01, gt=0)
    # SKU documents kept decoded (tables/stock.py): each costs about 20 KB
    # at 50 nodes, and 10,000 took the bench's peak RSS from 365 to 573 MB.
    decoded_skus: int = Field(10_000, ge=0)
    # Container allocations that start one of Python's young garbage
    # collections in a worker (collector.py); 0 keeps Python's 700.
    gc_threshold: int = Field(50_000, ge=0)
    commit_interval_s: float = Field(1.0, gt=0)
    # How long the producer waits to fill a batch; each hop of an order
    # waits that long too. 2 ms showed no measurable gain in the ingest
    # profile (docs/benchmarks.md), so the default stays 0.
    producer_linger_ms: int = Field(0, ge=0, le=1000)
    session_timeout_s: float = Field(10.0, ge=6, le=300)
    log_level: str = "warning"
    # Kafka security pass-through; never printed (SecretStr).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # TLS: the CA that signed the brokers' certificates (system CAs when
    # unset), and a client certificate for clusters that require mutual TLS.
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # POST /orders: with either set, a request needs a valid bearer token or
    # an X-Stockflow-Signature HMAC of its body (401 otherwise).
    intake_token: SecretStr | None = None
    intake_hmac_secret: SecretStr | None = None
    # Shopify signs each webhook with the app's shared secret; without one the
    # webhook route answers 503 rather than accept unsigned orders.
    shopify_webhook_secret: SecretStr | None = None

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, v: str) -> str:
        for hp in v.split(","):
            host, _, port = hp.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {v!r}")
        return v

    @property
    def canonical_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """One TLS context for every client (kafka-python, aiokafka, Faust)."""
        if not self.kafka_uses_tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
        if self.kafka_ssl_certfile:
            ctx.load_cert_chain(
                str(self.kafka_ssl_certfile),
                str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                self.secret(self.kafka_ssl_key_password),
            )
        return ctx

    def kafka_security(self) -> dict:
        """Security settings for kafka-python and aiokafka clients (same names)."""
        kw: dict = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_uses_tls:
            kw["ssl_context"] = self.kafka_ssl_context()
        if self.kafka_sasl_mechanism:
            kw["sasl_mechanism"] = self.kafka_sasl_mechanism
            kw["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                kw["sasl_plain_password"] = self.secret(self.kafka_sasl_password)
        return kw

    @staticmethod
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    def worker_dir(self) -> Path:
        return self.data_dir / f"worker-{self.web_port}"


def load(**overrides) -> Settings:
    """Settings from the environment, with flags (non-None overrides) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
