"""``task: code``: run the policy's program against the item's tests in a sandbox (``sandbox.py``).

The program is the last fenced code block of the response (inside ``<answer>`` when there is
one), else the ``<answer>`` content. The tests are the item's reference, in one of the forms
code datasets carry:

- ``{"inputs": [...], "outputs": [...]}`` (JSON): stdin/stdout cases, veRL's and PRIME's
  ``ground_truth`` form, so those datasets work unchanged; with ``"fn_name"``, call-based cases
  (each input the argument list, each output the return value; a ``Solution`` class's method
  of that name or a function);
- ``{"test": "...", "entry_point": "f"}`` (HumanEval: ``check(f)`` after the test code) or
  ``{"test_list": ["assert ...", ...]}`` (MBPP: one case per assert, after ``test_setup_code``);
- any other text: assert-style test code run after the program, one case.

Outputs are compared outside the sandbox, line by line and token by token (whitespace
differences and trailing blank lines ignored), numbers within ``float_tolerance`` when set.
The score is the pass fraction or all-or-nothing (``reward: all``); ``details`` lists every case.
A failure of the program (an error, a timeout, a limit) is its verdict, ``incorrect`` with a
typed error; a failure to run it at all (no sandbox here) is ``error`` (unjudged).

Visible tests: a policy that sees the tests in its prompt can print their outputs without
computing them. A passed stdin/stdout case whose input the program never read, or whose input
and output both stand as literals in the program when both are in the prompt, does not count.
"""
from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import sandbox
from .base import Check, Verifier

# The info string stops at a backtick too: on a line of many openers each attempt then stops at
# the next one (linear), where "[^\n]*" would scan to the line's end from each (quadratic).
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.S)


class CodeOptions(BaseModel):
    """A profile's ``accuracy.verifiers.code`` block."""

    model_config = ConfigDict(extra="forbid")
    reward: Literal["fraction", "all"] = "fraction"
    case_timeout_s: float = Field(2.0, gt=0, le=60, description="CPU seconds per case (rounded up to whole "
                                  "seconds); a case's wall time may be twice that plus one")
    memory_mb: int = Field(512, ge=64, le=16384)
    processes: int = Field(16, ge=4, le=1024)
    output_kb: int = Field(1024, ge=1, le=262144)
    float_tolerance: float | None = Field(None, ge=0)
    max_cases: int = Field(64, ge=1, le=10000)
    item_timeout_s: float = Field(30.0, gt=0, le=110, description="all of an item's cases; past it the rest "
                                  "fail as timeouts (HARMO_CODE_TIMEOUT_S, 120, is the worker's hard deadline)")


@dataclass(frozen=True)
class Tests:
    mode: str  # stdio | call | assert
    cases: list[dict]
    expected: list[Any]  # per case, compared outside the sandbox (None for assert cases)
    fn_name: str | None = None


class BadTests(ValueError):
    pass


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the last one is wanted
        pass
    return last


def extract(response: str) -> tuple[str | None, str | None]:
    """(program, fence language) from a response."""
    m = _last(_ANSWER, response)
    fence = _last(_FENCE, m.group(1) if m else response)
    if fence is not None:
        return fence.group(2), fence.group(1).lower()
    if m is not None and m.group(1).strip():
        return m.group(1).strip("\n"), None
    return None, None


