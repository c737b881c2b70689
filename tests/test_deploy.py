"""The deployment files agree with the code: every variable `bot/config.py` reads is in
app.json and .env.example, and the Procfile, the Dockerfile and compose.yaml run real
`usage-bot` commands the same way."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import Settings

ROOT = Path(__file__).parent.parent
CONFIG = (ROOT / "bot" / "config.py").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Every variable the code reads, and the secrets among them, from the source itself: a
# variable added to config.py without app.json and .env.example fails here.
NAMES = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', CONFIG))
SECRETS = set(re.findall(r'reader\.(?:secret|database_url)\(\s*"([A-Z_]+)"', CONFIG))
# Set by the platform, never by the user: Heroku gives each dyno its PORT and DYNO, and the
# Postgres add-on sets DATABASE_URL (an app.json value would clash with the add-on's).
PLATFORM = {"PORT", "DYNO", "DATABASE_URL"}


def test_the_variables_are_found_in_the_source() -> None:
    assert {"USAGE_API_KEY", "SLACK_BOT_TOKEN", "BOT_API_TOKEN", "DATABASE_URL"} <= NAMES
    assert {"USAGE_API_KEY", "SLACK_SIGNING_SECRET", "BUDGET_WEBHOOK_SECRET"} <= SECRETS
    assert "LOG_LEVEL" not in SECRETS and PLATFORM <= NAMES


# -- Procfile ------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_procfile_runs_the_console_script() -> None:
    assert procfile() == {
        "release": "usage-bot migrate",
        "worker": "usage-bot run",
        "web": "usage-bot serve",
    }
    assert PYPROJECT["project"]["scripts"]["usage-bot"] == "bot.cli:main"


def test_every_deployed_command_is_a_real_subcommand() -> None:
    """Each `usage-bot SUB` in the Procfile, the Dockerfile and compose.yaml, run as
    `usage-bot SUB --help` through the installed console script, exits 0."""
    commands = {*procfile().values(), shlex.join(dockerfile_cmd())}
    commands |= {service["command"] for service in bot_services().values()}
    subs = set()
    for command in commands:
        program, sub = shlex.split(command)
        assert program == "usage-bot", command
        subs.add(sub)
    assert subs == {"migrate", "run", "serve"}
    script = Path(sys.executable).parent / "usage-bot"
    runs = {
        sub: subprocess.Popen(
            [str(script), sub, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for sub in sorted(subs)
    }
    for sub, run in runs.items():
        out, err = run.communicate(timeout=30)
        assert run.returncode == 0, (sub, err.decode())
        assert f"usage: usage-bot {sub}" in out.decode()


# -- Heroku: app.json, requirements.txt, .python-version ------------------------------


@pytest.fixture(scope="module")
def app() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((ROOT / "app.json").read_text())
    return manifest


def test_app_json_provisions_postgres_and_one_worker(app: dict[str, Any]) -> None:
    assert app["name"] and app["description"] and len(app["description"]) <= 140
    assert urlsplit(app["repository"]).scheme == "https"
    assert {"plan": "heroku-postgresql"} in app["addons"]
    assert app["formation"]["worker"]["quantity"] == 1
    assert set(app["formation"]) <= set(procfile()) - {"release"}
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    assert "postdeploy" not in app.get("scripts", {})  # the release phase migrates


def test_app_json_describes_every_variable_but_the_platforms(app: dict[str, Any]) -> None:
    env = app["env"]
    assert set(env) == NAMES - PLATFORM, "app.json env must list what config.py reads"
    for name, entry in env.items():
        assert isinstance(entry, dict) and entry["description"].strip(), name
        assert isinstance(entry["required"], bool), name
        assert set(entry) <= {"description", "required", "value", "generator"}, name
    assert env["USAGE_API_KEY"]["required"] and env["SLACK_BOT_TOKEN"]["required"]
    assert env["BOT_API_TOKEN"]["generator"] == "secret"


def test_app_json_gives_no_secret_a_value_and_only_valid_defaults(app: dict[str, Any]) -> None:
    env = app["env"]
    assert not [name for name in SECRETS if "value" in env.get(name, {})]
    values = {name: entry["value"] for name, entry in env.items() if "value" in entry}
    assert values and all(isinstance(v, str) for v in values.values())
    Settings.from_env(values)  # every default is accepted as it is (else ConfigError)


def test_heroku_builds_the_package_on_python_3_11() -> None:
    """The Python buildpack installs from requirements.txt (not pyproject.toml) and fails
    on more than one package manager file; `.` installs the package and its script."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line.strip() and not line.startswith("#")] == ["."]
    for other in ("Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "runtime.txt"):
        assert not (ROOT / other).exists(), other
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


# -- Docker ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, args = line.strip().partition(" ")
            steps.append((instruction.upper(), args.strip()))
    return steps


def dockerfile_cmd() -> list[str]:
    cmds = [args for instruction, args in dockerfile() if instruction == "CMD"]
    command: list[str] = json.loads(cmds[-1])  # exec form: PID 1 gets the SIGTERM
    return command


def test_the_dockerfile_runs_the_worker_as_a_plain_user() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert dockerfile_cmd() == shlex.split(procfile()["worker"])
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(i == "ENV" and "PYTHONUNBUFFERED=1" in a.split() for i, a in steps)
    text = (ROOT / "Dockerfile").read_text()
    assert "usage-bot serve" in text and "usage-bot migrate" in text  # the same image


def test_the_dockerfile_installs_the_package_without_dev_extras() -> None:
    steps = dockerfile()
    pips = [args for instruction, args in steps if instruction == "RUN" and "pip " in args]
    assert len(pips) == 1
    install = shlex.split(pips[0].split("&&")[0])
    assert install[:3] == ["pip", "install", "--no-cache-dir"] and install[3:] == ["."]
    # What the build reads must be copied in before it: pyproject.toml, the readme it
    # names, and every package it finds; and rules.yaml, BOT_RULES_PATH's default.
    copied = set()
    for instruction, args in steps:
        if instruction == "COPY":
            copied |= {source.rstrip("/") for source in args.split()[:-1]}
    packages = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], "rules.yaml", *packages}
    assert needed <= copied
    assert Settings().rules_path == "rules.yaml"
    # ...and none of it may be left out of the build context by .dockerignore.
    ignored = [
        line.rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".env", ".venv", ".git", "*.db"} <= set(ignored)
    assert not [(p, g) for p in needed for g in ignored if fnmatch.fnmatch(p, g)]


# -- compose ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def bot_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {name: services[name] for name in ("migrate", "worker", "web")}


def test_compose_runs_the_procfile_commands_after_postgres_and_migrate() -> None:
    document = compose()
    postgres = document["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in document["volumes"]  # a named volume, not a folder
    commands = procfile()
    for name, service in bot_services().items():
        process = {"migrate": "release"}.get(name, name)
        assert service["command"] == commands[process], name
        assert service["build"] == "." and service["env_file"] == ".env", name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }


def test_compose_points_every_process_at_its_postgres() -> None:
    postgres = compose()["services"]["postgres"]["environment"]
    for name, service in bot_services().items():
        url = urlsplit(service["environment"]["DATABASE_URL"])
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert url.path == "/" + postgres["POSTGRES_DB"]
        Settings.from_env(service["environment"])  # accepted as it is
    web = bot_services()["web"]
    port = web["environment"]["PORT"]
    assert [f"{port}:{port}"] == web["ports"]


# -- .env.example ------------------------------------------------------------------------


def test_env_example_names_every_variable_and_holds_no_secret() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assigned = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))
    commented = {m[1] for line in lines if (m := re.match(r"^#\s*([A-Z_]+)=", line))}
    assert set(assigned) | commented == NAMES
    assert commented <= PLATFORM  # only what the user never sets is left commented out
    assert not [n for n in SECRETS if assigned.get(n)], "a secret has a value"
    assert not [v for v in assigned.values() if "#" in v]  # docker run keeps inline comments
    Settings.from_env(assigned)  # every default is accepted as it is
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
