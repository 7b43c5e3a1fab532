"""deploy/k8s, the Kustomize base: it builds, every core resource is valid for Kubernetes, each
service runs as docker-compose.yml runs it (image, settings, port), probes hit routes the
services serve, every secret reference resolves, and topics.yaml is what ``stallctl
k8s-topics`` writes from contracts/topics.py.

No ``kustomize`` binary is at hand, so :func:`build` does what ``kustomize build`` does with the
parts of a kustomization this base uses, and refuses any other part. Generated ConfigMaps and
Secrets keep their plain names: kustomize appends a content hash to each and renames every
reference to it alike, which changes no check here.
"""

from __future__ import annotations

import base64
import importlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource
from typer.testing import CliRunner

from contracts.topics import TOPICS
from stallctl.cli import app as stallctl
from stallctl.k8s import kafka_topics, render_topics
from stallctl.keytool import KeyKind, merged_jwks, new_key_pair
from stallkit.keys import Issuer, SigningKey, new_seed
from stallkit.service import ServiceParts, build_service, make_redis
from stallkit.settings import CommonSettings, Mode

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"
STRIMZI = "kafka.strimzi.io/v1beta2"
#: Kinds without a namespace, among those this base may hold.
CLUSTER_SCOPED = {"Namespace"}
#: What a kustomization may say for :func:`build` to build it like kustomize does.
KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator",
                "secretGenerator", "images"}  # fmt: skip


@dataclass
class Build:
    """The resources ``kustomize build`` would print, and what the generators were given."""

    resources: list[dict[str, Any]]
    #: (kind, name) of each generated ConfigMap or Secret -> its data as text
    generated: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    #: keys whose comment in the generator's env file says REPLACE
    to_replace: set[str] = field(default_factory=set)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [r for r in self.of_kind(kind) if r["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]


def read_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """KEY=VALUE lines as kustomize reads them, and the keys whose comment says REPLACE."""
    data: dict[str, str] = {}
    to_replace: set[str] = set()
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.lstrip()
        if not line:
            comment = []
        elif line.startswith("#"):
            comment.append(line)
        else:
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} would be read from the environment of `kustomize`"
            data[key] = value
            if any("REPLACE" in c for c in comment):
                to_replace.add(key)
            comment = []
    return data, to_replace


def build(base: Path) -> Build:
    """The resources of the kustomization in ``base``, generated ones included."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - KNOWN_FIELDS
    assert not unknown, f"this test's build does not know {sorted(unknown)}: teach it"
    result = Build([])
    for name in kustomization.get("resources", []):
        path = base / name
        assert path.is_file(), f"resource {name} is not a file (no nested kustomizations here)"
        docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        result.resources += [doc for doc in docs if doc is not None]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            assert set(generator) <= {"name", "envs", "literals"}, generator
            data: dict[str, str] = {}
            for env_file in generator.get("envs", []):
                values, to_replace = read_env_file(base / env_file)
                data |= values
                result.to_replace |= to_replace
            for literal in generator.get("literals", []):
                literal_key, _, value = literal.partition("=")
                data[literal_key] = value
            resource: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": generator["name"]},
            }
            if kind == "Secret":
                resource["type"] = "Opaque"
                resource["data"] = {
                    k: base64.b64encode(v.encode()).decode() for k, v in data.items()
                }
            else:
                resource["data"] = data
            result.resources.append(resource)
            result.generated[kind, generator["name"]] = data
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for container in all_containers(result):
        name, _, tag = container["image"].partition(":")
        entry = images.get(name, {})
        name, tag = entry.get("newName", name), entry.get("newTag", tag)
        container["image"] = f"{name}:{tag}" if tag else name
    for resource in result.resources:
        if "namespace" in kustomization and resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return result


def all_containers(built: Build) -> Iterator[dict[str, Any]]:
    for deployment in built.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        yield from pod.get("initContainers", []) + pod["containers"]


@pytest.fixture(scope="module")
def built() -> Build:
    return build(BASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return parsed


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose's services built from the Dockerfile that run its command (not kafka-init)."""
    return {
        name: spec
        for name, spec in compose["services"].items()
        if "build" in spec and "command" not in spec
    }


def dockerfile() -> str:
    return (REPO_ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")


def container(built: Build, service: str) -> dict[str, Any]:
    containers = built.named("Deployment", service)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def settings_class(service: str) -> type[CommonSettings]:
    """The one settings class a service's config module defines."""
    module = importlib.import_module(f"{service}.config")
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, CommonSettings) and c.__module__ == module.__name__
    ]
    assert len(classes) == 1, classes
    return classes[0]


