"""Runs inside a fresh network and mount namespace (tests/test_deploy.py starts it with
``unshare``): ``/etc/hosts`` there names the services as compose and Kubernetes do, and
``/config`` and ``/secrets`` hold what the compose mounts and the ConfigMap and Secret hold.
Starts each service with exactly the command and environment of its compose entry or
Kubernetes container, and checks that they reach each other by those names.

    python tests/deploy_check.py SPEC.json      # prints a JSON report
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request


def get(url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def split_group(server: str, headers: dict) -> dict:
    """The 4 members of one GRPO group, one per request, all at once, as veRL sends them: through
    a Service over several replicas they meet in the shared group store."""
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> tuple[float, dict]:
        item = {"id": f"m{k}", "group_id": "split", "group_size": 4, "reference": "4",
                "response": f"<think>{'so ' * (3 + 5 * k)}</think><answer>\\boxed{{{4 + k % 2}}}</answer>"}
        t = time.monotonic()
        status, body = get(f"{server}/score", headers, {"items": [item]})
        assert status == 200, body
        return time.monotonic() - t, body["results"][0]

    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(one, range(4)))
    return {"slowest_s": max(dt for dt, _ in out),
            "complete": [r["details"]["group"]["complete"] for _, r in out],
            "group_errors": [e["code"] for _, r in out for e in r["errors"] if e["component"] == "group"],
            "length": [r["components"].get("length") for _, r in out]}


def main(spec_path: str) -> None:
    spec = json.load(open(spec_path))
    procs = []
    report: dict = {}
    try:
        # one-shot jobs that must succeed before the server starts (compose's
        # service_completed_successfully, Kubernetes' init containers): the model pull
        for svc in [s for s in spec["services"] if s.get("before_server")]:
            env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                   "HOME": os.environ.get("HOME", "/root"), **svc["env"]}
            with open(os.path.join(spec["logs"], svc["name"] + ".log"), "w") as log:
                report[svc["name"]] = rc = subprocess.run(svc["argv"], env=env, cwd=spec["cwd"], stdout=log,
                                                          stderr=log, timeout=600).returncode
            if rc != 0:
                raise RuntimeError(f"{svc['name']} exited with {rc}")
        for svc in [s for s in spec["services"] if not s.get("after_server") and not s.get("before_server")]:
            # the image's PATH puts its environment first: here, the test interpreter's (or the one named)
            bin_dir = svc.get("bin") or os.path.dirname(sys.executable)
            env = {"PATH": bin_dir + os.pathsep + os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                   **{k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HARMO_NLTK_DATA") if k in os.environ},
                   **svc["env"]}
            procs.append(subprocess.Popen(svc["argv"], env=env, cwd=spec["cwd"], stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(spec["logs"], svc["name"] + ".log"), "w")))
        server = spec["server_url"]  # as the clients name it
        wait(f"{server}/readyz")
        report["healthz"] = get(f"{server}/healthz")[1]
        item = {"items": [{"response": "<think>t</think><answer>\\boxed{4}</answer>", "reference": "4"}]}
        headers = {"Authorization": f"Bearer {spec['client_key']}"} if spec.get("client_key") else {}
        other = {"items": [{"response": "<answer>\\boxed{5}</answer>", "reference": "5"}]}
        report["without_key"] = get(f"{server}/score", body=other)[0]
        first = get(f"{server}/score", headers, item)
        second = get(f"{server}/score", headers, item)
        report["first"] = first[0], first[1]["results"][0]["cached"] if first[0] == 200 else first[1]
        report["second"] = second[0], second[1]["results"][0]["cached"] if second[0] == 200 else second[1]
        report["profiles"] = [p["name"] for p in get(f"{server}/v1/profiles")[1]["profiles"]]
        # an open-ended item: the default profile's model judges it
        caption = {"prompt": "Describe the image.", "response": "A cat sits on a mat.",
                   "reference": "A cat is sitting on a small mat in the warm sun."}
        opened = get(f"{server}/score", headers, {"items": [caption]})
        report["open"] = opened[0], opened[1]["results"][0]["accuracy"]["source"] if opened[0] == 200 else opened[1]
        if spec.get("group_check"):
            report["group"] = split_group(server, headers)
        # clients that run to completion (a rollout job): started once the server is up, as
        # compose's health-gated order does
        for svc in [s for s in spec["services"] if s.get("after_server")]:
            bin_dir = svc["bin"]
            env = {"PATH": bin_dir + os.pathsep + os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                   **svc["env"]}
            log_path = os.path.join(spec["logs"], svc["name"] + ".log")
            with open(log_path, "w") as log:
                report[svc["name"]] = subprocess.run(svc["argv"], env=env, cwd=svc.get("cwd", spec["cwd"]),
                                                     stdout=log, stderr=log, timeout=600).returncode
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
