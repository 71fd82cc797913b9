"""The deployment files agree with the code.

There is no Docker engine in CI, so docker-compose.yml, the Dockerfile and
deploy/prometheus.yml are checked by parsing them against what the code
declares: the Settings fields (STOCKFLOW_*), the HTTP routes, the console
script and its subcommands.
"""
from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml  # the `test` extra; a missing PyYAML must fail, not skip

from stockflow.cli import build_parser
from stockflow.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
HTTP_API = ROOT / "connectors" / "http_api.py"
PYPROJECT = ROOT / "pyproject.toml"

PREFIX = "STOCKFLOW_"
LISTENER_RE = re.compile(r"^(?P<name>[A-Za-z0-9_]+)://(?P<host>[^:]*):(?P<port>\d+)$")


# ----------------------------------------------------------------- parsing


def _compose() -> dict:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "no services in docker-compose.yml"
    return doc


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _env(service: dict) -> dict[str, str]:
    """`environment:` as a dict, from either the map or the list syntax."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, sep, value = str(item).partition("=")
            out[key] = value if sep else None
        return out
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _workers() -> dict[str, dict]:
    """Services that run `stockflow worker`: built from this repo, command `worker`."""
    return {
        name: svc
        for name, svc in _services().items()
        if "build" in svc and _command(svc)[:1] == ["worker"]
    }


def _kafka() -> tuple[str, dict]:
    found = [
        (name, svc)
        for name, svc in _services().items()
        if str(svc.get("image", "")).startswith("apache/kafka:")
    ]
    assert len(found) == 1, f"expected one apache/kafka service, found {[n for n, _ in found]}"
    return found[0]


def _container_ports(service: dict) -> list[int]:
    """Container (target) ports of a service's `ports:`, short or long syntax."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append(int(p["target"]))
        else:
            spec = str(p).split("/", 1)[0]  # drop /tcp
            out.append(int(spec.rsplit(":", 1)[-1]))
    return out


def _published_ports(service: dict) -> list[str]:
    """Host side ([ip:]port) of a service's `ports:`."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append(str(p.get("published", "")))
        else:
            spec = str(p).split("/", 1)[0]
            out.append(spec.rsplit(":", 1)[0] if ":" in spec else "")
    return out


def _volume_mounts(service: dict) -> dict[str, str]:
    """target -> source for a service's `volumes:`, short or long syntax."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            parts = str(v).split(":")
            if len(parts) >= 2:
                out[parts[1]] = parts[0]
    return out


def _listeners(value: str | None) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://kafka:9092,CONTROLLER://:9093' -> {name: (host, port)}."""
    out = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        m = LISTENER_RE.match(item)
        assert m, f"cannot parse listener {item!r}"
        out[m["name"]] = (m["host"], int(m["port"]))
    return out


def _host_port(hp: str) -> tuple[str, int]:
    host, _, port = hp.strip().rpartition(":")
    assert host and port.isdigit(), f"not host:port: {hp!r}"
    return host, int(port)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    logical, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        logical.append(buf)
        buf = ""
    if buf:
        logical.append(buf)
    out = []
    for line in logical:
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _dockerfile(instr: str) -> list[str]:
    return [args for i, args in _dockerfile_instructions() if i == instr]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _routes() -> set[str]:
    """Every string literal in connectors/http_api.py that starts with '/'."""
    src = HTTP_API.read_text()
    return set(re.findall(r"""["'](/[^"'\s]*)["']""", src))


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    return monkeypatch


# ----------------------------------------------------------------- compose


def test_compose_is_compose_spec():
    doc = _compose()
    assert "version" not in doc, "Compose spec files have no top-level version:"
    services = doc["services"]
    declared = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        for target, source in _volume_mounts(svc).items():
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: named volume {source!r} not declared under volumes:"


def test_there_are_workers_to_scale_out():
    workers = _workers()
    assert len(workers) >= 2, f"expected at least two worker services, got {sorted(workers)}"


