"""Embedded single-node Apache Kafka 4.0.0 (KRaft, combined broker+controller).

The official Apache Kafka jars are resolved from Maven Central by ``pom.xml``
(next to this file) into a cache dir, then ``kafka.Kafka`` runs detached on the
machine's Java 17+, listening on 127.0.0.1 only.

Public API (used by ``stockflow kafka ...`` and the pytest session fixture)::

    ensure_jars() -> Path
    start(port=9092, data_dir=None, controller_port=None, timeout=90) -> BrokerInfo
    stop(data_dir=None, timeout=30, force=False) -> bool
    status(data_dir=None) -> BrokerInfo | None
    restart(data_dir=None, timeout=90) -> BrokerInfo

Nothing here prints; failures raise :class:`KafkaLocalError` with a one-line
message meant to be shown as-is.

Jars: ``$STOCKFLOW_CACHE_DIR`` (else ``~/.cache/stockflow/kafka-4.0.0``) holds
``pom.xml`` (a copy), ``mvn.log`` and ``lib/``; ``lib/.stockflow-complete`` is
written after a successful copy and records the pom's sha256, so later starts
run no Maven at all (and a changed pom.xml re-resolves).

Notes on Kafka 4.0.0:

* Storage is formatted once with ``kafka.tools.StorageTool format --standalone``
  (single-node dynamic KRaft quorum, ``controller.quorum.bootstrap.servers``);
  the cluster id lives in ``data/meta.properties`` and ``state.json``.
* A restarted combined node must wait out its previous broker session before it
  can re-register (KAFKA-19130); the session is shortened to 3 s here.
* Logging is log4j2 via ``log4j-slf4j-impl`` (Kafka 4.0 still uses slf4j 1.7).

Files in the data dir (default ``$STOCKFLOW_DATA_DIR/kafka`` or ``./.stockflow/kafka``)::

    server.properties   generated on every start
    state.json          cluster id, node id and the ports last used
    kafka.pid           pid of the running broker
    kafka.log           the JVM's stdout/stderr
    server.log          log4j2 broker log (BrokerInfo.log_path)
    state-change.log    log4j2 state-change log
    format.log          output of the one-time storage format
    data/               log.dirs (topic partitions and __cluster_metadata)
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import StockflowError

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

KAFKA_VERSION = "4.0.0"
MIN_JAVA = 17
NODE_ID = 1

_PKG_DIR = Path(__file__).resolve().parent
POM_PATH = _PKG_DIR / "pom.xml"
LOG4J2_CONFIG = _PKG_DIR / "log4j2.properties"

_MARKER = ".stockflow-complete"
_PID_FILE = "kafka.pid"
_STATE_FILE = "state.json"
_PROPS_FILE = "server.properties"
_STDOUT_LOG = "kafka.log"
_SERVER_LOG = "server.log"
_LOG_DIR = "data"
_LAUNCH_BANNER = "=== stockflow: starting Kafka"

_JVM_OPTS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

# Popen handles of brokers started by this process, so stop() can reap them
# (a dead-but-unreaped child still answers kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen] = {}


class KafkaLocalError(StockflowError, RuntimeError):
    """A one-line, user-facing failure of the embedded broker."""


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap: str
    pid: int
    data_dir: Path
    log_path: Path
    controller_port: int | None = None

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])


# --------------------------------------------------------------------------
# paths


def cache_dir() -> Path:
    """``$STOCKFLOW_CACHE_DIR`` or ``~/.cache/stockflow/kafka-4.0.0``."""
    env = os.environ.get("STOCKFLOW_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "stockflow" / f"kafka-{KAFKA_VERSION}"


def default_data_dir() -> Path:
    """``$STOCKFLOW_DATA_DIR/kafka`` or ``./.stockflow/kafka``."""
    env = os.environ.get("STOCKFLOW_DATA_DIR")
    base = Path(env).expanduser() if env else Path.cwd() / ".stockflow"
    return (base / "kafka").resolve()


def _data_dir(data_dir: Path | str | None) -> Path:
    return Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, n: int = 5, records_only: bool = False) -> str:
    """The last ``n`` non-blank lines of a log, joined on one line.

    ``records_only``: only log4j records (lines starting with '['), which skips
    the continuation lines of multi-line messages such as the config dump.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    lines = [ln.strip() for ln in lines if ln.strip()]
    if records_only:
        lines = [ln for ln in lines if ln.startswith("[")] or lines
    lines = lines[-n:]
    return " | ".join(ln[:300] for ln in lines)


