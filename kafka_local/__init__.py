"""Embedded single-node Apache Kafka 4.0.0 (KRaft) for dev and tests; see broker.py."""

from .broker import (
    KAFKA_VERSION,
    BrokerInfo,
    KafkaLocalError,
    cache_dir,
    default_data_dir,
    ensure_jars,
    restart,
    start,
    status,
    stop,
)

__all__ = [
    "KAFKA_VERSION",
    "BrokerInfo",
    "KafkaLocalError",
    "cache_dir",
    "default_data_dir",
    "ensure_jars",
    "restart",
    "start",
    "status",
    "stop",
]
