"""The embedded Kafka broker (stockflow.kafka_local): start, produce/consume,
status, stop, restart with data kept, and the taken-port error.

Runs its own broker on free ports in a tmp dir (never 9092), independent of
any session-wide broker. The jars come from the normal cache, so only the very
first run on a machine resolves them with Maven.
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from stockflow.kafka_local import broker as kl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_free_ports() -> tuple[int, int]:
    while True:
        a, b = _free_port(), _free_port()
        if a != b:
            return a, b


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=30000)
    try:
        producer.send(topic, key=key, value=value).get(timeout=60)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def _consume_all(bootstrap: str, topic: str, want: int = 1, timeout: float = 60) -> list:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=30000,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records: list = []
        deadline = time.monotonic() + timeout
        while len(records) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_start_produce_consume_stop_restart_keeps_data(tmp_path):
    data_dir = tmp_path / "kafka"
    port, cport = _two_free_ports()
    topic = f"kl-test-{uuid.uuid4().hex[:8]}"
    key, value = b"sku-1", b'{"qty": 3}'
    try:
        t0 = time.monotonic()
        info = kl.start(port=port, data_dir=data_dir, controller_port=cport, timeout=120)
        first_start = time.monotonic() - t0
        assert info.bootstrap == f"127.0.0.1:{port}"
        assert info.port == port and info.controller_port == cport
        assert info.data_dir == data_dir.resolve()
        assert info.log_path.is_file()
        assert (data_dir / "kafka.pid").read_text().strip() == str(info.pid)

        # idempotent: a second start finds the running broker
        again = kl.start(port=port, data_dir=data_dir, timeout=30)
        assert again.pid == info.pid

        st = kl.status(data_dir)
        assert st is not None and st.pid == info.pid and st.bootstrap == info.bootstrap

        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=info.bootstrap, request_timeout_ms=30000)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=30000)
        finally:
            admin.close()

        _produce(info.bootstrap, topic, key, value)
        got = _consume_all(info.bootstrap, topic)
        assert [(r.key, r.value) for r in got] == [(key, value)]

        assert kl.stop(data_dir) is True
        assert kl.status(data_dir) is None
        assert not (data_dir / "kafka.pid").exists()
        assert kl.stop(data_dir) is False  # nothing left to stop

        # restart on the same data dir: the topic and the record survive
        t0 = time.monotonic()
        info2 = kl.start(port=port, data_dir=data_dir, timeout=120)
        second_start = time.monotonic() - t0
        assert info2.pid != info.pid
        assert info2.bootstrap == info.bootstrap
        got = _consume_all(info2.bootstrap, topic)
        assert [(r.key, r.value) for r in got] == [(key, value)]
        print(f"\nkafka_local: first start {first_start:.1f}s, restart {second_start:.1f}s")
    finally:
        kl.stop(data_dir)
    assert kl.status(data_dir) is None


def test_start_on_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        with pytest.raises(kl.KafkaLocalError) as exc_info:
            kl.start(port=port, data_dir=tmp_path / "kafka", timeout=30)
    msg = str(exc_info.value)
    assert str(port) in msg and "already in use" in msg
    assert "\n" not in msg
    assert kl.status(tmp_path / "kafka") is None


def test_cli_reports_a_taken_port_in_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "stockflow.cli", "kafka", "start", "--port", str(port), "--data-dir", str(tmp_path / "k")],
            capture_output=True, text=True, timeout=120,
        )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "already in use" in lines[0], r.stderr
