"""deploy/README.md as a user follows it, as far as it runs here: the guide's own commands write the
credentials (Compose's ``deploy/.env``, Kubernetes' ``credentials.env``), kustomize renders the manifests,
and ``archiver run`` starts with exactly the environment and config the container would get (only the
data folder, the Blink server (the simulator, with the guide's placeholder credentials) and the port are
redirected). A worker that exits (the UI refused on 0.0.0.0 without a password: exit 2) fails the test:
under Compose or Kubernetes it would restart forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from dotenv import dotenv_values
from helpers import free_port
from test_deploy import (
    BASE,
    DEPLOY,
    KUSTOMIZE,
    _env_of,
    archiver_container,
    deploy_copy,
    find,
    kustomize,
    pod_specs,
    run_guide,
)

from archiver.simulator import SimConfig, Simulator

CLI = [sys.executable, "-c", "import archiver.cli.worker; from archiver.cli import main; main()"]
GUIDE_USER, GUIDE_PASSWORD = "you@example.com", "your-blink-password"  # the guide's placeholders

pytestmark = pytest.mark.skipif(KUSTOMIZE is None, reason="neither kubectl nor kustomize is installed")


@pytest.fixture
def blink() -> Iterator[Simulator]:
    """Blink, accepting the guide's example credentials (no 2FA: the login step is not the point)."""
    with Simulator(SimConfig(two_factor=False, username=GUIDE_USER, password=GUIDE_PASSWORD)) as sim:
        sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 2)
        yield sim


def start_worker(
    tmp_path: Path, container_env: dict[str, str], toml_text: str, sim: Simulator
) -> tuple[subprocess.Popen[str], int, Path]:
    """``archiver run`` with the container's environment; /config, /data and the port redirected."""
    config = tmp_path / "config" / "archiver.toml"
    config.parent.mkdir()
    config.write_text(toml_text)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "AWS_"))}
    env.update(container_env)
    env.update(
        ARCHIVER_CONFIG=str(config),
        ARCHIVER_DATA_DIR=str(tmp_path / "data"),
        TMPDIR=str(tmp_path),
        ARCHIVER_BLINK__SERVER_URL=sim.url,
        ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0",
        ARCHIVER_SERVER__PORT=str(port),
    )
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [*CLI, "run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, port, log


def assert_keeps_running(proc: subprocess.Popen[str], port: int, log: Path, ui_password: str) -> None:
    """Healthy, the UI behind its password, still running a while later (no exit, no restart loop)."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            code = proc.poll()
            assert code is None, (
                f"the worker exited with {code} (a crash loop in a container):\n{log.read_text()}"
            )
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no /healthz within 30 s:\n{log.read_text()}"
            time.sleep(0.2)
        assert httpx.get(f"{base}/", timeout=5).status_code == 401
        assert httpx.get(f"{base}/", auth=("archiver", ui_password), timeout=5).status_code == 200
        time.sleep(1.5)
        assert proc.poll() is None, f"the worker stopped:\n{log.read_text()}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def kubernetes_worker(root: Path) -> tuple[dict[str, str], str]:
    """The Deployment's container environment (Secret resolved) and its config file, as rendered."""
    out = kustomize(root / "deploy" / "kubernetes" / "base")
    assert out.returncode == 0, out.stderr
    objects = [d for d in yaml.safe_load_all(out.stdout) if d]
    dep = find(objects, "Deployment", "blink-archiver")
    env = _env_of(archiver_container(dep), objects)
    (spec,) = pod_specs(dep)
    assert spec["containers"][0]["args"] == ["run"]
    toml_text = find(objects, "ConfigMap", "blink-archiver-config")["data"]["archiver.toml"]
    return env, toml_text


def compose_worker(root: Path) -> tuple[dict[str, str], str]:
    """What Compose hands the container: ``env_file`` (deploy/.env), then ``environment`` interpolated
    from deploy/.env (``${VAR:?message}`` fails when VAR is unset or empty, as Compose does)."""
    deploy = root / "deploy"
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    svc = compose["services"]["archiver"]
    dotenv = {k: v or "" for k, v in dotenv_values(deploy / ".env").items()}
    env: dict[str, str] = {}
    for item in svc["env_file"]:
        env.update({k: v or "" for k, v in dotenv_values(deploy / item["path"]).items()})
    for key, value in svc["environment"].items():
        text = str(value)
        if text.startswith("${") and text.endswith("}"):
            name, _, rule = text[2:-1].partition(":")
            if rule.startswith("?") and not dotenv.get(name):
                raise AssertionError(f"docker compose up: required variable {name} is missing a value")
            text = dotenv.get(name, "")
        env[key] = text
    toml_text = compose["configs"][svc["configs"][0]["source"]]["content"]
    return env, toml_text


@pytest.mark.timeout(90)
def test_the_kubernetes_guides_worker_starts_and_stays_up(tmp_path: Path, blink: Simulator) -> None:
    root = deploy_copy(tmp_path / "repo")
    run_guide(root, "k8s-credentials")
    env, toml_text = kubernetes_worker(root)
    proc, port, log = start_worker(tmp_path, env, toml_text, blink)
    assert_keeps_running(proc, port, log, env["ARCHIVER_SERVER__AUTH__PASSWORD"])


@pytest.mark.timeout(90)
def test_the_compose_guides_worker_starts_and_stays_up(tmp_path: Path, blink: Simulator) -> None:
    root = deploy_copy(tmp_path / "repo")
    run_guide(root, "compose-env")
    assert oct((root / "deploy" / ".env").stat().st_mode & 0o777) == "0o600"
    env, toml_text = compose_worker(root)
    assert (
        env["ARCHIVER_BLINK__PASSWORD"] == GUIDE_PASSWORD
    )  # the single quotes are Compose's, not the value's
    proc, port, log = start_worker(tmp_path, env, toml_text, blink)
    assert_keeps_running(proc, port, log, env["ARCHIVER_SERVER__AUTH__PASSWORD"])


@pytest.mark.timeout(60)
def test_without_the_ui_password_compose_refuses_and_the_worker_would_crash_loop(
    tmp_path: Path, blink: Simulator
) -> None:
    root = deploy_copy(tmp_path / "repo")
    run_guide(root, "compose-env")
    dotenv = root / "deploy" / ".env"
    dotenv.write_text("".join(line for line in dotenv.read_text().splitlines(True) if "AUTH" not in line))
    with pytest.raises(AssertionError, match="ARCHIVER_SERVER__AUTH__PASSWORD is missing"):
        compose_worker(root)  # `docker compose up` stops here, before any container
    # what the guard prevents: the same worker without the password exits 2 (and would restart forever)
    _, toml_text = compose_worker_unguarded(root)
    env = {k: v or "" for k, v in dotenv_values(dotenv).items()}
    proc, port, log = start_worker(tmp_path, env, toml_text, blink)
    with pytest.raises(AssertionError, match="exited with 2"):
        assert_keeps_running(proc, port, log, "")


def compose_worker_unguarded(root: Path) -> tuple[dict[str, str], str]:
    compose = yaml.safe_load((root / "deploy" / "docker-compose.yml").read_text())
    svc = compose["services"]["archiver"]
    return {}, compose["configs"][svc["configs"][0]["source"]]["content"]


def test_the_guide_names_the_files_it_tells_users_to_write() -> None:
    guide = (DEPLOY / "README.md").read_text()
    assert "deploy/kubernetes/base/credentials.env" in guide and (BASE / "credentials.env.example").is_file()
    assert "cat > .env" in guide and "docker compose" in guide and "podman build" in guide