# --------------------------------------------------------------------------
# tools: java and mvn

_java_checked: dict[str, str] = {}


def _java() -> str:
    """Path of a Java >= 17 executable, or KafkaLocalError."""
    java_home = os.environ.get("JAVA_HOME")
    candidate: str | None
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        candidate = str(Path(java_home) / "bin" / "java")
    else:
        candidate = shutil.which("java")
    if not candidate:
        raise KafkaLocalError(
            f"Java {MIN_JAVA}+ is required to run Kafka {KAFKA_VERSION}, but `java` is not on PATH "
            "(install a JDK/JRE 17+, e.g. openjdk-17-jre-headless, or set JAVA_HOME)"
        )
    if candidate in _java_checked:
        return candidate
    try:
        out = subprocess.run(
            [candidate, "-version"], capture_output=True, text=True, timeout=30
        )
        text = out.stderr + out.stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise KafkaLocalError(f"cannot run {candidate} -version: {exc}") from None
    m = re.search(r'version "([^"]+)"', text)
    if not m:
        raise KafkaLocalError(f"cannot tell the Java version of {candidate}: {text.strip()[:200]!r}")
    ver = m.group(1)
    parts = ver.split(".")
    try:
        major = int(parts[1]) if parts[0] == "1" else int(re.match(r"\d+", parts[0]).group(0))  # type: ignore[union-attr]
    except (ValueError, IndexError, AttributeError):
        raise KafkaLocalError(f"cannot parse the Java version {ver!r} of {candidate}") from None
    if major < MIN_JAVA:
        raise KafkaLocalError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {candidate} is Java {ver} "
            "(install Java 17+ or point JAVA_HOME at one)"
        )
    _java_checked[candidate] = ver
    return candidate


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaLocalError(
            f"Maven (`mvn`) is not on PATH; it is needed once to fetch the Kafka {KAFKA_VERSION} "
            f"jars from Maven Central into {cache_dir() / 'lib'} (install maven 3.8+)"
        )
    return mvn


