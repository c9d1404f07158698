"""Deployment files, checked by their real validators (no Docker engine here), and the services
started with their compose and Kubernetes commands, finding each other by those names."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devtools.models import smollm2_dir, tiny_qwen25vl_rm
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # validators and services in namespaces

VLLM_PYTHON = os.environ.get("HARMO_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
TRAINER_PYTHON = os.environ.get("HARMO_TRAINER_PYTHON", str(ROOT / ".venv-trainer" / "bin" / "python"))

BIN = Path(sys.executable).parent  # hadolint, docker-compose, kubectl, kubernetes-validate, yamllint
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir())


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT, timeout=900, **kw)


def test_dockerfiles_pass_hadolint():
    files = sorted((ROOT / "docker").glob("*.Dockerfile"))
    assert len(files) == 3
    for f in files:
        p = run(str(BIN / "hadolint"), str(f))
        assert p.returncode == 0, p.stdout + p.stderr
        text = f.read_text()
        assert "USER 10001" in text and "HEALTHCHECK" in text and text.count("FROM ") >= 2, f  # non-root, multi-stage


def compose(*args: str, **kw) -> subprocess.CompletedProcess:
    return run(str(BIN / "docker-compose"), "--env-file", ".env.example", "-f", "docker-compose.yml", *args, **kw)


def test_compose_file_is_valid_for_both_profiles_and_every_setting_is_documented():
    for profile in ("gpu", "cpu"):
        p = compose("--profile", profile, "config", "-q")
        assert p.returncode == 0, p.stderr
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used <= documented, used - documented
    cfg = json.loads(compose("--profile", "gpu", "config", "--format", "json").stdout)
    s = cfg["services"]
    assert s["reward-server"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # the GPU profile (the paper's setup), its models pulled onto the model cache before the server
    gpu_profiles = ROOT / "services/reward_server/profiles-gpu.yaml"
    for name in ("reward-server", "model-pull"):
        [mount] = [v for v in s[name]["volumes"] if v["target"] == "/config/profiles.yaml"]
        assert Path(mount["source"]) == gpu_profiles, name
        assert any(v.get("source") == "model-cache" and v["target"] == "/models" for v in s[name]["volumes"])
        assert s[name]["environment"]["HARMO_MODEL_DIR"] == "/models/harmo"
    assert s["reward-server"]["depends_on"]["model-pull"]["condition"] == "service_completed_successfully"
    assert s["model-pull"]["entrypoint"] == ["reward-server", "models", "pull"]
    assert s["model-pull"]["image"] == s["reward-server"]["image"]
    assert yaml.safe_load(gpu_profiles.read_text())["models"]["skywork_vl"]["path"] == "Skywork/Skywork-VL-Reward-7B"
    assert s["trainer"]["depends_on"]["reward-server"]["condition"] == "service_healthy"
    assert s["reward-server"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert {"model-cache", "outputs", "checkpoints", "redis-data"} <= set(cfg["volumes"])
    # GPUs: every GPU service gets devices of its own (a `count` would give each the first GPUs),
    # and the trainer is told how many it has
    gpus = {}
    for name, svc in s.items():
        for dev in svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []):
            assert "count" not in dev and dev["device_ids"], name
            gpus[name] = [g for ids in dev["device_ids"] for g in ids.split(",")]
    assert set(gpus) == {"reward-server", "rollout", "trainer"}
    every = [g for ids in gpus.values() for g in ids]
    assert len(every) == len(set(every)) == 8, gpus
    assert f"trainer.n_gpus_per_node={len(gpus['trainer'])}" in s["trainer"]["command"]
    # vLLM's services get a /dev/shm it fits in (engines default to 64 MiB; vLLM needs 160 MiB and up)
    cpu = json.loads(compose("--profile", "cpu", "config", "--format", "json").stdout)["services"]
    for svc in (s["rollout"], s["trainer"], cpu["rollout-cpu"]):
        assert int(svc["shm_size"]) >= 2**30, svc.get("shm_size")
    # the health check is a plain argv, the same under every engine
    assert s["reward-server"]["healthcheck"]["test"] == ["CMD", "reward-server", "healthcheck", "--ready"]


def test_yaml_files_pass_yamllint():
    paths = ["docker-compose.yml", "k8s", "trainer/configs", "services/reward_server/profiles.yaml",
             "services/reward_server/profiles-gpu.yaml", ".yamllint"]
    p = run(str(BIN / "yamllint"), "--strict", "-c", ".yamllint", *paths)
    assert p.returncode == 0, p.stdout + p.stderr


def rendered(overlay: str) -> list[dict]:
    p = run(str(BIN / "kubectl"), "kustomize", f"k8s/overlays/{overlay}")
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def test_manifests_and_overlays_validate_against_the_kubernetes_schemas(tmp_path):
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        core = [d for d in docs if d["kind"] != "RayJob"]
        # KubeRay's RayJob has no schema offline: its pod templates are validated as Pods
        for job in (d for d in docs if d["kind"] == "RayJob"):
            spec = job["spec"]
            templates = [spec["rayClusterSpec"]["headGroupSpec"]["template"], spec["submitterPodTemplate"]]
            templates += [g["template"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]]
            for k, t in enumerate(templates):
                core.append({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {**t.get("metadata", {}), "name": f"{job['metadata']['name']}-{k}"},
                             "spec": t["spec"]})
        f = tmp_path / f"{overlay}.yaml"
        f.write_text(yaml.safe_dump_all(core))
        p = run(str(BIN / "kubernetes-validate"), "--strict", str(f))
        assert p.returncode == 0, p.stdout + p.stderr
        passed = [line for line in p.stdout.splitlines() if " passed for resource " in line]
        assert len(passed) == len(core), p.stdout
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
                "ConfigMap", "RayJob"} <= kinds, overlay


def by_kind(docs: list[dict], kind: str, name: str) -> dict:
    [d] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return d


def test_manifests_wire_the_services_together():
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        svc = by_kind(docs, "Service", "harmo-reward-server")
        dep = by_kind(docs, "Deployment", "harmo-reward-server")
        pod = dep["spec"]["template"]
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        redis = by_kind(docs, "Service", "harmo-redis")
        assert env["REDIS_URL"] == f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
        job = by_kind(docs, "RayJob", "harmo-grpo")
        worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]
        url = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}["HARMO_REWARD_URL"]
        assert url == f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
        # only trainer and rollout pods (and Prometheus) reach the reward service
        policy = by_kind(docs, "NetworkPolicy", "harmo-reward-server")
        allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert sorted(allowed) == ["rollout", "trainer"]
        assert worker["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        probes = pod["spec"]["containers"][0]
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # the probes (and Prometheus) use the health port, which a flood of the service port cannot fill
        env_ports = {e["name"]: e.get("value") for e in probes["env"]}
        health = {p["name"]: p["containerPort"] for p in probes["ports"]}["health"]
        assert env_ports["HARMO_HEALTH_PORT"] == str(health)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probes[probe]["httpGet"]["port"] == "health"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(health)
        # the GPU profile (or, on a single-GPU cluster, the CPU image and the embedded profiles:
        # its one GPU trains), its models pulled by an init container onto the shared model volume
        gpu = overlay != "dev-single-gpu"
        assert ("nvidia.com/gpu" in probes["resources"]["limits"]) == gpu
        assert probes["image"].endswith("-cuda" if gpu else "-cpu")
        profiles = by_kind(docs, "ConfigMap", "harmo-profiles")
        assert profiles["data"]["profiles.yaml"] == PROFILES[gpu].read_text()
        [init] = pod["spec"]["initContainers"]
        assert init["command"] == ["reward-server", "models", "pull"] and init["image"] == probes["image"]
        init_env = {e["name"]: e.get("value") for e in init["env"]}
        assert init_env["HARMO_MODEL_DIR"] == env["HARMO_MODEL_DIR"] == "/models/harmo"
        assert init_env["HARMO_PROFILES_PATH"] == env["HARMO_PROFILES_PATH"]
        [vol] = [v for v in pod["spec"]["volumes"] if v["name"] == "models"]
        pvc = by_kind(docs, "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"])
        assert pvc["spec"]["resources"]["requests"]["storage"]
        for c in (init, probes):
            assert {"name": "models", "mountPath": "/models"} in c["volumeMounts"]
        dash = json.loads(by_kind(docs, "ConfigMap", "harmo-grafana-dashboard")["data"]["harmo-dashboard.json"])
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
        for metric in ("harmo_requests_total", "harmo_cache_hits_total", "harmo_model_queue_depth",
                       "harmo_redis_errors_total", "harmo_item_errors_total"):
            assert metric in exprs


# the GPUs each overlay asks for in all, as k8s/README.md's table says
OVERLAY_GPUS = {"dev-single-gpu": 1, "multi-node": 34}
PROFILES = {True: ROOT / "services/reward_server/profiles-gpu.yaml", False: ROOT / "services/reward_server/profiles.yaml"}


def test_overlays_ask_for_the_gpus_they_name():
    table = (ROOT / "k8s/README.md").read_text()
    assert set(OVERLAY_GPUS) == set(OVERLAYS)
    for overlay, want in OVERLAY_GPUS.items():
        docs = rendered(overlay)
        dep = by_kind(docs, "Deployment", "harmo-reward-server")
        hpa = by_kind(docs, "HorizontalPodAutoscaler", "harmo-reward-server")
        limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        total = int(limits.get("nvidia.com/gpu", 0)) * hpa["spec"]["minReplicas"]
        for w in by_kind(docs, "RayJob", "harmo-grpo")["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
            total += int(w["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)) \
                * w["replicas"]
        assert total == want, (overlay, total)
        assert re.search(rf"^\| {overlay} \|.*\| {want} \|$", table, re.M), overlay
    single = (ROOT / "k8s/overlays/dev-single-gpu/profiles.yaml").read_text()
    assert single == PROFILES[False].read_text()  # kustomize reads files under the overlay only


def _entrypoint(dockerfile: Path, stage: str) -> tuple[list[str], dict[str, str]]:
    """The ENTRYPOINT and ENV of one stage of a Dockerfile."""
    stages = re.split(r"^FROM ", dockerfile.read_text(), flags=re.M)
    [body] = [s for s in stages if re.match(rf"\S+ AS {stage}\b", s)]
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", body, re.M).group(1))
    env: dict[str, str] = {}
    for m in re.finditer(r"^ENV ((?:.*\\\n)*.*)$", body, re.M):
        for k, v in re.findall(r"(\w+)=(\S+)", m.group(1).replace("\\\n", " ")):
            env[k] = v
    env.pop("PATH", None)  # here: the test environment's interpreter
    return entry, env


def _in_namespace(tmp_path: Path, spec: dict, hosts: list[str], mounts: dict[str, Path]) -> dict:
    """Run tests/deploy_check.py in a fresh network and mount namespace: its own loopback, these
    host names, these folders mounted where the containers would have them. The container paths
    (/config, /models, ...) are made in a root of the namespace's own (a tmpfs holding binds of
    the real root's entries, then chroot), so nothing is written to the real root."""
    (tmp_path / "hosts").write_text("127.0.0.1 localhost " + " ".join(hosts) + "\n")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec | {"cwd": str(ROOT), "logs": str(tmp_path)}))
    root = tmp_path / "root"
    root.mkdir()
    script = ["set -e", "ip link set lo up", f"R={root}", "mount -t tmpfs tmpfs $R",
              # the real root's entries: symlinks (/bin -> usr/bin) copied, folders bound with their mounts
              'for e in /*; do n=$(basename "$e"); if [ -L "$e" ]; then cp -P "$e" "$R/$n"; '
              'elif [ -d "$e" ]; then mkdir "$R/$n"; mount --rbind "$e" "$R/$n"; fi; done',
              f"mount --bind {tmp_path / 'hosts'} $R/etc/hosts"]
    for dst, src in mounts.items():
        script += [f"mkdir -p $R{dst}", f"mount --bind {src} $R{dst}"]
    script.append(f"exec chroot $R /bin/sh -c 'cd {ROOT} && exec {sys.executable} tests/deploy_check.py {spec_file}'")
    existed = {dst: Path(dst).exists() for dst in mounts}
    p = run("unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", "\n".join(script))
    logs = "".join(f.read_text()[-2000:] for f in tmp_path.glob("*.log"))
    assert p.returncode == 0, p.stderr[-3000:] + logs
    assert {dst: Path(dst).exists() for dst in mounts} == existed, "the test wrote to the real root"
    return json.loads(p.stdout)


