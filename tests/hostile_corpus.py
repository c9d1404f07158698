"""Hostile and malformed input, each case with the answer it must get and a time bound.

What a careless or hostile client sends, and what RL produces on its own (degenerate rollouts:
runs of one character at the response limit, endless boxes and tags, huge numbers). A case is
one request. ``status`` 4xx: the answer names the problem (``fragment``). ``status`` 200: the
hostile item (id ``x``) has an error with one of the codes in ``codes`` (empty: any typed
outcome, a verdict or a typed error), a reward or not as ``reward`` says, and the neighbour
item (id ``ok``) is scored as if it were alone. Every case answers within ``max_s``.

The server these run against (``tests/test_hostile_corpus.py``) keeps the shipped limits and
profile, with short deadlines: math 2 s, instruction checks 2 s, groups 2 s.
"""
from __future__ import annotations

import base64
import gzip
import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

LIMIT = 262_144  # the shipped HARMO_MAX_RESPONSE_CHARS
BODY_LIMIT = 256 * 2**20  # the shipped HARMO_MAX_BODY_BYTES
N = LIMIT - 100  # a degenerate response just under it
NEIGHBOUR = {"id": "ok", "response": "<think>4</think><answer>4</answer>", "reference": "4"}
NEIGHBOUR_REWARD = 2.0  # accuracy 1 + format 1 under the shipped profile, alone in its request


@dataclass(frozen=True)
class Case:
    name: str
    body: Any  # bytes are sent as they are; anything else as JSON
    status: int = 200
    fragment: str = ""
    codes: frozenset[str] = frozenset()  # "component/code" the hostile item may or must carry
    must_error: bool = False  # the item must carry one of ``codes``
    reward: bool | None = None  # True: a number; False: null; None: either
    path: str = "/score"
    headers: dict[str, str] = field(default_factory=dict)
    max_s: float = 6.0


def _with_neighbour(item: dict[str, Any], **request: Any) -> dict[str, Any]:
    return {"items": [{"id": "x", **item}, NEIGHBOUR], **request}


def _raw(name: str, body: bytes | str, fragment: str, status: int = 422, path: str = "/score", **kw: Any) -> Case:
    return Case(name, body.encode() if isinstance(body, str) else body, status, fragment, path=path, **kw)