def test_worker_web_port_matches_mapping_and_settings_default(clean_env):
    default = Settings().web_port
    assert default == Settings.model_fields["web_port"].default == 6066
    host_ports = []
    for name, svc in _workers().items():
        env = _env(svc)
        assert env.get(PREFIX + "WEB_PORT"), f"{name}: STOCKFLOW_WEB_PORT not set"
        port = int(env[PREFIX + "WEB_PORT"])
        assert port == default, f"{name}: STOCKFLOW_WEB_PORT={port}, Settings default is {default}"
        targets = _container_ports(svc)
        assert targets, f"{name}: no ports: mapping"
        assert targets == [port] * len(targets), f"{name}: ports map to {targets}, web port is {port}"
        host_ports += _published_ports(svc)
    assert len(host_ports) == len(set(host_ports)), f"two workers publish the same host port: {host_ports}"


def test_worker_env_keys_are_settings_fields(clean_env):
    fields = set(Settings.model_fields)
    for name, svc in _workers().items():
        env = _env(svc)
        assert env, f"{name}: no environment"
        for key in env:
            assert key.startswith(PREFIX), f"{name}: {key} is not a STOCKFLOW_ setting"
            field = key[len(PREFIX):].lower()
            assert field in fields, f"{name}: {key} is not a Settings field (known: {sorted(fields)})"
        # and the values validate, through the environment as the worker reads them
        for key, value in env.items():
            assert value is not None, f"{name}: {key} has no value"
            clean_env.setenv(key, value)
        s = Settings()
        for key, value in env.items():
            field = key[len(PREFIX):].lower()
            assert str(getattr(s, field)) == str(type(getattr(s, field))(value)), f"{name}: {key} not applied"
        for key in env:
            clean_env.delenv(key)


def test_workers_agree_on_the_cluster(clean_env):
    """One consumer group: same broker, partitions, app id, topic prefix."""
    shared = ["KAFKA_BOOTSTRAP", "PARTITIONS", "APP_ID", "TOPIC_PREFIX", "REPLICATION_FACTOR"]
    workers = _workers()
    for key in shared:
        values = {name: _env(svc).get(PREFIX + key) for name, svc in workers.items()}
        assert len(set(values.values())) == 1, f"workers disagree on {PREFIX}{key}: {values}"
    standby = {int(_env(svc).get(PREFIX + "TABLE_STANDBY_REPLICAS") or 0) for svc in workers.values()}
    assert max(standby) <= len(workers) - 1, f"{standby} standby replicas need more than {len(workers)} workers"


def test_bootstrap_points_at_a_kafka_listener():
    kafka_name, kafka = _kafka()
    kenv = _env(kafka)
    listeners = _listeners(kenv.get("KAFKA_LISTENERS"))
    advertised = _listeners(kenv.get("KAFKA_ADVERTISED_LISTENERS"))
    controller_names = {n.strip() for n in (kenv.get("KAFKA_CONTROLLER_LISTENER_NAMES") or "").split(",")}
    kafka_hosts = {kafka_name, kafka.get("hostname"), kafka.get("container_name")} - {None}
    for name, svc in _workers().items():
        bootstrap = _env(svc).get(PREFIX + "KAFKA_BOOTSTRAP")
        assert bootstrap, f"{name}: no STOCKFLOW_KAFKA_BOOTSTRAP"
        for hp in bootstrap.split(","):
            host, port = _host_port(hp)
            assert host in kafka_hosts, f"{name}: bootstrap host {host!r} is not the kafka service {sorted(kafka_hosts)}"
            bound = [ln for ln, (_, p) in listeners.items() if p == port]
            assert bound, f"{name}: kafka listens on {listeners}, not on port {port}"
            listener = bound[0]
            assert listener not in controller_names, f"{name}: bootstrap {hp} is the controller listener"
            # clients reconnect to the advertised address of that listener
            assert listener in advertised, f"listener {listener} is not advertised: {advertised}"
            assert advertised[listener] == (host, port), (
                f"{name}: bootstraps at {hp} but listener {listener} is advertised as {advertised[listener]}"
            )
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict) and kafka_name in deps, f"{name}: does not depend on {kafka_name}"
        assert deps[kafka_name].get("condition") == "service_healthy", f"{name}: should wait for a healthy broker"
    assert kafka.get("healthcheck", {}).get("test"), "kafka has no healthcheck for service_healthy"