@pytest.mark.timeout(900)
def test_compose_services_find_each_other(tmp_path):
    """Redis, the reward server and a rollout job (SmolLM2 on vLLM's CPU build), as the cpu profile
    runs them: the job writes rows scored by the server it found as ``reward-server``."""
    small = {"HARMO_ROLLOUT_N": "2", "HARMO_ROLLOUT_MAX_TOKENS": "24", "HARMO_ROLLOUT_PROMPTS": "prompts.jsonl"}
    cfg = json.loads(compose("--profile", "cpu", "config", "--format", "json",
                             env={**os.environ, **small}).stdout)["services"]
    entry, image_env = _entrypoint(ROOT / "docker/reward-server.Dockerfile", "cpu")
    r_entry, r_env = _entrypoint(ROOT / "docker/policy-rollout.Dockerfile", "cpu")
    server, redis, rollout, pull = cfg["reward-server-cpu"], cfg["redis"], cfg["rollout-cpu"], cfg["model-pull-cpu"]
    assert server["depends_on"]["model-pull-cpu"]["condition"] == "service_completed_successfully"
    trainer = json.loads(compose("--profile", "gpu", "config", "--format", "json").stdout)["services"]["trainer"]
    t_entry, t_env = _entrypoint(ROOT / "docker/trainer.Dockerfile", "runtime")
    config, data, models, out = (tmp_path / d for d in ("config", "data", "models", "out"))
    for d in (config, data, models, out):
        d.mkdir()
    [mount] = [v for v in server["volumes"] if v["target"] == "/config/profiles.yaml"]
    (config / "profiles.yaml").write_text(Path(mount["source"]).read_text())
    (data / "prompts.jsonl").write_text(json.dumps({
        "data_source": "gsm8k", "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
        "reward_model": {"ground_truth": "4"}, "extra_info": {"index": 0, "task": "math"}}) + "\n")
    model = rollout["command"][rollout["command"].index("--model") + 1]
    (models / Path(model).name).symlink_to(smollm2_dir())
    url = rollout["command"][rollout["command"].index("--reward-url") + 1]
    spec = {"services": [
        {"name": "model-pull", "argv": pull["entrypoint"] + (pull.get("command") or []), "before_server": True,
         "env": image_env | {k: v for k, v in pull["environment"].items() if v is not None}},
        {"name": "redis", "argv": redis["command"], "env": {}},
        {"name": "reward-server", "argv": entry + (server.get("command") or []),
         "env": image_env | {k: v for k, v in server["environment"].items() if v is not None}},
        {"name": "rollout", "argv": r_entry + rollout["command"], "bin": str(Path(VLLM_PYTHON).parent),
         "env": r_env | {k: v for k, v in rollout["environment"].items() if v is not None}, "after_server": True},
        # the trainer (gpu profile), as far as a machine without GPUs takes it: its pre-flight check
        # that the reward server it is configured with is ready, by its compose name
        {"name": "trainer", "argv": t_entry + trainer["command"], "bin": str(Path(TRAINER_PYTHON).parent),
         "env": t_env | {k: v for k, v in trainer["environment"].items() if v is not None}
                | {"HARMO_PREFLIGHT_ONLY": "1"}, "after_server": True, "cwd": str(tmp_path)},  # Hydra writes here
    ], "server_url": url}
    report = _in_namespace(tmp_path, spec, ["redis", "reward-server"],
                           {"/config": config, "/data": data, "/models": models, "/out": out})
    assert url == "http://reward-server:8000"
    assert report["healthz"]["cache"] == "redis"  # it found Redis by its compose name
    assert report["first"] == [200, []] and report["second"] == [200, ["accuracy"]]
    assert report["without_key"] == 200  # no keys configured by default
    assert report["model-pull"] == 0 and "nothing to pull" in (tmp_path / "model-pull.log").read_text()
    assert report["open"] == [200, "model:minilm"]  # the hybrid default: the embedding surrogate
    assert report["rollout"] == 0, (tmp_path / "rollout.log").read_text()[-3000:]
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["reward"] is not None and "format" in r["components"] for r in rows)
    trainer_log = (tmp_path / "trainer.log").read_text()
    assert report["trainer"] == 0 and "reward server http://reward-server:8000 ready" in trainer_log, trainer_log[-3000:]