def raw_bodies() -> list[Case]:
    """Bodies that are not a valid request: 4xx naming the problem, never a 500."""
    cases = []
    for word in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400"):
        cases.append(_raw(f"{word} response", f'{{"items":[{{"response":{word}}}]}}', "valid string"))
        cases.append(_raw(f"{word} reference", f'{{"items":[{{"response":"a","reference":{word}}}]}}', "reference"))
        cases.append(_raw(f"{word} group size", f'{{"items":[{{"id":"a","group_id":"g","group_size":{word},'
                                                f'"response":"a"}}]}}', "group_size"))
        cases.append(_raw(f"{word} OpenRLHF query", f'{{"query":[{word}]}}', "query", path="/get_reward"))
    for field_, body in [
        ("id", '{"items":[{"id":"\\ud800","response":"x"}]}'),
        ("response", '{"items":[{"response":"a\\udbffb"}]}'),
        ("reference", '{"items":[{"response":"a","reference":"\\udc00"}]}'),
        ("reference list", '{"items":[{"response":"a","reference":["1","\\udc00"]}]}'),
        ("prompt", '{"items":[{"response":"a","prompt":"\\ud83d"}]}'),
        ("group id", '{"items":[{"response":"a","group_id":"\\ud800"}]}'),
        ("data source", '{"items":[{"response":"a","data_source":"\\ud800"}]}'),
        ("choices", '{"items":[{"response":"a","reference":"A","choices":["\\ud800","b"]}]}'),
        ("message", '{"items":[{"response":"a","messages":[{"role":"user","content":"\\ud800"}]}]}'),
        ("metadata key", '{"items":[{"response":"a","metadata":{"\\udfff":1}}]}'),
        ("constraint kwarg", '{"items":[{"response":"a","constraints":[{"id":"keywords:existence",'
                             '"kwargs":{"keywords":["\\ud800"]}}]}]}'),
        ("OpenRLHF label", '{"query":["q"],"labels":["\\ud800"]}'),
    ]:
        path = "/get_reward" if field_.startswith("OpenRLHF") else "/score"
        cases.append(_raw(f"lone surrogate in {field_}", body, "surrogate", path=path))
    cases += [
        _raw("truncated JSON", '{"items": [', "JSON"),
        _raw("empty body", b"", "", status=422),
        _raw("JSON null", "null", "", status=422),
        _raw("a JSON list", "[]", "", status=422),
        _raw("a JSON string", '"items"', "", status=422),
        _raw("items not a list", '{"items":{"response":"a"}}', "list"),
        _raw("no items", '{"items":[]}', "at least 1"),
        _raw("an item not an object", '{"items":["a"]}', "items"),
        _raw("unknown field", '{"items":[{"response":"a","refrence":"a"}]}', "refrence"),
        _raw("unknown request field", '{"items":[{"response":"a"}],"profil":"x"}', "profil"),
        _raw("cache as a number", '{"items":[{"response":"a"}],"cache":0}', "boolean"),
        _raw("cache as a string", '{"items":[{"response":"a"}],"cache":"false"}', "boolean"),
        _raw("unknown task", '{"items":[{"response":"a","task":"essay"}]}', "not a task"),
        _raw("task of another case", '{"items":[{"response":"a","task":"MATH"}]}', "task"),
        _raw("unknown profile", '{"items":[{"response":"a"}],"profile":"nope"}', "nope"),
        _raw("response null", '{"items":[{"response":null}]}', "response"),
        _raw("response a list", '{"items":[{"response":["a"]}]}', "response"),
        _raw("response a number", '{"items":[{"response":4}]}', "response"),
        _raw("response missing", '{"items":[{"reference":"4"}]}', "response"),
        _raw("reference a number", '{"items":[{"response":"4","reference":4}]}', "reference"),
        _raw("reference an object", '{"items":[{"response":"4","reference":{"a":1}}]}', "reference"),
        _raw("choices a string", '{"items":[{"response":"A","reference":"A","choices":"ABCD"}]}', "choices"),
        _raw("group size zero", '{"items":[{"id":"a","group_id":"g","response":"a","group_size":0}]}', "group_size"),
        _raw("group size negative", '{"items":[{"id":"a","group_id":"g","response":"a","group_size":-4}]}',
             "group_size"),
        _raw("group size a string", '{"items":[{"id":"a","group_id":"g","response":"a","group_size":"four"}]}',
             "group_size"),
        _raw("group size a fraction", '{"items":[{"id":"a","group_id":"g","response":"a","group_size":2.5}]}',
             "group_size"),
        _raw("group size without ids", '{"items":[{"response":"a","group_size":4}]}', "group_size"),
        _raw("messages not a list", '{"items":[{"response":"a","messages":"hi"}]}', "messages"),
        _raw("message without role", '{"items":[{"response":"a","messages":[{"content":"hi"}]}]}', "role"),
        _raw("images not a list", '{"items":[{"response":"a","images":"data:image/png;base64,AAAA"}]}', "images"),
        _raw("image neither URL nor data URI", '{"items":[{"response":"a","images":["data:image/png"]}]}',
             "data URI"),
        _raw("constraint without id", '{"items":[{"response":"a","constraints":[{"kwargs":{}}]}]}', "id"),
        _raw("constraints not a list", '{"items":[{"response":"a","constraints":"keywords:existence"}]}',
             "constraints"),
        _raw("metadata a list", '{"items":[{"response":"a","metadata":[1,2]}]}', "metadata"),
        _raw("JSON nested 100,000 deep", '{"items":[{"response":"a","metadata":{"m":' + "[" * 100_000 +
             "]" * 100_000 + "}}]}", "nests too deep", status=400),
        _raw("kwargs nested 500 deep", json.dumps({"items": [{"response": "x", "constraints": [
            {"id": "keywords:existence", "kwargs": {"keywords": json.loads("[" * 500 + "]" * 500)}}]}]}),
             "deeper than"),
        _raw("metadata nested 100 deep", '{"items":[{"response":"a","metadata":{"m":' + "[" * 100 + "]" * 100 + "}}]}",
             "deeper than"),
        _raw("not UTF-8", b'{"items":[{"response":"\xff\xfe\xfa"}]}', "UTF-8", status=400),
        _raw("Latin-1 declared", '{"items":[{"response":"caf\u00e9"}]}'.encode("latin-1"), "UTF-8", status=400),
        _raw("OpenRLHF query empty", '{"query":[]}', "query", path="/get_reward"),
        _raw("OpenRLHF prompts of another length", '{"query":["a","b"],"prompts":["a"]}', "prompts",
             path="/get_reward"),
        _raw("OpenRLHF labels of another length", '{"query":["a"],"labels":["1","2"]}', "labels",
             path="/get_reward"),
        _raw("OpenRLHF query a string", '{"query":"a"}', "query", path="/get_reward"),
        _raw("OpenRLHF query of numbers", '{"query":[1,2]}', "query", path="/get_reward"),
    ]
    return cases