#: Variables the server (uvicorn) reads, not the service's settings.
SERVER_VARIABLES = {"FORWARDED_ALLOW_IPS"}


def container_env(built: Build, service: str) -> dict[str, str]:
    """The environment the container starts with (references resolved)."""
    env: dict[str, str] = {}
    spec = container(built, service)
    for source in spec.get("envFrom", []):
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source.get("configMapRef") or source["secretRef"]
        env |= built.generated[kind, ref["name"]]
    for var in spec.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref_kind, ref = next(iter(var["valueFrom"].items()))
        kind = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}[ref_kind]
        env[var["name"]] = built.generated[kind, ref["name"]][ref["key"]]
    return env


def test_every_core_resource_is_valid_for_kubernetes(built: Build) -> None:
    errors = []
    core = [r for r in built.resources if r["apiVersion"] != STRIMZI]
    for resource in core:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(
                f"{resource['kind']}/{resource['metadata']['name']} {path}: {exc.message}"
            )
    assert not errors, "\n".join(errors)
    assert {r["kind"] for r in core} >= {"Deployment", "Service", "Secret", "ConfigMap"}


def test_everything_is_in_the_namespace_the_base_creates(built: Build) -> None:
    (namespace,) = built.of_kind("Namespace")
    name = namespace["metadata"]["name"]
    others = [r for r in built.resources if r["kind"] not in CLUSTER_SCOPED]
    assert {r["metadata"].get("namespace") for r in others} == {name}


