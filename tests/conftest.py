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


# Client-connection chatter that says nothing about why a test failed.
_LOG_NOISE = ("Unable connect to node", "Unable to update metadata", "NodeNotReadyError", "KafkaConnectionError",
              "coordinator dead")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran workers shows their warnings and errors: CI
    keeps no files, and an intermittent failure must carry its own evidence
    (session 12 saw one it could not reproduce)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    tmp = item.funcargs.get("tmp_path")
    if tmp is None:
        return
    for log in sorted(Path(tmp).glob("**/worker-*.log"))[:8]:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        loud = [ln for ln in lines if ("WARNING" in ln or "ERROR" in ln or "Traceback" in ln or "Error:" in ln)
                and not any(n in ln for n in _LOG_NOISE)]
        rep.sections.append((f"worker log {log.relative_to(tmp)} ({len(loud)} warnings and errors; the last 60)",
                             "\n".join(ln[:300] for ln in loud[-60:])))
