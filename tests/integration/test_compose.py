"""The production compose file: valid, complete, and refusing to start without its secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # installed with uvicorn[standard]

from contracts.topics import TOPICS
from stallkit.keys import Issuer, TokenKeys
from stalltest.tokens import fresh_key, jwks_of

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

APP_SERVICES = ("allocation", "windows", "inspection", "reporting")
INFRA_SERVICES = ("kafka", "kafka-init", "redis")
PUBLISHED_PORTS = {"allocation": 8001, "windows": 8002, "inspection": 8003, "reporting": 8004}

VENDOR_TOKEN_KEY = fresh_key(Issuer.ALLOCATION)
SECRETS = {
    "REDIS_PASSWORD": "0f9c2d7e41b6a8553c0e9d17f2a4b6c8",
    "STALL_TOKEN_JWKS": jwks_of(VENDOR_TOKEN_KEY, fresh_key(Issuer.STAFF)),
    "ALLOCATION_TOKEN_SIGNING_KEY": "ZHVtbXktdG9rZW4tc2VlZC1mb3ItY29uZmlnLWNoZWM=",
    "ALLOCATION_STALL_CODE_SIGNING_KEY": "ZHVtbXktc2VlZC1mb3ItY29uZmlnLWNoZWNrLTMyYg==",
    "INSPECTION_STALL_CODE_PUBLIC_KEY": "ZHVtbXktcHVibGljLWtleS1mb3ItY29uZmlnLWNoZWM=",
    "INSPECTION_SUBJECT_SALT": "5b1e0c7d9a2f4e68b3c1d0e9f8a7b6c5",
    "ALLOCATION_IDENTITY_SALT": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
    "ALLOCATION_SMS_GATEWAY_URL": "https://sms.example.gov.cn/send",
    "ALLOCATION_SMS_GATEWAY_TOKEN": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
}
#: Retired: its value must not reach any service.
RETIRED = {"STALL_JWT_SECRET": "an-old-shared-jwt-secret-nobody-should-use"}


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """The docker-compose executable; its absence is a broken setup, not a reason to skip."""
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "the docker-compose executable is not installed: run `make deps` "
            "(it installs Debian's docker-compose package)",
            pytrace=False,
        )
    return path


def run_config(
    docker_compose: str, tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on the repository's file with exactly the given secrets."""
    # An empty env file, so that a developer's local .env cannot supply (or hide) a secret.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in SECRETS and k not in RETIRED and not k.startswith("COMPOSE_")
    }
    return subprocess.run(
        [
            docker_compose,
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *args,
        ],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(docker_compose: str, tmp_path: Path) -> dict[str, Any]:
    """The resolved compose configuration with dummy secrets set."""
    result = run_config(docker_compose, tmp_path, {**SECRETS, **RETIRED})
    assert result.returncode == 0, result.stderr
    parsed = yaml.safe_load(result.stdout)
    assert isinstance(parsed, dict)
    return parsed


def test_config_is_valid(docker_compose: str, tmp_path: Path) -> None:
    result = run_config(docker_compose, tmp_path, SECRETS, "-q")
    assert result.returncode == 0, result.stderr


def test_lists_exactly_the_expected_services(docker_compose: str, tmp_path: Path) -> None:
    result = run_config(docker_compose, tmp_path, SECRETS, "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {*APP_SERVICES, *INFRA_SERVICES}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_is_healthchecked_and_waits_for_infrastructure(
    config: dict[str, Any], service: str
) -> None:
    spec = config["services"][service]
    assert spec["healthcheck"]["test"], f"{service} has no healthcheck"
    assert "/healthz" in " ".join(spec["healthcheck"]["test"])
    depends_on = spec["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert depends_on["kafka-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_runs_in_production_mode_from_the_shared_dockerfile(
    config: dict[str, Any], service: str
) -> None:
    spec = config["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["build"]["args"]["SERVICE"] == service
    env = spec["environment"]
    assert env["STALL_MODE"] == "prod"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["REDIS_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    assert "STALL_JWT_SECRET" not in env
    assert RETIRED["STALL_JWT_SECRET"] not in str(env)
    assert env["STALL_TOKEN_JWKS"] == SECRETS["STALL_TOKEN_JWKS"]
    assert VENDOR_TOKEN_KEY.kid in TokenKeys.parse(env["STALL_TOKEN_JWKS"])  # public keys only
    assert spec["restart"] == "unless-stopped"
    published = {int(port["published"]) for port in spec["ports"]}
    assert published == {PUBLISHED_PORTS[service]}


def test_stall_code_keys_go_only_where_they_are_used(config: dict[str, Any]) -> None:
    services = config["services"]
    signing_key = "ALLOCATION_STALL_CODE_SIGNING_KEY"
    public_key = "INSPECTION_STALL_CODE_PUBLIC_KEY"
    assert services["allocation"]["environment"][signing_key] == SECRETS[signing_key]
    assert services["inspection"]["environment"][public_key] == SECRETS[public_key]
    token_key = "ALLOCATION_TOKEN_SIGNING_KEY"
    assert services["allocation"]["environment"][token_key] == SECRETS[token_key]
    for service in APP_SERVICES:
        if service != "allocation":
            assert signing_key not in services[service]["environment"]
            assert token_key not in services[service]["environment"]
            assert SECRETS[token_key] not in str(services[service])


def test_redis_requires_the_password_and_its_healthcheck_uses_it(config: dict[str, Any]) -> None:
    redis = config["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == SECRETS["REDIS_PASSWORD"]
    assert redis["environment"]["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"]
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli ping" in check
    assert "PONG" in check  # an unauthenticated ping exits 0 too, with a NOAUTH error


def test_infrastructure_is_healthchecked_and_durable(config: dict[str, Any]) -> None:
    services = config["services"]
    kafka_env = services["kafka"]["environment"]
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]
    assert str(kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    # Acknowledged bookings survive a power loss (deploy/README.md, Durability).
    assert redis_command[redis_command.index("--appendfsync") + 1] == "always"
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["redis"]["volumes"], "redis has no volume for its AOF"
    init_depends = services["kafka-init"]["depends_on"]
    assert init_depends["kafka"]["condition"] == "service_healthy"


def test_kafka_init_creates_the_contract_topics_from_a_service_image(
    config: dict[str, Any],
) -> None:
    """kafka-init runs stallkit.topics, whose list is contracts/topics.py; compose has none."""
    services = config["services"]
    init = services["kafka-init"]
    assert init["command"][:3] == ["python", "-m", "stallkit.topics"]
    assert init["build"]["dockerfile"] == "deploy/Dockerfile"
    image_of = init["build"]["args"]["SERVICE"]
    assert image_of in APP_SERVICES
    assert init["image"] == services[image_of]["image"]
    assert init["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(init["restart"]) == "no"
    text = COMPOSE_FILE.read_text()
    listed = [topic.name for topic in TOPICS.values() if topic.name in text]
    assert not listed, f"topics listed in docker-compose.yml beside contracts/topics.py: {listed}"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_config_fails_without_a_required_secret(
    docker_compose: str, tmp_path: Path, secret: str
) -> None:
    env = {k: v for k, v in SECRETS.items() if k != secret}
    result = run_config(docker_compose, tmp_path, env, "-q")
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr
