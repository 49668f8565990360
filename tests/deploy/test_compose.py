"""deploy/compose.yaml, read as YAML (no Docker needed): the lab's services are there,
separate, each with the environment and the shared store it needs to run on a machine
of its own (deploy/README.md, "Several machines")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP_SERVICES = ("web", "worker-cpu", "worker-gpu", "beat")
STORE = "/srv/statelab/var"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _command(service: dict[str, Any]) -> str:
    cmd = service["command"]
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def test_web_workers_and_beat_are_separate_services_on_one_store():
    compose = _compose()
    services = compose["services"]
    assert set(APP_SERVICES) | {"db", "redis"} <= set(services)
    for name in APP_SERVICES:
        service = services[name]  # the YAML anchor merged in: each service has it all
        assert service["env_file"] == ".env", name
        assert f"store:{STORE}" in service["volumes"], name
        assert service["environment"]["STATELAB_VAR_DIR"] == STORE, name
    assert "store" in compose["volumes"]


def test_each_worker_takes_its_queue_with_a_node_name_of_its_own():
    services = _compose()["services"]
    cpu, gpu = _command(services["worker-cpu"]), _command(services["worker-gpu"])
    assert "-Q cpu" in cpu and "-n cpu@%h" in cpu and "--prefetch-multiplier 1" in cpu
    assert "-Q gpu" in gpu and "-n gpu@%h" in gpu and "--concurrency 1" in gpu
    assert "beat" in _command(services["beat"]) and "migrate" in _command(services["web"])
    # Scaling (`--scale worker-cpu=3`) needs no fixed container name or host port.
    assert "container_name" not in services["worker-cpu"]
    assert "ports" not in services["worker-cpu"]


def test_env_example_names_what_every_machine_needs():
    example = (DEPLOY / "env.example").read_text()
    for key in ("DATABASE_URL=", "CELERY_BROKER_URL=", "SECRET_KEY="):
        assert key in example, key
    readme = (DEPLOY / "README.md").read_text()
    for word in ("DATABASE_URL", "CELERY_BROKER_URL", "--scale worker-cpu=3", "NFS"):
        assert word in readme, word
