"""Container smoke test: the CPU images built with podman (``--format docker``) and the compose
file's ``cpu`` profile started through podman's Docker API with the docker-compose binary.
Asserts Redis and the reward server healthy, a second identical /score served from the Redis
cache, and the rollout job's scored rows. Run by ``scripts/container_smoke.sh`` (which installs
podman, runc and debootstrap) and by tests/test_containers.py; prints a JSON report, exits
non-zero on a failed check. About 7 minutes on two cores from nothing (the base, both builds
with their downloads, compose up, the rollout).

No registry is reachable here, so the base image is made with debootstrap (Debian bookworm with
its Python 3.11 and redis-server) and stands in for ``python:3.11-slim`` (a build argument) and
for the Redis image (a compose override naming only that image). The build reaches the package
index with the host's pip configuration and CA bundle mounted, torch's CPU wheel from the host's
wheel folder (the ``TORCH_CPU_PIP_ARGS`` build argument). crun cannot set rlimits on these
machines: runc is the runtime. No systemd runs the health checks: this script runs them
(``podman healthcheck run``) while compose waits on them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from devtools.models import smollm2_dir
from devtools.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/harmo-smoke/base:bookworm"
PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates,redis-server"
HOST_PIP = ["/etc/pip.conf", "/etc/ssl/certs", "/opt/wheels", "/opt/pypi", "/opt/pypi-more"]
IMAGES = {"reward-server": ("docker/reward-server.Dockerfile", "harmo/reward-server:0.1.0-cpu"),
          "policy-rollout": ("docker/policy-rollout.Dockerfile", "harmo/policy-rollout:0.1.0-cpu")}
OVERRIDE = f"""services:
  redis:
    image: {BASE}
    command: ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