def _degenerate(n: int) -> list[tuple[str, str]]:
    r = random.Random(14)
    return [
        ("spaces after a marker", "answer: x" + " " * n + "y"),
        ("newlines after a marker", "answer:" + "\n" * n + "B"),
        ("newlines", "x" + "\n" * n + "x"),
        ("spaces and newlines", " \n" * (n // 2)),
        ("dots in a box", "\\boxed{1" + "." * n + "x}"),
        ("dollars", "$" * n),
        ("open brackets", "(" * n),
        ("open braces", "{" * n),
        ("backslashes", "\\" * n),
        ("open boxes", "\\boxed{" * (n // 7)),
        ("answer tags", "<answer>" * (n // 8)),
        ("closing tags", "</think>" * (n // 16) + "<answer>" + "</answer>x" * (n // 20)),
        ("digits", "9" * n),
        ("digit groups", "1,000" * (n // 5)),
        ("answer words", "the answer is " * (n // 14)),
        ("option words", "option" + " " * (n // 2) + ":" + " " * (n // 2)),
        ("bold marks", "**x" * (n // 3)),
        ("letters and dots", "A. " * (n // 3)),
        ("symbol soup", "".join(r.choice("ab1 .,$\\{}()[]<>/*\n:") for _ in range(n))),
        ("CJK markers", "答案" * (n // 2)),
    ]


# math-verify on a degenerate answer may run into the math deadline: a typed timeout, in bounded time
_SLOW_MATH = frozenset({"accuracy/timeout"})


def degenerate_responses() -> list[Case]:
    """Runs of one character up to the response limit, per task: a verdict or a typed error, in
    bounded time (math in the workers, under their deadline)."""
    refs = {"math": "3", "choice": "B", "number": "3", "chart": "3", "ocr": "hello world", "vqa": ["2"] * 10,
            "text": "hello"}
    cases = []
    for i, (what, response) in enumerate(_degenerate(N)):
        # every task sees every shape, spread over the cases so that the corpus stays quick
        for task in (list(refs)[i % len(refs)], list(refs)[(i + 3) % len(refs)]):
            item: dict[str, Any] = {"response": response, "task": task, "reference": refs[task]}
            if task == "choice":
                item["choices"] = ["red", "green", "blue", "yellow"]
            cases.append(Case(f"{what}, {task}", _with_neighbour(item), codes=_SLOW_MATH, reward=True))
        cases.append(Case(f"{what}, auto", _with_neighbour({"response": response, "reference": "3"}),
                          codes=_SLOW_MATH, reward=True))
    return cases


def _ifeval(name: str, cid: str, kwargs: dict[str, Any], response: str, codes: set[str] | None = None,
            must: bool = False) -> Case:
    item = {"prompt": "Write something.", "response": response, "constraints": [{"id": cid, "kwargs": kwargs}]}
    return Case(name, _with_neighbour(item), codes=frozenset(codes or {"instruction/timeout"}), must_error=must,
                max_s=8.0)


def instructions() -> list[Case]:
    """User regexes, bad kwargs, and the reference's quadratic passes on degenerate text: a verdict,
    ``bad_constraint`` or ``timeout``, always bounded by the workers' deadline."""
    bad = {"instruction/bad_constraint"}
    cases = [
        _ifeval("catastrophic keyword regex", "keywords:existence", {"keywords": ["(a+)+$"]}, "a" * 40 + "b",
                must=True),
        _ifeval("catastrophic frequency regex", "keywords:frequency",
                {"keyword": "(x+x+)+y", "frequency": 1, "relation": "at least"}, "x" * 40, must=True),
        _ifeval("catastrophic forbidden word", "keywords:forbidden_words", {"forbidden_words": ["(a|aa)+$"]},
                "a" * 60 + "!", must=True),
        _ifeval("invalid regex keyword", "keywords:existence", {"keywords": ["("]}, "x", bad, True),
        _ifeval("invalid regex forbidden word", "keywords:forbidden_words", {"forbidden_words": ["?"]}, "x", bad,
                True),
        _ifeval("invalid regex postscript", "detectable_content:postscript", {"postscript_marker": "[P.S."}, "x",
                bad, True),
        _ifeval("invalid regex section splitter", "detectable_format:multiple_sections",
                {"section_spliter": "(", "num_sections": 2}, "x", bad, True),
        _ifeval("boolean word count", "length_constraints:number_words", {"num_words": True, "relation": "at least"},
                "one two", bad, True),
        _ifeval("boolean keyword", "keywords:existence", {"keywords": [True]}, "x", bad, True),
        _ifeval("negative count", "length_constraints:number_words", {"num_words": -3, "relation": "at least"},
                "one", bad, True),
        _ifeval("count as text", "length_constraints:number_words", {"num_words": "many", "relation": "at least"},
                "one", bad, True),
        _ifeval("unknown relation", "length_constraints:number_words", {"num_words": 3, "relation": "about"},
                "one", bad, True),
        _ifeval("missing kwargs", "keywords:existence", {}, "x", bad, True),
        _ifeval("unknown constraint", "keywords:everything", {}, "x", {"instruction/unknown_constraint"}, True),
        _ifeval("JSON format on 100,000 brackets", "detectable_format:json_format", {}, "[" * 100_000, set()),
    ]
    quadratic = [
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, " " * N),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "x" + "\n" * N),
        ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[" * N),
        ("detectable_format:title", {}, "<" * N),
        ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "A. " * (N // 3)),
        ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
         "A. " * (N // 3)),
        ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*" * N),
        ("language:response_language", {"language": "en"}, "x " * (N // 2)),
        ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "z" * N),
        ("startend:quotation", {}, '"' * N),
        ("detectable_format:json_format", {}, "{" * N),
        ("punctuation:no_comma", {}, "," * N),
    ]
    cases += [_ifeval(f"{cid} at the response limit", cid, kw, text) for cid, kw, text in quadratic]
    return cases


def sizes_and_images() -> list[Case]:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
    big = base64.b64encode(b"\0" * (11 * 2**20)).decode()
    inp = "input/{}".format
    return [
        Case("response one past the limit", _with_neighbour({"response": "x" * (LIMIT + 1)}),
             codes=frozenset({inp("response_too_long")}), must_error=True, reward=False),
        Case("prompt past the limit", _with_neighbour({"response": "x", "prompt": "p" * (LIMIT + 1)}),
             codes=frozenset({inp("prompt_too_long")}), must_error=True, reward=False),
        Case("messages past the limit", _with_neighbour({"response": "x", "messages": [
            {"role": "user", "content": "m" * (LIMIT // 2)}, {"role": "user", "content": "m" * (LIMIT // 2 + 1)}]}),
             codes=frozenset({inp("prompt_too_long")}), must_error=True, reward=False),
        Case("image past the limit", _with_neighbour({"response": "x", "images": [f"data:image/png;base64,{big}"]}),
             codes=frozenset({inp("image_too_large")}), must_error=True, reward=False, max_s=15),
        Case("references past the limit", _with_neighbour({"response": "x", "task": "ocr",
                                                           "reference": ["y" * 40_000, "z" * 40_000]}),
             codes=frozenset({"accuracy/reference_too_long"}), must_error=True),
        Case("ANLS against a long reference", _with_neighbour({"response": "y" * N, "task": "ocr",
                                                               "reference": "y" * 60_000}), reward=True),
        Case("a small image the profile does not read", _with_neighbour(
            {"response": "4", "reference": "4", "images": [f"data:image/png;base64,{png}"]})),
        Case("a remote image URL the profile does not read", _with_neighbour(
            {"response": "4", "reference": "4", "images": ["http://169.254.169.254/latest/meta-data/"]})),
        # an image reference no backend could read is refused whatever the profile, typed
        Case("an image that is not a data URL", _with_neighbour(
            {"response": "4", "reference": "4", "images": ["not a data url"]}),
             codes=frozenset({"input/bad_image"}), must_error=True, reward=False),
        Case("an image data URL that is not base64", _with_neighbour(
            {"response": "4", "reference": "4", "images": ["data:image/png;base64," + " " * 5000 + "!"]}),
             codes=frozenset({"input/bad_image"}), must_error=True, reward=False),
        Case("an image in a message that is a file path", _with_neighbour(
            {"response": "4", "reference": "4", "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}]}),
             codes=frozenset({"input/bad_image"}), must_error=True, reward=False),
        Case("27 choices", _with_neighbour({"response": "(A)", "reference": "A", "task": "choice",
                                            "choices": [str(i) for i in range(27)]}),
             codes=frozenset({"accuracy/bad_choices"}), must_error=True),
        Case("no reference", _with_neighbour({"response": "4", "task": "math"}),
             codes=frozenset({"accuracy/no_reference"}), must_error=True),
        Case("reference naming no option", _with_neighbour({"response": "A", "reference": "Q", "task": "choice",
                                                            "choices": ["a", "b", "c"]}),
             codes=frozenset({"accuracy/bad_reference"}), must_error=True),
        Case("NaN response length", _with_neighbour({"response": "4", "reference": "4", "group_id": "g",
                                                     "metadata": {"response_length": "NaN"}}),
             codes=frozenset({"length/bad_metadata"}), must_error=True, reward=True),
        Case("negative response length", _with_neighbour({"response": "4", "reference": "4", "group_id": "g",
                                                          "metadata": {"response_length": -5}}),
             codes=frozenset({"length/bad_metadata"}), must_error=True, reward=True),
    ]


def math_bombs() -> list[Case]:
    """Answers that are expensive to parse or to compare: a verdict or a typed timeout, within
    the math deadline, the neighbour unaffected."""
    answers = [
        ("5,000 digits", "9" * 5000, "9" * 5000),
        ("50,000 digits against 3", "9" * 50_000, "3"),
        ("tower of powers", "10^{10^{10^{10}}}", "3"),
        ("huge power", "2^{99999999}", "3"),
        ("factorial of a huge number", "99999999!", "3"),
        ("nested roots", "\\sqrt{" * 2000 + "2" + "}" * 2000, "3"),
        ("nested fractions", "\\frac{1}{" * 1000 + "2" + "}" * 1000, "3"),
        ("division by zero", "\\frac{1}{0}", "3"),
        ("a long sum", "+".join(["x"] * 5000), "3"),
        ("a huge matrix", "\\begin{pmatrix}" + "\\\\".join(["&".join(["1"] * 60)] * 60) + "\\end{pmatrix}", "3"),
        ("an integral", "\\int_0^\\infty e^{-x^{x^x}} dx", "3"),
        ("a huge set", "\\{" + ",".join(map(str, range(3000))) + "\\}", "3"),
        ("unbalanced braces", "{" * 3000 + "3", "3"),
        ("gold a bomb", "3", "10^{10^{10^{10}}}"),
        ("gold nested", "3", "\\sqrt{" * 2000 + "2" + "}" * 2000),
    ]
    return [Case(f"math: {name}", _with_neighbour({"response": f"\\boxed{{{a}}}", "reference": g, "task": "math"}),
                 codes=frozenset({"accuracy/timeout", "accuracy/unparseable", "accuracy/bad_reference"}))
            for name, a, g in answers]


def groups_and_openrlhf() -> list[Case]:
    return [
        Case("group never completes", _with_neighbour({"id": "x", "group_id": "lonely", "group_size": 8,
                                                       "response": "4", "reference": "4"}),
             codes=frozenset({"group/incomplete_group"}), must_error=True, max_s=6),
        Case("group of sizes that disagree", {"items": [
            {"id": "x", "group_id": "g2", "group_size": 2, "response": "4", "reference": "4"},
            {"id": "y", "group_id": "g2", "group_size": 3, "response": "5", "reference": "4"}, NEIGHBOUR]},
             codes=frozenset({"group/incomplete_group"}), max_s=6),
        Case("duplicate ids in one group", {"items": [
            {"id": "x", "group_id": "g3", "response": "4", "reference": "4"},
            {"id": "x", "group_id": "g3", "response": "5", "reference": "4"}, NEIGHBOUR]}),
        Case("a group member past the limit", {"items": [
            {"id": "x", "group_id": "g4", "response": "x" * (LIMIT + 1), "reference": "4"},
            {"id": "y", "group_id": "g4", "response": "4", "reference": "4"}, NEIGHBOUR]},
             codes=frozenset({"input/response_too_long"}), must_error=True, reward=False),
        Case("OpenRLHF query of spaces", {"query": [" " * N], "prompts": [""], "labels": ["3"]},
             path="/get_reward"),
        # OpenRLHF takes a number for every query and ends the run on any non-200 answer: a query
        # without a reward, even the only one, gets the profile's error_value, flagged reward_null
        Case("OpenRLHF query past the limit", {"query": ["q" * (LIMIT + 10)], "prompts": ["q"], "labels": ["3"]},
             path="/get_reward"),
        Case("OpenRLHF one query of two past the limit", {"query": ["q" * (LIMIT + 10), "q The answer is 3"],
                                                           "prompts": ["q", "q"], "labels": ["3", "3"]},
             path="/get_reward"),
        Case("OpenRLHF prompt not a prefix", {"query": ["abc"], "prompts": ["zzz"], "labels": ["3"]},
             path="/get_reward"),
        Case("OpenRLHF labels null", {"query": ["The answer is 3"], "labels": [None]}, path="/get_reward"),
    ]


def headers() -> list[Case]:
    ok = _with_neighbour({"response": "4", "reference": "4"})
    return [
        Case("request id with a newline", ok, headers={"X-Request-ID": "a\tb"}),
        Case("request id of 10,000 characters", ok, headers={"X-Request-ID": "r" * 10_000}),
        Case("request id of JSON", ok, headers={"X-Request-ID": '{"level":"ERROR"}'}),
        Case("content type text", ok, headers={"Content-Type": "text/plain"}),
        Case("gzip declared, not gzip", json.dumps(ok).encode(), 400, "gzip", headers={"Content-Encoding": "gzip"}),
        Case("a gzip body", gzip.compress(json.dumps(ok).encode()), headers={"Content-Encoding": "gzip"}),
        Case("a deflate body", zlib.compress(json.dumps(ok).encode()), headers={"Content-Encoding": "deflate"}),
        Case("a brotli body", json.dumps(ok).encode(), 415, "not supported", headers={"Content-Encoding": "br"}),
        Case("a gzip bomb past the body limit", _bomb(BODY_LIMIT + 2**20), 413, "limit",
             headers={"Content-Encoding": "gzip"}),
    ]


def _bomb(size: int) -> bytes:
    """``size`` bytes of one JSON string, gzipped: a few hundred KB that decode past the body limit."""
    z = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * 2**20
    parts = [z.compress(b'{"items": [{"response": "')]
    parts += [z.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + z.flush()


def corpus() -> list[Case]:
    return raw_bodies() + degenerate_responses() + instructions() + sizes_and_images() + math_bombs() + \
        groups_and_openrlhf() + headers()