def test_each_compose_service_has_a_deployment_service_pdb_and_hpa(
    built: Build, compose: dict[str, Any]
) -> None:
    services = app_services(compose)
    assert set(services) == {p.name for p in (REPO_ROOT / "services").iterdir() if p.is_dir()}
    assert {d["metadata"]["name"] for d in built.of_kind("Deployment")} == set(services)
    for name in services:
        deployment = built.named("Deployment", name)
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert deployment["spec"]["replicas"] == 2
        assert built.named("Service", name)["spec"]["selector"] == selector
        pdb = built.named("PodDisruptionBudget", name)
        assert (pdb["spec"]["minAvailable"], pdb["spec"]["selector"]["matchLabels"]) == (
            1,
            selector,
        )
        hpa = built.named("HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        # CPU utilisation is measured against the request, and the memory limit stops a leak.
        resources = container(built, name)["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys() & resources["limits"].keys()


def test_each_deployment_runs_the_compose_image_and_its_command(
    built: Build, compose: dict[str, Any]
) -> None:
    for name, spec in app_services(compose).items():
        assert spec["build"]["args"]["SERVICE"] == name
        # ${STALL_IMAGE_PREFIX:-zhuhai-markets}/allocation:${STALL_IMAGE_TAG:-latest}, defaults
        compose_image = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", spec["image"])
        repository = compose_image.rpartition(":")[0]
        image = container(built, name)["image"]
        assert image.rpartition(":")[0] == repository
        assert image.rpartition(":")[2] not in ("", "latest"), "pin a release"
        # Compose runs the image's command; so does the Deployment.
        assert "command" not in container(built, name)
        assert "args" not in container(built, name)


def test_probes_and_the_service_reach_the_port_the_image_listens_on(built: Build) -> None:
    (port,) = {int(p) for p in re.findall(r"--port (\d+)", dockerfile())}
    for deployment in built.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        spec = container(built, name)
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        assert set(ports.values()) == {port}

        def resolve(target: str | int, ports: dict[str, int] = ports) -> int:
            return ports[target] if isinstance(target, str) else target

        probes = {kind: spec[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"]["path"] == "/readyz"
        assert probes["livenessProbe"]["path"] == "/healthz"
        assert {resolve(p["port"]) for p in probes.values()} == {port}
        service_ports = built.named("Service", name)["spec"]["ports"]
        assert {resolve(p["targetPort"]) for p in service_ports} == {port}


async def test_the_probed_paths_are_routes_every_service_serves(built: Build) -> None:
    with mock.patch.dict(os.environ, {}, clear=True):
        parts = ServiceParts.from_settings(CommonSettings())
    app = build_service(parts, title="probe", description="probe", configure_logs=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://service"
        ) as client:
            paths = set((await client.get("/openapi.json")).json()["paths"])
    finally:
        await parts.redis.aclose()
    for deployment in built.of_kind("Deployment"):
        spec = container(built, deployment["metadata"]["name"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in spec:
                assert spec[probe]["httpGet"]["path"] in paths, probe


def test_every_env_var_is_a_setting_of_its_service_and_compose_sets_none_missing(
    built: Build, compose: dict[str, Any]
) -> None:
    for name, spec in app_services(compose).items():
        settings = settings_class(name)
        env = container_env(built, name)
        for var, value in env.items():
            if var in SERVER_VARIABLES:
                continue
            with mock.patch.dict(os.environ, {var: value}, clear=True):
                assert EnvSettingsSource(settings)(), f"{name}: {var} is no setting of {settings}"
        assert spec["environment"].keys() <= env.keys(), f"{name} misses settings compose sets"
        # What compose spells out literally is the same here; the broker's address differs.
        literal = {k: v for k, v in spec["environment"].items() if "${" not in str(v)}
        literal.pop("KAFKA_BOOTSTRAP_SERVERS")
        assert {k: env[k] for k in literal} == literal


def test_allocation_believes_the_ingress_about_client_addresses(built: Build) -> None:
    # Its login and registration limits count per client address (X-Forwarded-For).
    trusted = container_env(built, "allocation")["FORWARDED_ALLOW_IPS"].split(",")
    assert trusted
    assert "*" not in trusted
    for network in trusted:
        ipaddress.ip_network(network.strip())


def test_kafka_bootstrap_is_the_strimzi_cluster_of_the_topics(built: Build) -> None:
    clusters = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in built.of_kind("KafkaTopic")}
    for deployment in built.of_kind("Deployment"):
        bootstrap = container_env(built, deployment["metadata"]["name"])["KAFKA_BOOTSTRAP_SERVERS"]
        assert {f"{c}-kafka-bootstrap" for c in clusters} == {bootstrap.split(".")[0].split(":")[0]}


def operator_values() -> dict[str, str]:
    """Values for what an operator must supply, fresh for this test run."""
    vendor_seed = new_seed()
    vendor_jwks = SigningKey.from_seed(Issuer.ALLOCATION, vendor_seed).jwks()
    staff = SigningKey.from_seed(Issuer.STAFF, new_seed())
    code_signing, code_public, _ = new_key_pair(KeyKind.STALL_CODES)
    values = dict(line.split("=", 1) for line in (code_signing, code_public))
    return values | {
        "ALLOCATION_TOKEN_SIGNING_KEY": vendor_seed,
        "STALL_TOKEN_JWKS": merged_jwks(staff, [json.dumps(vendor_jwks)]),
        "REDIS_URL": "redis://:0f9c2d7e41b6a8553c0e9d17f2a4b6c8@redis:6379/0",
        "ALLOCATION_IDENTITY_SALT": os.urandom(16).hex(),
        "INSPECTION_SUBJECT_SALT": os.urandom(16).hex(),
        "ALLOCATION_SMS_GATEWAY_URL": "https://sms.example.gov.cn/send",
        "ALLOCATION_SMS_GATEWAY_TOKEN": os.urandom(16).hex(),
    }


async def starts(settings: type[CommonSettings], env: dict[str, str]) -> bool:
    """Whether the service's settings load from ``env`` and its Redis client can be made."""
    with mock.patch.dict(os.environ, env, clear=True):
        try:
            loaded = settings()
            redis = make_redis(loaded)
        except (ValidationError, ValueError):
            return False
    await redis.aclose()
    assert loaded.mode is Mode.PROD
    return True


async def test_production_settings_load_once_the_placeholders_are_replaced(
    built: Build, compose: dict[str, Any]
) -> None:
    values = operator_values()
    unknown = built.to_replace - values.keys()
    assert not unknown, f"give this test a value for {sorted(unknown)}"
    for name in app_services(compose):
        settings = settings_class(name)
        env = container_env(built, name)
        replaced = env | {k: values[k] for k in env.keys() & built.to_replace}
        with mock.patch.dict(os.environ, replaced, clear=True):
            read = EnvSettingsSource(settings)()
        required = {n for n, f in settings.model_fields.items() if f.is_required()}
        assert required <= read.keys(), f"{name}: required settings unset"
        assert await starts(settings, replaced), f"{name} does not start with real values"
        # A placeholder left in place stops the service, rather than running on it.
        for key in env.keys() & built.to_replace:
            assert not await starts(settings, replaced | {key: env[key]}), (name, key)


def test_secret_files_hold_placeholders_only(built: Build) -> None:
    secrets = {k: v for (kind, _), data in built.generated.items() if kind == "Secret"
               for k, v in data.items()}  # fmt: skip
    assert secrets, "no Secret is generated"
    assert {k: v for k, v in secrets.items() if v} == {}, "a secret value is in the repository"
    assert secrets.keys() <= built.to_replace, "mark each placeholder with a REPLACE comment"


def test_every_reference_resolves_and_every_generated_key_is_used(built: Build) -> None:
    used: set[tuple[str, str, str]] = set()
    claims = {c["metadata"]["name"] for c in built.of_kind("PersistentVolumeClaim")}
    for deployment in built.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for var in container(built, deployment["metadata"]["name"]).get("env", []):
            for ref_kind, ref in var.get("valueFrom", {}).items():
                kind = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}[ref_kind]
                data = built.generated.get((kind, ref["name"]))
                assert data is not None, f"{var['name']}: no {kind} {ref['name']}"
                assert ref["key"] in data, f"{var['name']}: {kind} {ref['name']} has no such key"
                used.add((kind, ref["name"], ref["key"]))
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    generated = {
        (kind, name, key) for (kind, name), data in built.generated.items() for key in data
    }
    assert generated - used == set(), "generated but never used"


def test_pods_run_locked_down_with_writable_paths_on_volumes(built: Build) -> None:
    (uid,) = re.findall(r"--uid (\d+)", dockerfile())
    for deployment in built.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        # Service links would add ALLOCATION_PORT and the like, in the settings' env prefix.
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(uid)  # the image's user is a name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        spec = container(built, name)
        security = spec["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["readOnlyRootFilesystem"] is True
        assert not security.get("privileged", False)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in spec.get("volumeMounts", [])}
        assert "emptyDir" in mounts["/tmp"], "uploads spool to /tmp"
        for var, value in container_env(built, name).items():
            if value.startswith("/"):  # a folder the service writes (evidence photos)
                mount = next((m for m in mounts if Path(value).is_relative_to(m)), None)
                assert mount is not None, f"{name}: {var}={value} is on the read-only root"
                claim = mounts[mount].get("persistentVolumeClaim")
                if claim and deployment["spec"]["replicas"] > 1:
                    modes = built.named("PersistentVolumeClaim", claim["claimName"])
                    assert "ReadWriteMany" in modes["spec"]["accessModes"], "shared by replicas"


def test_kafka_topics_are_every_contract_topic_with_its_partitions(built: Build) -> None:
    topics = built.of_kind("KafkaTopic")
    assert {t["apiVersion"] for t in topics} == {STRIMZI}
    by_name = {t["spec"]["topicName"]: t for t in topics}
    assert len(by_name) == len(topics)
    assert by_name.keys() == {t.name for t in TOPICS.values()}
    assert TOPICS["dead_letter"].name in by_name
    for topic in TOPICS.values():
        spec = by_name[topic.name]["spec"]
        assert spec["partitions"] == topic.partitions
        assert spec["replicas"] > spec["config"]["min.insync.replicas"] >= 1
        assert by_name[topic.name]["metadata"]["labels"]["strimzi.io/cluster"]


def test_topics_yaml_is_what_the_generator_writes() -> None:
    text = (BASE / "topics.yaml").read_text(encoding="utf-8")
    assert text == render_topics(), "stale: run `uv run --frozen stallctl k8s-topics`"
    assert list(yaml.safe_load_all(text)) == kafka_topics()


def test_stallctl_k8s_topics_checks_and_rewrites_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "libs" / "stallkit").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    topics = tmp_path / "deploy" / "k8s" / "topics.yaml"
    topics.parent.mkdir(parents=True)
    topics.write_text(render_topics().replace("partitions: 12", "partitions: 3"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(stallctl, ["k8s-topics", "--check"]).exit_code == 1
    assert runner.invoke(stallctl, ["k8s-topics"]).exit_code == 0
    assert topics.read_text() == render_topics()
    assert runner.invoke(stallctl, ["k8s-topics", "--check"]).exit_code == 0
