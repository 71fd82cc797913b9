"""Creating the contract's topics when they are missing (kafka-python admin)."""
from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ..settings import Settings
from ..errors import StockflowError
from .topics import Topics


class AdminError(StockflowError):
    pass


def admin_client(settings: Settings, timeout_s: float = 120.0) -> KafkaAdminClient:
    """An admin client, waiting for the cluster: a worker (re)started while the
    brokers restart waits them out instead of exiting."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap.split(","),
                client_id="stockflow-admin",
                request_timeout_ms=15000,
                **settings.kafka_security(),
            )
        except KafkaError as exc:  # broker not reachable yet
            last = exc
            time.sleep(0.5)
    raise AdminError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {last}")


# Faust's changelog topics, named <app id>-<table>-changelog. Created here,
# before Faust starts, because a table written while the consumer has no
# metadata for its fresh changelog crashes its agent (PartitionsMismatch: the
# changelog "has 0 partitions"), seen on a cold broker.
TABLES = ("stock", "seen-events", "orders")


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{t}-changelog" for t in TABLES]


def ensure_topics(settings: Settings, extra: dict[str, int] | None = None) -> list[str]:
    """Create every contract topic, internal topic and table changelog (plus
    ``extra`` name -> partitions) that is missing; return the names created."""
    topics = Topics(settings.topic_prefix)
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        wanted = []
        for name, spec in topics.all().items():
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if spec.compacted else {}
            wanted.append(NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=configs))
        for name in changelog_topics(settings):
            if name not in existing:
                wanted.append(NewTopic(name, settings.partitions, settings.replication_factor,
                                       topic_configs={"cleanup.policy": "compact"}))
        for name, parts in (extra or {}).items():
            if name not in existing:
                wanted.append(NewTopic(name, parts, settings.replication_factor))
        created = []
        for nt in wanted:
            try:
                admin.create_topics([nt])
                created.append(nt.name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        return created
    finally:
        admin.close()
