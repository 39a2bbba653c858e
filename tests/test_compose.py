"""docker-compose.yml: Redis (AOF, volume), worker, one beat, Flower with auth, health checks.

And its optional ``sentinel`` profile: a replica with its own AOF and three
sentinels watching the primary, named by the ``redis+sentinel://`` URL the file
documents for ``CREDITS_REDIS_URL``.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from worker_rig import REPO_ROOT

from credits.sentinel import parse_sentinel_url

SERVICES = ("redis", "worker", "beat", "flower")
SENTINEL_PROFILE = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return loaded


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def default_of(value: str) -> str:
    """``${VAR:-default}`` → ``default``; anything else as it is."""
    if value.startswith("${") and ":-" in value:
        return value.split(":-", 1)[1].removesuffix("}")
    return value


def test_it_has_the_four_services_each_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_redis_7_appends_only_to_a_volume_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = command_of(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"  # the only copy
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data"
    assert volume in compose["volumes"]


def test_celery_services_wait_for_a_healthy_redis_and_use_it(compose: dict[str, Any]) -> None:
    for name in ("worker", "beat", "flower"):
        service = compose["services"][name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        url = default_of(service["environment"]["CREDITS_REDIS_URL"])
        assert url.startswith("redis://redis:6379"), name
        assert default_of(service["environment"]["CREDITS_WAIT_REPLICAS"]) == "0", name
    assert command_of(compose["services"]["worker"])[:4] == [
        "celery",
        "-A",
        "credits.tasks",
        "worker",
    ]
    assert command_of(compose["services"]["beat"])[:4] == ["celery", "-A", "credits.tasks", "beat"]


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    beats = [name for name, service in compose["services"].items() if "beat" in command_of(service)]
    assert beats == ["beat"]
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1
    assert "--beat" not in command_of(compose["services"]["worker"])


def test_flower_takes_its_basic_auth_from_the_environment(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert command_of(flower)[:3] == ["python", "-m", "credits.tasks.flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH")
    assert any(str(port).endswith(":5555") for port in flower["ports"])


def test_the_image_installs_the_worker_extras_and_no_embedded_server() -> None:
    """The Celery settings ship inside the package; compose runs its own Redis."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "celeryconfig.py" not in dockerfile
    install = dockerfile.split("pip install", 1)[1].split("\n", 1)[0]
    assert '-c constraints.txt ".[worker,flower,webhooks,http,cli]"' in install
    assert "embedded" not in install


def test_the_image_builds_from_exact_versions() -> None:
    """Every requirement of what the image installs is pinned (==) in constraints.txt."""
    import tomllib

    from packaging.requirements import Requirement

    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    pins = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("worker", "flower", "webhooks", "http", "cli"):
        wanted += project["optional-dependencies"][extra]
    for text in wanted:
        requirement = Requirement(text)
        if requirement.name == "credits":
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is out of range"


def test_the_api_serves_the_http_app_with_a_health_check(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert command_of(api)[:2] == ["uvicorn", "credits.http:app"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_the_sentinel_profile_adds_a_replica_and_three_sentinels(compose: dict[str, Any]) -> None:
    services = compose["services"]
    in_profile = {name for name, s in services.items() if "sentinel" in s.get("profiles", [])}
    assert in_profile == set(SENTINEL_PROFILE)
    assert all("profiles" not in services[name] for name in SERVICES), "the default stays one Redis"
    replica = command_of(services["redis-replica"])
    assert replica[replica.index("--replicaof") + 1 : replica.index("--replicaof") + 3] == [
        "redis",
        "6379",
    ]
    # WAITAOF (Redis 7.2+) is acknowledged only by a replica that fsyncs an AOF of its own.
    assert replica[replica.index("--appendonly") + 1] == "yes"
    assert replica[replica.index("--maxmemory-policy") + 1] == "noeviction"
    url = parse_sentinel_url(compose["x-sentinel-url"])
    assert {host for host, _ in url.sentinels} == {"sentinel-1", "sentinel-2", "sentinel-3"}
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        service = services[name]
        script = command_of(service)[-1]
        assert f"sentinel monitor {url.service} redis 6379 2" in script, name
        assert "sentinel resolve-hostnames yes" in script, name
        assert script.rstrip().endswith("--sentinel"), name
        assert service["healthcheck"]["test"][-1] == "ping", name
        assert {port for _, port in url.sentinels} == {26379}
        assert service["depends_on"]["redis-replica"]["condition"] == "service_healthy", name