def test_kafka_kraft_config_is_self_consistent():
    kafka_name, kafka = _kafka()
    kenv = _env(kafka)
    listeners = _listeners(kenv.get("KAFKA_LISTENERS"))
    advertised = _listeners(kenv.get("KAFKA_ADVERTISED_LISTENERS"))
    protocol_map = dict(
        item.strip().split(":", 1) for item in (kenv.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP") or "").split(",") if item.strip()
    )
    assert set(kenv.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"}
    for ln in set(listeners) | set(advertised):
        assert ln in protocol_map, f"listener {ln} missing from the security protocol map"
    assert set(advertised) <= set(listeners), f"advertised {set(advertised)} not all in listeners {set(listeners)}"
    assert kenv.get("KAFKA_INTER_BROKER_LISTENER_NAME") in listeners
    controllers = [n.strip() for n in kenv.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")]
    assert controllers and all(c in listeners for c in controllers)
    node_id = kenv.get("KAFKA_NODE_ID")
    voters = [v.strip() for v in kenv.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",") if v.strip()]
    assert len(voters) == 1, voters
    vid, _, vaddr = voters[0].partition("@")
    assert vid == node_id, f"quorum voter {vid} is not this node ({node_id})"
    vhost, vport = _host_port(vaddr)
    assert vhost in {kafka_name, kafka.get("hostname")} and vport == listeners[controllers[0]][1]
    # host access: every published container port is a listener
    for port in _container_ports(kafka):
        assert port in {p for _, p in listeners.values()}, f"kafka publishes {port}, no listener there"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert kenv.get(key) == "1", f"{key} must be 1 on a single node"
    assert kenv.get("KAFKA_LOG_DIRS") in _volume_mounts(kafka), "kafka log dir is not on a volume"


def test_web_host_is_the_service_name():
    """Faust routes keyed requests to the owner's canonical URL (web_host:web_port)."""
    for name, svc in _workers().items():
        env = _env(svc)
        assert env.get(PREFIX + "WEB_HOST") == name, f"{name}: STOCKFLOW_WEB_HOST={env.get(PREFIX + 'WEB_HOST')!r}"
        assert env.get(PREFIX + "WEB_BIND") == "0.0.0.0", f"{name}: web server not reachable from other containers"


def test_each_worker_keeps_state_on_its_own_volume(clean_env):
    sources = []
    for name, svc in _workers().items():
        data_dir = _env(svc).get(PREFIX + "DATA_DIR")
        assert data_dir, f"{name}: no STOCKFLOW_DATA_DIR"
        mounts = _volume_mounts(svc)
        assert data_dir in mounts, f"{name}: {data_dir} is not a mounted volume ({mounts})"
        sources.append(mounts[data_dir])
    assert len(sources) == len(set(sources)), f"workers share a state volume: {sources}"


def test_worker_command_is_a_cli_subcommand():
    parser = build_parser()
    for name, svc in _workers().items():
        args = parser.parse_args(_command(svc))
        assert args.command == "worker", name


# ----------------------------------------------------------------- prometheus


def test_prometheus_scrapes_every_worker_at_metrics():
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "stockflow" in jobs, f"no stockflow job in {sorted(jobs)}"
    job = jobs["stockflow"]
    targets = {t for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    expected = {
        f"{name}:{_env(svc)[PREFIX + 'WEB_PORT']}"
        for name, svc in _workers().items()
    }
    assert targets == expected, f"scrape targets {sorted(targets)} != workers {sorted(expected)}"
    path = job.get("metrics_path", "/metrics")
    assert path == "/metrics"
    assert path in _routes(), f"{path} is not a route in connectors/http_api.py"


def test_prometheus_service_mounts_this_config():
    services = _services()
    prom = [s for s in services.values() if str(s.get("image", "")).startswith("prom/prometheus:")]
    assert len(prom) == 1, "expected one prom/prometheus service"
    tag = prom[0]["image"].split(":", 1)[1]
    assert re.fullmatch(r"v[23]\.\d+\.\d+", tag), f"pin a v2.x/v3.x prometheus tag, not {tag!r}"
    mounts = _volume_mounts(prom[0])
    source = mounts.get("/etc/prometheus/prometheus.yml")
    assert source, f"prometheus.yml not mounted: {mounts}"
    assert (ROOT / source).resolve() == PROMETHEUS.resolve()


# ----------------------------------------------------------------- image


def test_entrypoint_is_the_console_script():
    entrypoints = _dockerfile("ENTRYPOINT")
    assert len(entrypoints) == 1, entrypoints
    assert _exec_form(entrypoints[0]) == ["stockflow"]
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert "stockflow" in scripts, f"[project.scripts] has {sorted(scripts)}"
    module, _, attr = scripts["stockflow"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_image_defaults_run_a_worker():
    cmds = _dockerfile("CMD")
    assert len(cmds) == 1, cmds
    assert build_parser().parse_args(_exec_form(cmds[0])).command == "worker"
    base = _dockerfile("FROM")
    assert base and base[0].split()[0].startswith("python:3.11"), base
    users = _dockerfile("USER")
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    exposed = {int(p.split("/")[0]) for args in _dockerfile("EXPOSE") for p in args.split()}
    assert Settings.model_fields["web_port"].default in exposed, exposed


def test_healthcheck_hits_a_registered_route():
    checks = _dockerfile("HEALTHCHECK")
    assert len(checks) == 1, checks
    assert "/healthz" in checks[0] and "urllib" in checks[0]
    assert "/healthz" in _routes()


def test_dockerignore_keeps_the_package_and_drops_the_rest():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]

    def regex(pat: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pat.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pat[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pat[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pat[i]), i + 1
        return re.compile(out + r"\Z")

    rules = [(p.startswith("!"), regex(p.lstrip("!").strip("/"))) for p in patterns]

    def ignored(path: str) -> bool:
        """Docker semantics: last matching rule wins; a matched directory drops its contents."""
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = False
        for negated, rx in rules:
            if any(rx.match(c) for c in candidates):
                hit = not negated
        return hit

    for path in (".venv/bin/python", ".git/HEAD", ".stockflow/kafka/x", "agents/__pycache__/a.pyc"):
        assert ignored(path), f"{path} would be sent to the build context"
    for path in ("pyproject.toml", "README.md", "cli.py", "settings.py", "connectors/http_api.py", "kafka_local/pom.xml"):
        assert not ignored(path), f"{path} is needed by `pip install .` but ignored"


# ----------------------------------------------------------------- grafana

GRAFANA = ROOT / "deploy" / "grafana"
GRAFANA_DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "stockflow.yml"
GRAFANA_DASHBOARD = GRAFANA / "dashboards" / "stockflow.json"
PROMETHEUS_PORT = 9090  # prom/prometheus listens here unless --web.listen-address says otherwise
METRIC_RE = re.compile(r"stockflow_[a-z_]+")
# The series prometheus-client exposes for each metric type (the family name
# is what metrics.py declares, without _total for counters).
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def _grafana() -> tuple[str, dict]:
    found = [(n, s) for n, s in _services().items() if str(s.get("image", "")).startswith("grafana/grafana:")]
    assert len(found) == 1, f"expected one grafana/grafana service, found {[n for n, _ in found]}"
    return found[0]


def _prometheus_service() -> tuple[str, dict]:
    found = [(n, s) for n, s in _services().items() if str(s.get("image", "")).startswith("prom/prometheus:")]
    assert len(found) == 1, "expected one prom/prometheus service"
    return found[0]


def _mount_target_of(service: dict, path: Path) -> str | None:
    for target, source in _volume_mounts(service).items():
        if source.startswith((".", "/")) and (ROOT / source).resolve() == path.resolve():
            return target
    return None


def _dashboard() -> dict:
    return json.loads(GRAFANA_DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query")
        exprs.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    return exprs


def _exported_series() -> dict[str, str]:
    """series name -> family name, for every metric in metrics.py."""
    from stockflow import metrics

    out = {}
    for fam in metrics.REGISTRY.collect():
        for suffix in SERIES_SUFFIXES[fam.type]:
            out[fam.name + suffix] = fam.name
    return out


def test_grafana_service_is_provisioned():
    name, svc = _grafana()
    tag = svc["image"].split(":", 1)[1]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a grafana release, not {tag!r}"
    assert 3000 in _container_ports(svc), "grafana serves on 3000"
    env = _env(svc)
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous visitors must not edit"
    assert _mount_target_of(svc, GRAFANA / "provisioning") == "/etc/grafana/provisioning"
    assert GRAFANA_DATASOURCES.is_file() and GRAFANA_PROVIDERS.is_file()
    prom_name, _ = _prometheus_service()
    deps = svc.get("depends_on") or []
    assert prom_name in deps, f"{name} should start after {prom_name}"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        target = _mount_target_of(svc, GRAFANA / "dashboards")
        assert target and home.startswith(target + "/"), f"home dashboard {home} is not in a mounted folder"
        assert (GRAFANA / "dashboards" / home[len(target) + 1:]).is_file(), home


def test_grafana_datasource_is_the_compose_prometheus():
    from urllib.parse import urlsplit

    doc = yaml.safe_load(GRAFANA_DATASOURCES.read_text())
    sources = [d for d in doc["datasources"] if d["type"] == "prometheus"]
    assert len(sources) == 1, sources
    ds = sources[0]
    url = urlsplit(ds["url"])
    prom_name, prom = _prometheus_service()
    assert url.hostname in {prom_name, prom.get("hostname"), prom.get("container_name")} - {None}, ds["url"]
    assert url.port == PROMETHEUS_PORT and PROMETHEUS_PORT in _container_ports(prom), ds["url"]
    assert ds.get("access", "proxy") == "proxy", "the browser cannot resolve compose service names"
    assert ds.get("uid"), "the dashboard refers to the datasource by uid"


def test_grafana_loads_the_dashboard_folder_it_mounts():
    _, svc = _grafana()
    doc = yaml.safe_load(GRAFANA_PROVIDERS.read_text())
    paths = [p["options"]["path"] for p in doc["providers"] if p.get("type", "file") == "file"]
    target = _mount_target_of(svc, GRAFANA / "dashboards")
    assert target, f"deploy/grafana/dashboards is not mounted: {_volume_mounts(svc)}"
    assert paths == [target], f"providers read {paths}, the folder is mounted at {target}"
    assert GRAFANA_DASHBOARD.is_file()


def test_grafana_dashboard_panels_use_the_provisioned_datasource():
    uid = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"][0]["uid"]
    dash = _dashboard()
    assert dash.get("uid") and dash.get("title")
    panels = [p for p in _panels(dash) if p.get("type") != "row"]
    assert len(panels) >= 10, f"only {len(panels)} panels"
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p["targets"]]:
            assert isinstance(ds, dict) and ds.get("uid") == uid, f"panel {p['title']!r} uses datasource {ds}"
        for t in p["targets"]:
            assert t.get("expr", "").strip(), f"panel {p['title']!r} has an empty query"
            assert t["expr"].count("(") == t["expr"].count(")"), f"unbalanced PromQL: {t['expr']}"


def test_grafana_dashboard_queries_only_metrics_that_exist():
    exported = _exported_series()
    used = {name for expr in _exprs(_dashboard()) for name in METRIC_RE.findall(expr)}
    unknown = sorted(used - set(exported))
    assert not unknown, (
        f"the dashboard queries series metrics.py does not export: {unknown} "
        f"(exported: {sorted(exported)})"
    )
    families = {exported[name] for name in used}
    required = {
        "stockflow_events_processed", "stockflow_allocations", "stockflow_split_shipments", "stockflow_backorders",
        "stockflow_dead_letters", "stockflow_oversell_violations", "stockflow_processing_latency_seconds",
        "stockflow_consumer_lag", "stockflow_table_keys", "stockflow_ready",
    }
    assert required <= families, f"no panel for {sorted(required - families)}"


def test_the_series_name_check_catches_wrong_suffixes():
    """The metric check above is only useful if it refuses near misses."""
    exported = _exported_series()
    assert "stockflow_allocations_total" in exported and "stockflow_processing_latency_seconds_bucket" in exported
    for wrong in ("stockflow_allocations", "stockflow_ready_total", "stockflow_processing_latency_seconds",
                  "stockflow_consumer_lag_total", "stockflow_events_processed_bucket"):
        assert wrong not in exported, wrong


def test_order_intake_needs_a_credential_in_compose():
    # open intake is for the laptop demo only; a compose stack publishes its ports
    for name, svc in _workers().items():
        env = _env(svc)
        assert env.get(PREFIX + "INTAKE_TOKEN") or env.get(PREFIX + "INTAKE_HMAC_SECRET"), f"{name}: POST /orders is open"
