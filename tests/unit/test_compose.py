"""docker-compose.yml's structure and every file it mounts. No Docker engine runs here, so this
checks the wiring, not the containers (the testcontainers tests run the real images where Docker exists)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_images_pinned_and_healthchecked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "clickhouse", "grafana", "worker", "producer", "prometheus", "alertmanager"}
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin the image version ({image})"
        assert "container_name" not in svc, f"{name}: a fixed container name prevents --scale"
        if name != "producer":
            assert svc["healthcheck"]["test"], name
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["worker"]["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert services["producer"]["profiles"] == ["demo"]
    assert "ports" not in services["worker"], "published worker ports break --scale worker=N"


def test_only_loopback_ports_are_published(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_volumes_declared_and_mounted_files_exist_and_parse(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for svc in compose["services"].values():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                path = ROOT / source
                assert path.exists(), f"{source} is mounted but missing"
                files = (
                    sorted([*path.glob("*.json"), *path.glob("*.yml"), *path.glob("**/*.yml")])
                    if path.is_dir()
                    else [path]
                )
                assert files, f"{source} holds no files"
                for f in files:
                    text = f.read_text()
                    if f.suffix in (".yaml", ".yml"):
                        yaml.safe_load(text)
                    elif f.suffix == ".xml":
                        ET.fromstring(text)
                    elif f.suffix == ".json":
                        json.loads(text)
            else:
                used.add(source)
    assert used == declared, "every named volume is declared and used"


def test_env_wiring_between_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker_env = services["worker"]["environment"]
    kafka_env = services["kafka"]["environment"]
    advertised = dict(re.findall(r"(\w+)://([^,]+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"]))
    assert worker_env["DRIFTLINE_BROKER"] == advertised["PLAINTEXT"] == "kafka:9092"
    assert worker_env["DRIFTLINE_CLICKHOUSE"] == "http://clickhouse:8123"
    users = ET.fromstring((ROOT / "infra/clickhouse/users.d/driftline.xml").read_text())
    writer = users.find("users/driftline")
    reader = users.find("users/grafana")
    assert writer is not None and reader is not None
    assert worker_env["DRIFTLINE_CLICKHOUSE_USER"] == "driftline"
    assert writer.find("password").get("from_env") == "DRIFTLINE_CLICKHOUSE_PASSWORD"  # type: ignore[union-attr]
    assert reader.find("profile").text == "grafana_readonly"  # type: ignore[union-attr]
    assert users.find("profiles/grafana_readonly/readonly").text in ("1", "2")  # type: ignore[union-attr]
    grants = [q.text or "" for q in reader.iter("query")]
    assert grants == ["GRANT SELECT ON driftline.*"], "Grafana reads, nothing else"
    writer_grants = " ".join(q.text or "" for q in writer.iter("query"))
    assert "INSERT" in writer_grants and "DROP" not in writer_grants and "ON driftline.*" in writer_grants
    ds = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text())["datasources"][0]
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["uid"] == "driftline-clickhouse"
    assert ds["jsonData"]["host"] == "clickhouse" and ds["jsonData"]["username"] == "grafana"
    assert ds["secureJsonData"]["password"] == "$GRAFANA_CLICKHOUSE_PASSWORD"
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in services["grafana"]["environment"]
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    provider = yaml.safe_load((ROOT / "infra/grafana/provisioning/dashboards/driftline.yaml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["grafana"]["volumes"]}
    assert mounts[provider["providers"][0]["options"]["path"]] == "./infra/grafana/dashboards"


def test_every_required_variable_has_an_example(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert required <= example, required - example
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_prometheus_and_alertmanager_are_wired_to_the_workers(compose: dict[str, Any]) -> None:
    """Issue 19.3: Prometheus scrapes every worker and sends to Alertmanager; the workers forward there too."""
    from driftline.spec import MonitorSpec

    services = compose["services"]
    prom = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "driftline"]
    worker_cmd = services["worker"]["command"]
    port = int(worker_cmd[worker_cmd.index("--web-port") + 1])
    assert job["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": port}
    assert worker_cmd[worker_cmd.index("--web-host") + 1] == "0.0.0.0"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert (
        mounts["/etc/prometheus"] == "./infra/prometheus" and (ROOT / "infra/prometheus/rules/driftline.yml").is_file()
    )
    spec = MonitorSpec.from_yaml((ROOT / "infra/driftline/spec.yaml").read_text())
    assert spec.alerts.alertmanagers.urls == ("http://alertmanager:9093",)
    am_mounts = {m.split(":")[1]: m.split(":")[0] for m in services["alertmanager"]["volumes"]}
    assert am_mounts["/etc/alertmanager"] == "./infra/alertmanager"


def test_grafana_targets_carry_the_plugin_version_and_format(compose: dict[str, Any]) -> None:
    """Issue 19.3: without pluginVersion the ClickHouse plugin 4.x migrates a target as a 3.x query and takes
    its query type from `format` (absent: table). Every target names the installed version and its format."""
    installed = compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"].split()[-1]
    targets = []
    for path in sorted((ROOT / "infra/grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        targets += [t for p in board["panels"] for t in p.get("targets", []) if "rawSql" in t]
        targets += [a["target"] for a in board["annotations"]["list"] if "rawSql" in a.get("target", {})]
    assert len(targets) > 40
    for t in targets:
        assert t["pluginVersion"] == installed and int(t["pluginVersion"].split(".")[0]) >= 4
        assert t["editorType"] == "sql" and t["format"] == {"timeSeries": 0, "table": 1}[t["queryType"]], t


def test_dead_letters_per_minute_is_per_minute() -> None:
    board = json.loads((ROOT / "infra/grafana/dashboards/driftline-overview.json").read_text())
    (panel,) = [p for p in board["panels"] if p["title"].startswith("Dead letters")]
    assert panel["title"] == "Dead letters per minute, by reason"
    assert "count() * 60 / $__interval_s AS value" in panel["targets"][0]["rawSql"]  # per bucket -> per minute