def parse_tests(reference: str, max_cases: int) -> Tests:
    text = reference.strip()
    spec: Any = None
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError:
            spec = None
    if isinstance(spec, dict) and "inputs" in spec and "outputs" in spec:
        ins, outs = spec["inputs"], spec["outputs"]
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs) or not ins:
            raise BadTests("inputs and outputs must be lists of the same, non-zero length")
        ins, outs = ins[:max_cases], outs[:max_cases]
        if spec.get("fn_name"):
            cases = [{"input": i if isinstance(i, list) else [i]} for i in ins]
            return Tests("call", cases, outs, str(spec["fn_name"]))
        outs = [_text(o) for o in outs]
        # "keep": how much of the output comes back; more than twice the expected one cannot match
        return Tests("stdio", [{"stdin": _text(i), "keep": 2 * len(o.encode()) + 1024} for i, o in zip(ins, outs)],
                     outs)
    if isinstance(spec, dict) and isinstance(spec.get("test_list"), list):
        setup = "\n".join(filter(None, [*(spec.get("test_imports") or []), spec.get("test_setup_code") or ""]))
        tests = [str(t) for t in spec["test_list"]][:max_cases]
        if not tests:
            raise BadTests("test_list is empty")
        return Tests("assert", [{"test": f"{setup}\n{t}"} for t in tests], [None] * len(tests))
    if isinstance(spec, dict) and isinstance(spec.get("test"), str):
        case = {"test": spec["test"]}
        if spec.get("entry_point"):
            case["entry_point"] = str(spec["entry_point"])
        return Tests("assert", [case], [None])
    if isinstance(spec, dict):
        raise BadTests("a JSON reference for code needs inputs/outputs, test_list or test")
    return Tests("assert", [{"test": reference}], [None])


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(map(_text, value))
    return json.dumps(value)


def _lines(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _same_token(a: str, b: str, tol: float | None) -> bool:
    if a == b:
        return True
    if tol is None:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isfinite(x) and math.isfinite(y) and abs(x - y) <= tol * max(1.0, abs(y))


def first_difference(got: str, expected: str, tol: float | None) -> dict | None:
    """None when the outputs agree; else the first line that differs (1-based) and both sides."""
    g, e = _lines(got), _lines(expected)
    for n in range(max(len(g), len(e))):
        a = g[n] if n < len(g) else None
        b = e[n] if n < len(e) else None
        if a is None or b is None or len(a) != len(b) or not all(_same_token(x, y, tol) for x, y in zip(a, b)):
            return {"line": n + 1, "expected": " ".join(b)[:200] if b is not None else None,
                    "got": " ".join(a)[:200] if a is not None else None}
    return None


def _same_value(got: Any, expected: Any, tol: float | None) -> bool:
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)) and not isinstance(got, bool):
        return got == expected or (tol is not None and abs(got - expected) <= tol * max(1.0, abs(expected)))
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_same_value(a, b, tol) for a, b in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same_value(got[k], expected[k], tol) for k in got)
    return got == expected


def _literal(text: str) -> Any:
    """A call's return value as the sandbox wrote it (``repr`` of plain data); a value equal to
    nothing when it is not a literal (inf, nan, or bytes the program wrote itself)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNREADABLE


_UNREADABLE = object()


def _literals(program: str) -> set[str]:
    """The program's string and number constants, whitespace-normalised (a syntax error: none)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    return {" ".join(str(n.value).split()) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, (str, int, float)) and not isinstance(n.value, bool)}


def _norm(text: str) -> str:
    return " ".join(text.split())


def check_code(response: str, references: list[str], *, choices=None, prompt: str | None = None,
               **options: Any) -> Check:
    opts = CodeOptions(**options)
    program, fence = extract(response)
    if program is None or not program.strip():
        return Check.unparseable("no code block or <answer> in the response", confidence=1.0)
    runner = sandbox.runner_for(fence or "")
    if runner is None:
        return Check(0.0, "error", 0.0, program[:200], (
            "unsupported_language", f"no runner for {fence!r}; this server runs {', '.join(sandbox.RUNNERS)}"))
    try:
        tests = parse_tests(references[0], opts.max_cases)
    except BadTests as exc:
        return Check(0.0, "error", 0.0, program[:200], ("bad_reference", str(exc)))
    why = sandbox.available()
    if why:
        return Check(0.0, "error", 0.0, program[:200], ("sandbox_unavailable", why))
    limits = sandbox.Limits(case_timeout_s=opts.case_timeout_s, memory_bytes=opts.memory_mb << 20,
                            processes=opts.processes, output_bytes=opts.output_kb << 10)
    job = {"mode": tests.mode, "source": program, "cases": tests.cases, "fn_name": tests.fn_name}
    results, ended = sandbox.run(job, limits, opts.item_timeout_s, runner)
    visible = _norm(prompt or "")
    literals = _literals(program) if tests.mode == "stdio" and visible else set()
    cases = []
    for i in range(len(tests.cases)):
        if i < len(results):
            cases.append(_judge(tests, i, results[i], opts.float_tolerance, literals, visible))
        else:
            cases.append({"passed": False, "status": "timeout" if ended and "took over" in ended else "harness_killed",
                          "time": None, "why": ended or "the sandbox ended early"})
    passed, n = sum(d["passed"] for d in cases), len(cases)
    score = passed / n if opts.reward == "fraction" else float(passed == n)
    failed = next((d for d in cases if not d["passed"] and d["status"] != "wrong_answer"), None)
    error = (f"code_{failed['status']}", _describe(failed, passed, n)) if failed else None
    verdict = "correct" if passed == n else ("incorrect" if score == 0 else "partial")
    return Check(score, verdict, 1.0, program[:200], error,
                 {"mode": tests.mode, "passed": passed, "cases": n, "results": cases})