"""


def sh(*argv: str, env: dict | None = None, check: bool = True, capture: bool = True,
       timeout: float = 3600) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), env=env, capture_output=capture, text=True, timeout=timeout, cwd=ROOT)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {p.returncode}\n{(p.stdout or '')[-3000:]}"
                           f"\n{(p.stderr or '')[-3000:]}")
    return p


def base_image(work: Path, env: dict, mirror: str) -> float:
    """Debian bookworm from debootstrap, imported as the base image (once per machine)."""
    if sh("podman", "image", "exists", BASE, env=env, check=False).returncode == 0:
        return 0.0
    t = time.monotonic()
    rootfs = work / "rootfs"
    sh("debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(rootfs), mirror)
    # as in the python image, pip installs into the system interpreter (no PEP 668 marker)
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE], stdin=tar.stdout, env=env,
                   check=True, capture_output=True)
    tar.wait()
    shutil.rmtree(rootfs)
    return time.monotonic() - t


def build(env: dict) -> dict[str, float]:
    took = {}
    mounts = [a for p in HOST_PIP if Path(p).exists() for a in ("--volume", f"{p}:{p}:ro")]
    for name, (dockerfile, tag) in IMAGES.items():
        t = time.monotonic()
        sh("podman", "build", "--format", "docker", "--pull=never", "--network", "host", *mounts,
           "--build-arg", f"PYTHON_IMAGE={BASE}",
           "--build-arg", "TORCH_CPU_PIP_ARGS=--find-links /opt/wheels",
           "--target", "cpu", "-f", dockerfile, "-t", tag, ".", env=env)
        took[name] = time.monotonic() - t
    return took


def image_size(tag: str, env: dict) -> int:
    return int(sh("podman", "image", "inspect", tag, "--format", "{{.Size}}", env=env).stdout.strip())


def run_healthchecks(env: dict, stop: threading.Event) -> None:
    """What systemd timers do for podman elsewhere: each running container's health check, every 2 s."""
    while not stop.is_set():
        names = sh("podman", "ps", "--format", "{{.Names}}", env=env, check=False).stdout.split()
        for n in names:
            sh("podman", "healthcheck", "run", n, env=env, check=False)
        stop.wait(2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--keep", action="store_true", help="leave the compose project up")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harmo-smoke-"))
    conf = work / "containers.conf"
    # containers may not raise the open-files and process limits past this sandbox's own (and
    # runc, here, may not set a process limit past 32768 even below the sandbox's)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(32768, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    limits = f'"nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"'
    conf.write_text(f'[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = [{limits}]\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    report: dict = {"work": str(work)}
    report["base_s"] = round(base_image(work, env, args.mirror), 1)
    report["build_s"] = {k: round(v, 1) for k, v in build(env).items()}
    report["image_mb"] = {k: image_size(tag, env) // 2**20 for k, (_, tag) in IMAGES.items()}
    cuda = sh("podman", "run", "--rm", "--entrypoint", "python", IMAGES["reward-server"][1], "-c",
              "import importlib.metadata as m, torch; print(torch.version.cuda, "
              "[d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].startswith(('nvidia', 'cuda'))])",
              env=env).stdout.strip()
    report["cpu_image_cuda"] = cuda

    # podman's Docker API for the compose binary
    sock = work / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"], env=env,
                               stderr=open(work / "podman-service.log", "w"))
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.1)
    data = work / "data"
    data.mkdir()
    (data / "prompts.jsonl").write_text(json.dumps({
        "data_source": "gsm8k", "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
        "reward_model": {"ground_truth": "4"}, "extra_info": {"index": 0, "task": "math"}}) + "\n")
    (work / "override.yml").write_text(OVERRIDE)
    port = free_port()
    cenv = {**env, "DOCKER_HOST": f"unix://{sock}", "HARMO_DATA_DIR": str(data),
            "HARMO_ROLLOUT_PROMPTS": "prompts.jsonl", "HARMO_ROLLOUT_N": "2", "HARMO_ROLLOUT_MAX_TOKENS": "24",
            "HARMO_REWARD_PORT": str(port)}
    compose = [str(Path(sys.executable).parent / "docker-compose"), "-f", "docker-compose.yml", "-f",
               str(work / "override.yml"), "--profile", "cpu"]
    stop = threading.Event()
    checker = threading.Thread(target=run_healthchecks, args=(env, stop), daemon=True)
    try:
        # the models the rollout's policy needs, in the model-cache volume before `up` (docs/deploy.md)
        # as docs/deploy.md says: any image with the volume, as root, readable by the services' user
        sh("podman", "run", "--rm", "--user", "0", "--entrypoint", "sh", "-v", "harmo_model-cache:/models", "-v",
           f"{smollm2_dir()}:/src:ro", IMAGES["reward-server"][1], "-c",
           "cp -r /src /models/smollm2-135m-instruct && chmod -R a+rX /models/smollm2-135m-instruct", env=env)
        checker.start()
        t = time.monotonic()
        up = sh(*compose, "up", "-d", "--no-build", "--pull", "never", env=cenv, check=False, timeout=1200)
        report["up"] = {"rc": up.returncode, "s": round(time.monotonic() - t, 1), "log": up.stderr[-1500:]}
        if up.returncode != 0:
            raise RuntimeError(f"compose up failed:\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}")
        url = f"http://127.0.0.1:{port}"
        report["healthz"] = httpx.get(f"{url}/healthz", timeout=10).json()
        item = {"items": [{"response": "<think>2+2</think><answer>\\boxed{4}</answer>", "reference": "4"}]}
        first = httpx.post(f"{url}/score", json=item, timeout=60).json()["results"][0]
        second = httpx.post(f"{url}/score", json=item, timeout=60).json()["results"][0]
        report["score"] = {"reward": first["reward"], "first_cached": first["cached"],
                           "second_cached": second["cached"]}
        # a code item: the image's bubblewrap sandbox, under compose's security options; the
        # second program looks for Redis by its compose name and must find no network
        tests = json.dumps({"inputs": ["3\n"], "outputs": ["9\n"]})
        code = httpx.post(f"{url}/score", timeout=60, json={"profile": "code", "items": [
            {"task": "code", "response": "```python\nn = int(input())\nprint(n * n)\n```", "reference": tests},
            {"task": "code", "reference": json.dumps({"inputs": [""], "outputs": ["reached"]}),
             "response": "```python\nimport socket\nsocket.create_connection(('redis', 6379), 2)\n"
                         "print('reached')\n```"},
        ]}).json()["results"]
        report["code"] = [{"accuracy": r["components"].get("accuracy"), "source": r["accuracy"]["source"],
                           "errors": [e["code"] for e in r["errors"]]} for r in code]
        page, data = httpx.get(f"{url}/ui", timeout=10), httpx.get(f"{url}/ui/data", timeout=10)
        report["ui"] = {"status": page.status_code, "csp": "content-security-policy" in page.headers,
                        "page": "harmo reward observatory" in page.text,
                        "items_seen": sum(s["total"] for s in data.json()["observatory"]["series"])
                        if data.status_code == 200 else data.status_code}
        # the rollout job: runs to completion once the server is healthy
        deadline = time.monotonic() + 900
        rc = None
        while time.monotonic() < deadline:
            p = sh("podman", "inspect", "harmo-rollout-cpu-1", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                   env=env, check=False)
            status = p.stdout.split()
            if status and status[0] == "exited":
                rc = int(status[1])
                break
            time.sleep(3)
        report["rollout_rc"] = rc
        if rc != 0:
            report["rollout_log"] = sh("podman", "logs", "harmo-rollout-cpu-1", env=env, check=False).stderr[-3000:]
        rows = sh("podman", "run", "--rm", "-v", "harmo_outputs:/out", BASE, "cat", "/out/samples.jsonl", env=env,
                  check=False).stdout.splitlines()
        report["rows"] = [{"reward": r.get("reward"), "components": r.get("components")}
                          for r in map(json.loads, rows)]
        report["health"] = {n: sh("podman", "inspect", n, "--format", "{{.State.Health.Status}}", env=env,
                                  check=False).stdout.strip()
                            for n in ("harmo-redis-1", "harmo-reward-server-cpu-1")}
    finally:
        stop.set()
        if not args.keep:
            sh(*compose, "down", "-v", env=cenv, check=False, timeout=300)
            service.terminate()
            # the built images go (about 6 GB); the debootstrap base stays for the next run
            sh("podman", "rmi", "-f", *(tag for _, tag in IMAGES.values()), env=env, check=False)
            sh("podman", "image", "prune", "-f", env=env, check=False)
    checks = {
        "redis and reward server healthy": set(report.get("health", {}).values()) == {"healthy"},
        "server found Redis by its compose name": report.get("healthz", {}).get("cache") == "redis",
        "second answer from the cache": "accuracy" in report.get("score", {}).get("second_cached", []),
        "rollout wrote scored rows": report.get("rollout_rc") == 0 and len(report.get("rows", [])) == 2
        and all(r["reward"] is not None for r in report["rows"]),
        "CPU image without CUDA": report.get("cpu_image_cuda", "").startswith("None []"),
        "code ran in the image's sandbox, with no network":
            [c["accuracy"] for c in report.get("code", [])] == [1.0, 0.0]
            and report["code"][1]["errors"] == ["code_runtime_error"],
        "the observatory's page served, with the requests seen": report.get("ui", {}).get("page") is True
        and report["ui"]["csp"] and report["ui"]["items_seen"] >= 2,
    }
    report["checks"] = checks
    print(json.dumps(report, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