SERVICE_BALANCER = """
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
  option http-buffer-request
  retry-on conn-failure empty-response 502 503
frontend service
  bind 127.0.0.1:8000
  default_backend pods
backend pods
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 1s fall 3 rise 1
{servers}
"""


@pytest.mark.parametrize("overlay", ["dev-single-gpu", "multi-node"])
def test_kubernetes_services_find_each_other(tmp_path, overlay):
    """The overlay's reward server as the pod runs it, on the CPU. Multi-node, the base's GPU
    profile: the init container pulls the reward model (a tiny Qwen2.5-VL in
    Skywork-VL-Reward-7B's layout, from a mirror: no hub here) onto the model volume, then the
    server loads it and judges open-ended items with it. Single-GPU, the CPU image's embedded
    profiles: nothing to pull, the packaged MiniLM judges them. The
    Deployment's replicas all run, behind a round-robin balancer standing in for the Service
    (HAProxy), and a GRPO group sent one member per request completes across them."""
    docs = rendered(overlay)
    deployment = by_kind(docs, "Deployment", "harmo-reward-server")
    replicas = deployment["spec"]["replicas"]
    pod_spec = deployment["spec"]["template"]["spec"]
    dep = pod_spec["containers"][0]
    [init] = pod_spec["initContainers"]
    mirror, models = tmp_path / "mirror", tmp_path / "models"
    models.mkdir()
    repo = yaml.safe_load(by_kind(docs, "ConfigMap", "harmo-profiles")["data"]["profiles.yaml"])
    gpu = dep["image"].endswith("-cuda")
    mirror.mkdir()
    if gpu:
        shutil.copytree(tiny_qwen25vl_rm(), mirror / repo["models"]["skywork_vl"]["path"])
    redis = by_kind(docs, "Deployment", "harmo-redis")["spec"]["template"]["spec"]["containers"][0]
    entry, image_env = _entrypoint(ROOT / "docker/reward-server.Dockerfile", "cuda" if gpu else "cpu")
    config, secrets = tmp_path / "config", tmp_path / "secrets"
    config.mkdir()
    secrets.mkdir()
    for k, v in by_kind(docs, "ConfigMap", "harmo-profiles")["data"].items():
        (config / k).write_text(v)
    if overlay == "multi-node":  # its Secret is made out of band, as its kustomization says
        secret = {"api-keys": base64.b64encode(b"k1\nk2\n").decode(), "client-key": base64.b64encode(b"k2").decode()}
    else:
        secret = by_kind(docs, "Secret", "harmo-api-keys")["data"]
    (secrets / "api-keys").write_bytes(base64.b64decode(secret["api-keys"]))
    job = by_kind(docs, "RayJob", "harmo-grpo")["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    job_env = job["template"]["spec"]["containers"][0]["env"]
    url = next(e["value"] for e in job_env if e["name"] == "HARMO_REWARD_URL")
    key_ref = next(e["valueFrom"]["secretKeyRef"] for e in job_env if e["name"] == "HARMO_API_KEY")
    pod_env = image_env | {e["name"]: e["value"] for e in dep["env"]}
    argv = entry + dep.get("args", [])
    services = [
        {"name": "model-pull", "argv": init["command"], "before_server": True,
         "env": image_env | {e["name"]: e["value"] for e in init["env"] if "value" in e}
                | {"HARMO_MODEL_MIRROR": str(mirror)}},
        {"name": "redis", "argv": redis["args"], "env": {}},
    ]
    if replicas == 1:
        services.append({"name": "reward-server", "argv": argv, "env": pod_env})
    else:  # each pod on a port of its own here; the Service's address is the balancer's
        assert argv[argv.index("--port") + 1] == "8000"
        backends = []
        for k in range(replicas):
            port = str(8001 + k)
            pod_argv = [port if a == "8000" else "127.0.0.1" if a == "0.0.0.0" else a for a in argv]
            # pods have network namespaces of their own; here they share one: a probe port each
            services.append({"name": f"reward-server-{k}", "argv": pod_argv,
                             "env": pod_env | {"HARMO_HEALTH_PORT": str(9001 + k)}})
            backends.append(f"  server pod{k} 127.0.0.1:{port} check")
        (tmp_path / "service.cfg").write_text(SERVICE_BALANCER.format(servers="\n".join(backends)))
        services.append({"name": "service", "argv": [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f",
                                                     str(tmp_path / "service.cfg")], "env": {}})
    spec = {"services": services, "server_url": url, "group_check": True,
            "client_key": base64.b64decode(secret[key_ref["key"]]).decode()}
    report = _in_namespace(tmp_path, spec, ["harmo-redis", "harmo-reward-server"],
                           {"/config": config, "/secrets": secrets, "/models": models})
    pulled = (tmp_path / "model-pull.log").read_text()
    assert report["model-pull"] == 0 and ("1 of 1 models ready" if gpu else "nothing to pull") in pulled
    assert report["open"] == [200, "model:skywork_vl" if gpu else "model:minilm"]
    # one member per request, spread over the replicas: one complete group, no deadline waited out
    group = report["group"]
    assert group["complete"] == [True] * 4 and group["group_errors"] == [], group
    assert group["slowest_s"] < float(pod_env["HARMO_GROUP_WAIT_S"]) and any(group["length"]), group
    assert report["healthz"]["cache"] == "redis"
    assert report["without_key"] == 401  # the Secret's keys are in force
    assert report["first"] == [200, []] and report["second"] == [200, ["accuracy"]]
    assert "harmo" in report["profiles"]