# --------------------------------------------------------------------------
# jars


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def _lib_complete(lib: Path, digest: str) -> bool:
    try:
        marker = json.loads((lib / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("pom_sha256") != digest:
        return False
    jars = marker.get("jars") or []
    return bool(jars) and all((lib / j).is_file() for j in jars)


def ensure_jars() -> Path:
    """Return the dir holding Kafka's runtime classpath, resolving it with Maven once.

    When the lib dir is complete (marker file written after a successful copy,
    matching the current pom.xml), nothing runs and nothing is downloaded.
    """
    cache = cache_dir()
    lib = cache / "lib"
    digest = _pom_digest()
    if _lib_complete(lib, digest):
        return lib
    with _flock(cache / ".lock"):
        if _lib_complete(lib, digest):  # another process finished meanwhile
            return lib
        _java()  # mvn needs it too; give the clearer message first
        mvn = _mvn()
        partial = cache / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copyfile(POM_PATH, cache / "pom.xml")
        log = cache / "mvn.log"
        cmd = [
            mvn, "-B", "-q",
            "-f", str(cache / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ]
        with open(log, "w") as fh:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            try:
                rc = subprocess.run(
                    cmd, cwd=cache, stdout=fh, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, timeout=1800,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            except OSError as exc:
                rc = f"{exc}"
        jars = sorted(p.name for p in partial.glob("*.jar")) if partial.is_dir() else []
        if rc != 0 or not any(j.startswith(f"kafka_2.13-{KAFKA_VERSION}") for j in jars):
            first_err = ""
            with contextlib.suppress(OSError):
                for line in log.read_text(errors="replace").splitlines():
                    if "[ERROR]" in line:
                        first_err = ": " + line.replace("[ERROR]", "").strip()[:200]
                        break
            raise KafkaLocalError(
                f"mvn could not fetch the Kafka {KAFKA_VERSION} jars (exit {rc}){first_err}; see {log}"
            )
        (partial / _MARKER).write_text(json.dumps({"pom_sha256": digest, "jars": jars}, indent=1))
        shutil.rmtree(lib, ignore_errors=True)
        os.replace(partial, lib)
        return lib


# --------------------------------------------------------------------------
# process bookkeeping


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap if it is our (untracked) child
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    args = [a.decode(errors="replace") for a in cmdline]
    return "kafka.Kafka" in args and str(data_dir / _PROPS_FILE) in args


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / _PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _running_pid(data_dir: Path) -> int | None:
    pid = _read_pid(data_dir)
    if pid is None:
        return None
    if _is_our_broker(pid, data_dir):
        return pid
    with contextlib.suppress(OSError):
        (data_dir / _PID_FILE).unlink()
    return None


def _load_state(data_dir: Path) -> dict:
    try:
        state = json.loads((data_dir / _STATE_FILE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(data_dir: Path, state: dict) -> None:
    tmp = data_dir / (_STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, data_dir / _STATE_FILE)


def _info(data_dir: Path, pid: int, state: dict) -> BrokerInfo:
    return BrokerInfo(
        bootstrap=f"127.0.0.1:{state['port']}",
        pid=pid,
        data_dir=data_dir,
        log_path=data_dir / _SERVER_LOG,
        controller_port=state.get("controller_port"),
    )


# --------------------------------------------------------------------------
# ports


def _port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise KafkaLocalError(f"invalid {what} port {port}")
    if not _port_free(port):
        raise KafkaLocalError(
            f"{what} port {port} on 127.0.0.1 is already in use by another process; "
            "stop it or choose another port"
        )


def _connectable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


# --------------------------------------------------------------------------
# config and storage


def _new_cluster_id() -> str:
    while True:  # Kafka's Uuid.randomUuid() rejects ids whose base64 starts with '-'
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _meta_cluster_id(log_dir: Path) -> str | None:
    try:
        for line in (log_dir / "meta.properties").read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def _server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    return f"""\
# Generated by stockflow.kafka_local on every start; edits are overwritten.
# Single-node Apache Kafka {KAFKA_VERSION} in KRaft mode (combined broker+controller).
process.roles=broker,controller
node.id={NODE_ID}
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}

listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600

log.dirs={data_dir / _LOG_DIR}
num.partitions=8
num.recovery.threads.per.data.dir=1
auto.create.topics.enable=true
delete.topic.enable=true

# one node: every internal topic has replication factor 1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

group.initial.rebalance.delay.ms=0

# Kafka 4.0.0 makes a restarted single combined node wait out the previous
# incarnation's broker session (DuplicateBrokerRegistration, ~9 s with the
# default 9000 ms; KAFKA-19130, fixed after 4.0.0). A shorter session keeps
# restarts quick on a 1-node dev/test broker.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


def _jvm_cmd(java: str, lib: Path, data_dir: Path, main: str, *args: str) -> list[str]:
    return [
        java,
        *_JVM_OPTS,
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        f"-Dkafka.logs.dir={data_dir}",
        "-cp", f"{lib}/*",
        main, *args,
    ]


def _format_storage(java: str, lib: Path, data_dir: Path, cluster_id: str) -> None:
    log = data_dir / "format.log"
    cmd = _jvm_cmd(
        java, lib, data_dir, "kafka.tools.StorageTool",
        "format", "--standalone", "--ignore-formatted",
        "-t", cluster_id, "-c", str(data_dir / _PROPS_FILE),
    )
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(
                cmd, cwd=data_dir, stdout=fh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=120,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    if rc != 0 or _meta_cluster_id(data_dir / _LOG_DIR) != cluster_id:
        raise KafkaLocalError(
            f"formatting Kafka storage in {data_dir / _LOG_DIR} failed (exit {rc}); "
            f"see {log}: {_tail(log, 3)}"
        )


# --------------------------------------------------------------------------
# readiness


def _probe(bootstrap: str, timeout: float) -> None:
    """Create and delete a probe topic; raises on any failure."""
    from kafka.admin import KafkaAdminClient, NewTopic  # kafka-python

    ms = max(1000, int(timeout * 1000))
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="stockflow-kafka-local-probe",
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
    )
    try:
        name = f"__stockflow_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, 1, 1)], timeout_ms=ms)
        admin.delete_topics([name], timeout_ms=ms)
    finally:
        with contextlib.suppress(Exception):
            admin.close()


def _startup_output(data_dir: Path, server_log_offset: int = 0) -> str:
    """The JVM's own output of the latest launch, else the broker log's last errors."""
    with contextlib.suppress(OSError):
        text = (data_dir / _STDOUT_LOG).read_text(errors="replace")
        own = text.rsplit(_LAUNCH_BANNER, 1)[-1].split("\n", 1)[-1] if _LAUNCH_BANNER in text else text
        lines = [ln.strip() for ln in own.splitlines() if ln.strip()][-3:]
        if lines:
            return " | ".join(ln[:300] for ln in lines)
    with contextlib.suppress(OSError):
        with open(data_dir / _SERVER_LOG, "rb") as fh:
            if server_log_offset <= os.fstat(fh.fileno()).st_size:
                fh.seek(server_log_offset)
            lines = fh.read().decode("utf-8", "replace").splitlines()
        for i in range(len(lines) - 1, -1, -1):  # last ERROR record + its exception line
            if re.match(r"\[[^]]+\] (ERROR|FATAL) ", lines[i]):
                parts = [lines[i].strip()]
                if i + 1 < len(lines) and not lines[i + 1].startswith("["):
                    parts.append(lines[i + 1].strip())
                return " | ".join(p[:300] for p in parts)
    return _tail(data_dir / _SERVER_LOG, records_only=True)


def _wait_ready(pid: int, port: int, data_dir: Path, deadline: float, server_log_offset: int = 0) -> None:
    bootstrap = f"127.0.0.1:{port}"
    last_err = "the broker never opened its port"
    while True:
        if not _pid_alive(pid):
            child = _CHILDREN.pop(pid, None)
            code = f" with code {child.returncode}" if child is not None else ""
            raise KafkaLocalError(
                f"Kafka exited{code} during startup; see {data_dir / _SERVER_LOG} "
                f"and {data_dir / _STDOUT_LOG}: {_startup_output(data_dir, server_log_offset)}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(last_err)
        if _connectable(port):
            try:
                _probe(bootstrap, min(10.0, max(1.0, remaining)))
                return
            except Exception as exc:  # noqa: BLE001 - any client error means "not yet"
                last_err = f"{type(exc).__name__}: {exc}"[:300]
        time.sleep(0.25)


# --------------------------------------------------------------------------
# public API


def status(data_dir: Path | str | None = None) -> BrokerInfo | None:
    """The running broker of ``data_dir`` (its process is alive), or None."""
    dd = _data_dir(data_dir)
    pid = _running_pid(dd)
    if pid is None:
        return None
    state = _load_state(dd)
    if "port" not in state:
        return None
    return _info(dd, pid, state)


def start(
    port: int = 9092,
    data_dir: Path | str | None = None,
    controller_port: int | None = None,
    timeout: float = 90,
) -> BrokerInfo:
    """Start (or find running) the broker of ``data_dir``; return once it accepts clients.

    Idempotent: if this data dir's broker already runs, waits until it is
    healthy and returns its info. Topics and data survive stop/start.
    """
    dd = _data_dir(data_dir)
    deadline = time.monotonic() + timeout
    dd.mkdir(parents=True, exist_ok=True)
    with _flock(dd / ".lock"):
        state = _load_state(dd)
        pid = _running_pid(dd)
        if pid is not None and "port" in state:
            if state["port"] != port:
                raise KafkaLocalError(
                    f"the broker of {dd} is already running on 127.0.0.1:{state['port']} "
                    f"(pid {pid}); stop it first to use port {port}"
                )
            try:
                _wait_ready(pid, port, dd, deadline)
            except TimeoutError as exc:
                raise KafkaLocalError(
                    f"the broker of {dd} (pid {pid}) runs but is not ready after {timeout:.0f}s ({exc}); "
                    f"see {dd / _SERVER_LOG}: {_tail(dd / _SERVER_LOG, records_only=True)}"
                ) from None
            return _info(dd, pid, state)
        if pid is not None:  # running but state lost: cannot know its ports
            raise KafkaLocalError(
                f"a broker (pid {pid}) runs from {dd} but {dd / _STATE_FILE} is missing; stop it first"
            )

        java = _java()
        _check_port(port, "Kafka")
        if controller_port is None:
            prev = state.get("controller_port")
            candidates = [prev] if isinstance(prev, int) else []
            candidates.append(port + 1000)
            controller_port = next(
                (c for c in candidates if 0 < c < 65536 and c != port and _port_free(c)), None
            ) or _free_port()
        elif controller_port == port:
            raise KafkaLocalError("the controller port must differ from the Kafka port")
        _check_port(controller_port, "Kafka controller")

        t0 = time.monotonic()
        lib = ensure_jars()
        deadline += time.monotonic() - t0  # a first-time Maven resolve does not count

        log_dir = dd / _LOG_DIR
        cluster_id = _meta_cluster_id(log_dir) or state.get("cluster_id") or _new_cluster_id()
        state.update(
            cluster_id=cluster_id, node_id=NODE_ID, port=port,
            controller_port=controller_port, kafka_version=KAFKA_VERSION,
        )
        _save_state(dd, state)
        (dd / _PROPS_FILE).write_text(_server_properties(dd, port, controller_port))

        if _meta_cluster_id(log_dir) is None:
            _format_storage(java, lib, dd, cluster_id)

        try:
            server_log_offset = (dd / _SERVER_LOG).stat().st_size
        except OSError:
            server_log_offset = 0
        out = open(dd / _STDOUT_LOG, "ab")
        try:
            out.write(f"\n{_LAUNCH_BANNER} {KAFKA_VERSION} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ===\n".encode())
            out.flush()
            proc = subprocess.Popen(
                _jvm_cmd(java, lib, dd, "kafka.Kafka", str(dd / _PROPS_FILE)),
                cwd=dd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise KafkaLocalError(f"cannot launch {java}: {exc}") from None
        finally:
            out.close()
        _CHILDREN[proc.pid] = proc
        (dd / _PID_FILE).write_text(f"{proc.pid}\n")

        try:
            _wait_ready(proc.pid, port, dd, deadline, server_log_offset)
        except TimeoutError as exc:
            _terminate(proc.pid, dd, 10.0, force=False)
            raise KafkaLocalError(
                f"Kafka did not become ready within {timeout:.0f}s ({exc}); it was stopped; "
                f"see {dd / _SERVER_LOG}: {_tail(dd / _SERVER_LOG, records_only=True)}"
            ) from None
        except KafkaLocalError:
            with contextlib.suppress(OSError):
                (dd / _PID_FILE).unlink()
            raise
        return _info(dd, proc.pid, state)


def _terminate(pid: int, data_dir: Path, timeout: float, force: bool) -> None:
    def wait(limit: float) -> bool:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return not _pid_alive(pid)

    if not force:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if force or not wait(timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait(10.0)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)
    with contextlib.suppress(OSError):
        (data_dir / _PID_FILE).unlink()


def stop(data_dir: Path | str | None = None, timeout: float = 30.0, force: bool = False) -> bool:
    """Stop the broker of ``data_dir``: SIGTERM, wait ``timeout`` s, then SIGKILL.

    ``force=True`` sends SIGKILL at once (a crash, for chaos tests).
    Returns True if a broker was running, False if there was none.
    """
    dd = _data_dir(data_dir)
    pid = _running_pid(dd)
    if pid is None:
        return False
    _terminate(pid, dd, timeout, force)
    return True


def restart(data_dir: Path | str | None = None, timeout: float = 90) -> BrokerInfo:
    """Stop (if running) and start again on the same ports; topics and data are kept."""
    dd = _data_dir(data_dir)
    state = _load_state(dd)
    if "port" not in state:
        raise KafkaLocalError(f"no broker was ever started from {dd}; use start()")
    stop(dd)
    # controller_port=None: reuse the recorded controller port when it is free
    return start(port=state["port"], data_dir=dd, timeout=timeout)
