"""Running stockflow workers as local processes (the demo, the benchmarks, tests)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port(preferred: int | None = None) -> int:
    if preferred is not None:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, JSON body or text); connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def parse_metric(text: str, name: str, labels: dict | None = None) -> float:
    """Sum of a metric's samples in Prometheus text, filtered by labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, lab = metric.partition("{")
        if base != name:
            continue
        if labels:
            pairs = {}
            for part in lab.rstrip("}").split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    pairs[k.strip(",")] = v.strip('"')
            if any(pairs.get(k) != v for k, v in labels.items()):
                continue
        total += float(value)
    return total


def histogram_quantile(text: str, name: str, q: float, contains: str = "") -> float | None:
    """The q-quantile (upper bucket bound) of a histogram summed over labels
    (only samples whose line contains ``contains``)."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "_bucket") or contains not in line:
            continue
        metric, _, value = line.rpartition(" ")
        le = metric.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    if not buckets:
        return None
    total = buckets.get(float("inf"), 0.0)
    if total == 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


@dataclass
class LocalWorker:
    env: dict
    web_port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    @classmethod
    def create(cls, settings_env: dict, web_port: int, log_path: Path) -> "LocalWorker":
        env = dict(os.environ)
        env.update(settings_env)
        env["STOCKFLOW_WEB_PORT"] = str(web_port)
        return cls(env, web_port, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> "LocalWorker":
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stockflow.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches the parent only
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def is_ready(self) -> bool:
        try:
            return http_get(self.url + "/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker :{self.web_port} exited {self.proc.returncode}; log {self.log_path}:\n{self.tail()}")
            if self.is_ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"worker :{self.web_port} not ready after {timeout}s; log {self.log_path}:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def metrics_text(self) -> str:
        status, body = http_get(self.url + "/metrics", timeout=5)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body

    def metric(self, name: str, labels: dict | None = None) -> float:
        return parse_metric(self.metrics_text(), name, labels)
