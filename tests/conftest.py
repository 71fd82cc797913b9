from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .support import Cluster, free_port


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """One real Apache Kafka broker per test session.

    ``STOCKFLOW_TEST_BOOTSTRAP`` points the suite at a running broker instead.
    """
    given = os.environ.get("STOCKFLOW_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    from stockflow.kafka_local import broker

    data_dir = Path(tempfile.mkdtemp(prefix="sf-kafka-"))
    info = broker.start(port=free_port(), data_dir=data_dir)
    try:
        yield info.bootstrap
    finally:
        broker.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def cluster_factory(kafka_bootstrap, tmp_path):
    """Make clusters (workers + fresh topics + clients); all stopped at teardown."""
    made: list[Cluster] = []

    def make(partitions: int = 8) -> Cluster:
        c = Cluster(kafka_bootstrap, tmp_path / f"c{len(made)}", partitions=partitions)
        c.base_dir.mkdir(parents=True, exist_ok=True)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    return cluster_factory()