def _judge(tests: Tests, i: int, r: dict, tol: float | None, literals: set[str], visible: str) -> dict:
    """One case's entry in ``details``, from the sandbox's result line."""
    d: dict[str, Any] = {"passed": False, "status": r["status"], "time": r.get("time")}
    if r["status"] == "ok" and tests.mode == "stdio":
        stdin, want = tests.cases[i]["stdin"], tests.expected[i]
        kept = tests.cases[i]["keep"]
        diff = first_difference(r["stdout"], want, tol) if r.get("stdout_bytes", 0) <= kept else {
            "line": None, "expected": f"{len(want.encode())} bytes", "got": f"{r['stdout_bytes']} bytes"}
        if diff is not None:
            d["status"], d["difference"] = "wrong_answer", diff
        elif stdin.strip() and not r["read_input"]:
            d["status"], d["why"] = "hard_coded", "the program did not read its input"
        elif literals and all(_norm(t) in literals and _norm(t) in visible for t in (stdin, want)):
            d["status"], d["why"] = "hard_coded", "the test's input and output are literals in the program"
        else:
            d["passed"] = True
    elif r["status"] == "ok" and tests.mode == "call":
        want = tests.expected[i]
        got = _literal(r["value"]) if r.get("passed") else None
        if r.get("passed") and (_same_value(got, want, tol) or (
                isinstance(want, list) and len(want) == 1 and _same_value(got, want[0], tol))):
            d["passed"] = True
        else:
            d["status"] = "wrong_answer"
            d["difference"] = {"expected": json.dumps(want)[:200], "got": (r.get("value") or "")[:200]}
    elif r["status"] == "ok":
        d["passed"] = bool(r.get("passed"))
        if not d["passed"]:
            d["status"] = "tests_not_finished"
    elif tests.mode == "assert" and r["status"] == "runtime_error" and r.get("exit") == 3:
        d["status"] = "exited_before_tests"
    if r.get("stderr") and not d["passed"]:
        d["stderr"] = r["stderr"][-500:]
    return d


def _describe(case: dict, passed: int, n: int) -> str:
    what = {"timeout": "a case ran past its time limit", "memory_limit": "a case ran out of memory",
            "output_limit": "a case wrote more than the output limit", "runtime_error": "a case failed with an error",
            "killed": "a case was killed by a signal", "syntax_error": "the program does not compile",
            "harness_killed": "the program killed the test harness", "hard_coded": case.get("why", "hard-coded"),
            "exited_before_tests": "the program exited before the tests ran",
            "tests_not_finished": "the tests did not finish"}.get(case["status"], case["status"])
    return f"{what}; {passed}/{n} cases passed"


VERIFIER = Verifier(
    "code", check_code, CodeOptions, version=1,
    description="runs the program in the response against the item's tests in a bubblewrap sandbox",
    sources=("harmo.server.rewards.code", "harmo.server.sandbox", "harmo.server.sandbox_harness"),
    workers=True, job="code", unify=False)
