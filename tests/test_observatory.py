"""The reward observatory and explanations, in process: each result says why on request; the
windows, histograms, rates and alerts over real scored traffic; the inspector; the offline
command's summary, early errors and report."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading

import pytest
from prometheus_client import REGISTRY

from harmo.protocol import ScoreRequest
from harmo.server.observatory import OTHER, histogram
from harmo.server.pipeline import ScoringPipeline
from harmo.server.profiles import ProfileSet
from harmo.server.rewards.length import measure
from harmo.server.settings import Settings
from tests.conftest import ROOT


def req(items: list[dict], profile: str | None = None, explain: bool = False) -> ScoreRequest:
    return ScoreRequest.model_validate({"profile": profile, "items": items, "explain": explain})


GROUP = [
    {"id": "short", "group_id": "g", "task": "math", "response": "<think>easy</think><answer>4</answer>",
     "reference": "4"},
    {"id": "wrong", "group_id": "g", "task": "math", "reference": "4",
     "response": "<think>hmm, well, let me think about it for a while</think><answer>5</answer>"},
    {"id": "bare", "group_id": "g", "task": "math", "response": "so the answer is 4 I believe", "reference": "4"},
]


def test_explain_is_off_by_default(pipeline):
    r = pipeline.score(req(GROUP)).results[0]
    assert r.explain is None and r.details is None


def test_explain_gives_every_part_its_inputs(pipeline):
    rs = {r.id: r for r in pipeline.score(req(GROUP, explain=True)).results}
    short, wrong, bare = rs["short"], rs["wrong"], rs["bare"]
    # length: the member's L, the group's L_ref (the mean of its correct members' word counts)
    lengths = {it["id"]: measure(it["response"], "words") for it in GROUP}
    ref = (lengths["short"] + lengths["bare"]) / 2
    ex = short.explain["length"]
    assert ex["L"] == lengths["short"] and ex["L_ref"] == pytest.approx(ref) and ex["unit"] == "words"
    assert (ex["P_max"], ex["tau"], ex["direction"]) == (0.5, 0.2, "short")
    assert ex["correct_members"] == ["short", "bare"] and ex["correct"] is True
    assert ex["value"] == short.components["length"] < 0  # 1 word against a reference of 3.5
    assert wrong.explain["length"]["correct"] is False
    # accuracy: what the rule read, and why no model was asked
    acc = short.explain["accuracy"]
    assert acc["extracted"] == "4" and acc["source"] == "rule:math" and acc["task"] == "math"
    assert "model" in acc["why"] and acc["value"] == 1.0
    # format: where the layout breaks
    assert short.explain["format"]["deviation"] is None
    dev = bare.explain["format"]["deviation"]
    assert dev["at"] == 0 and dev["found"].startswith("so the answer")
    # reward: the weighted terms add up to it
    rw = short.explain["reward"]
    assert sum(rw["terms"].values()) == pytest.approx(short.reward)


def test_format_deviation_points_at_the_first_wrong_character(pipeline):
    cases = {"<think>a</think> extra <answer>b</answer>": 17, "<think>a</think><answer>b": 25,
             "<answer>b</answer>": 0}
    items = [{"id": str(i), "task": "open", "response": text} for i, text in enumerate(cases)]
    rs = pipeline.score(req(items, explain=True)).results
    for r, at in zip(rs, cases.values()):
        assert r.explain["format"]["deviation"]["at"] == at, r.explain["format"]


def test_no_explanation_work_when_not_asked(pipeline, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("explanations computed for a request that did not ask")

    for where in ("harmo.server.stages.format.first_deviation", "harmo.server.stages.group.explain_length",
                  "harmo.server.pipeline.explain_length", "harmo.server.stages.verdict.explain"):
        monkeypatch.setattr(where, boom)
    rs = pipeline.score(req(GROUP)).results
    assert all(r.explain is None and not r.errors for r in rs[:1])


def test_a_group_across_requests_explains_its_length(pipeline):
    items = [{**it, "group_id": "across", "group_size": 2} for it in GROUP[:2]]
    first = pipeline.begin(req(items[:1], explain=True))
    second = pipeline.begin(req(items[1:], explain=True))
    for p in (first, second):
        assert all(t.wait(10) for t, _ in p.groups)
    a = pipeline.finish(first).results[0]
    ex = a.explain["length"]
    assert ex["L_ref"] == measure(GROUP[0]["response"], "words") and ex["correct_members"] == 1
    assert ex["group_members"] == 2 and "_length.ref" not in a.components


@pytest.fixture(scope="module")
def hacked_profiles(tmp_path_factory):
    path = tmp_path_factory.mktemp("obs") / "profiles.yaml"
    path.write_text(textwrap.dedent("""
        default: plain
        profiles:
          plain:
            weights: {accuracy: 1.0, format: 1.0}
          # a hole: whatever nothing judges is paid in full
          generous:
            weights: {accuracy: 1.0, format: 0.5}
            accuracy: {unjudged: 1.0}
    """))
    return ProfileSet.load(path)


@pytest.fixture()
def watched(pipeline, hacked_profiles):
    s = Settings(observatory_window=40, alert_min_items=20, inspector_items=5, observatory_max_series=3)
    with ScoringPipeline(s, hacked_profiles, rule_pool=pipeline.rule_pool, models=pipeline.models) as p:
        yield p


def series(p: ScoringPipeline, profile: str, source: str) -> dict:
    return next(s for s in p.observatory.snapshot()["series"]
                if (s["profile"], s["data_source"]) == (profile, source))


def math_items(n: int, correct: bool, source: str = "gsm8k", words: int = 5) -> list[dict]:
    return [{"id": f"{source}-{correct}-{i}", "data_source": source, "task": "math", "reference": str(i),
             "response": f"<think>{'step ' * words}</think><answer>{i if correct else i + 1}</answer>"}
            for i in range(n)]


def alerts(p: ScoringPipeline) -> set[tuple[str, str]]:
    return {(a["data_source"], a["alert"]) for a in p.observatory.alerts()}


def test_windows_hold_what_was_scored(watched):
    watched.score(req(math_items(30, True) + math_items(10, False)))
    s = series(watched, "plain", "gsm8k")
    assert s["total"] == 40 and s["items"] + s["previous_items"] == 40
    assert s["sources"] == {"rule": s["items"]} and s["null_rate"] == 0
    assert s["reward"]["n"] == s["items"] and sum(s["components"]["accuracy"]["counts"]) == s["items"]
    watched.score(req(math_items(200, True)))  # memory is bounded: two windows at most
    s = series(watched, "plain", "gsm8k")
    assert s["total"] == 240 and s["items"] == 40 and s["previous_items"] == 40


def test_a_component_shift_alerts_on_the_page_and_as_a_metric(watched):
    watched.score(req(math_items(40, True)))
    assert ("gsm8k", "shift:accuracy") not in alerts(watched)
    watched.score(req(math_items(40, False)))
    fired = [a for a in watched.observatory.alerts() if a["alert"] == "shift:accuracy"]
    assert fired and fired[0]["value"] == pytest.approx(-1.0)
    gauge = {"profile": "plain", "data_source": "gsm8k", "alert": "shift:accuracy"}
    assert REGISTRY.get_sample_value("harmo_reward_alert", gauge) == 1
    watched.score(req(math_items(40, False)))  # the new level is the norm: the alert stops
    assert ("gsm8k", "shift:accuracy") not in alerts(watched)
    assert REGISTRY.get_sample_value("harmo_reward_alert", gauge) == 0


def test_length_collapse_and_explosion(watched):
    watched.score(req(math_items(40, True, "a", words=40) + math_items(40, True, "b", words=4)))
    watched.score(req(math_items(40, True, "a", words=4) + math_items(40, True, "b", words=40)))
    got = alerts(watched)
    assert ("a", "length_collapse") in got and ("b", "length_explosion") in got


def test_unjudged_and_error_rates(watched):
    watched.score(req([{"data_source": "open", "task": "open", "response": f"text {i}"} for i in range(50)]))
    watched.score(req([{"data_source": "noref", "task": "math", "response": f"{i}"} for i in range(50)]))
    got = alerts(watched)
    assert ("open", "unjudged_rate") in got and ("noref", "error_rate") in got
    s = series(watched, "plain", "noref")
    assert s["errors"] == {"accuracy/no_reference": s["items"]}


def test_paid_hacks_are_flagged(watched):
    """Under a profile that pays what nothing judges, empty and format-only answers are paid:
    the detectors flag them; the same answers unpaid are not flagged."""
    hacks = [{"data_source": "h", "task": "open", "response": r}
             for r in ("", "<think></think><answer></answer>", "<think>hmm</think><answer> </answer>")]
    for _ in range(2):  # the current window: the newest half, these three
        watched.score(req(hacks, profile="generous"))
    assert series(watched, "generous", "h")["paid_flags"] == {"empty": 2, "format_only": 1}
    assert ("h", "paid_hack") in alerts(watched)
    watched.score(req([{**h, "data_source": "unpaid"} for h in hacks * 2], profile="plain"))
    assert series(watched, "plain", "unpaid")["paid_flags"] == {}


def test_data_sources_past_the_bound_share_one_series(watched):
    watched.score(req([it for k in range(6) for it in math_items(2, True, f"src{k}")]))
    names = {s["data_source"] for s in watched.observatory.snapshot()["series"]}
    assert names == {"src0", "src1", "src2", OTHER}  # three kept apart, the rest together


def test_the_inspector_keeps_recent_items_with_why(watched):
    out = watched.score(req(math_items(8, True)))
    assert all(r.explain is None for r in out.results)  # not asked: not sent
    rows = watched.observatory.inspected()
    assert len(rows) == 5 and rows[0]["id"] == "gsm8k-True-7"
    assert rows[0]["result"]["explain"]["accuracy"]["extracted"] == "7"


def test_kept_out_of_the_observatory(watched):
    watched.score(req(math_items(5, True)), observe=False)
    assert watched.observatory.snapshot()["series"] == [] and watched.observatory.inspected() == []


def test_histogram_bins():
    h = histogram([0.0, 0.05, 0.95, 1.0, float("nan")], bins=10)
    assert h["n"] == 4 and sum(h["counts"]) == 4 and h["counts"][0] == 2 and h["counts"][-1] == 2
    assert histogram([2.0, 2.0])["counts"] == [2]


# -- the offline command ---------------------------------------------------------------------
def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harmo.server.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_score_command_refuses_bad_arguments_in_one_line(tmp_path):
    out = tmp_path / "out.jsonl"
    good = tmp_path / "in.jsonl"
    good.write_text(json.dumps(GROUP[0]) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GROUP[0]) + "\n" + '{"respons": "x"}\n')
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({**GROUP[0], "task": "astrology"}) + "\n")
    cases = [((str(tmp_path / "missing.jsonl"), str(out)), "no such file"),
             ((str(odd), str(out)), "task 'astrology' is not a task"),
             ((str(good), str(out), "--profile", "nope"), "unknown profile 'nope'"),
             ((str(good), str(tmp_path / "no" / "out.jsonl")), "no folder"),
             ((str(bad), str(out)), "bad.jsonl:2: invalid item")]
    for args, said in cases:
        p = cli("score", *args)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and said in lines[0], p.stderr
        assert "Traceback" not in p.stderr
        assert not list(tmp_path.glob("*out.jsonl*")), "an output file was left behind"


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("offline")
    src = d / "in.jsonl"
    src.write_text("".join(json.dumps(it) + "\n" for it in GROUP + [{"task": "math", "response": "7"}]))
    p = cli("score", str(src), str(d / "out.jsonl"), "--report", str(d / "report.html"))
    assert p.returncode == 0, p.stderr[-2000:]
    return d, p


def test_score_command_prints_a_summary(offline_run):
    d, p = offline_run
    rows = [json.loads(line) for line in (d / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    acc = [r["components"]["accuracy"] for r in rows if "accuracy" in r["components"]]
    assert f"mean {sum(acc) / len(acc):8.4f}   over {len(acc)} items" in p.stdout
    assert "accuracy/no_reference" in p.stdout and "null rewards" in p.stdout
    assert "scoring" in p.stderr  # the progress bar


def test_the_report_is_one_self_contained_file(offline_run):
    d, _ = offline_run
    html = (d / "report.html").read_text()
    assert 'id="harmo-data"' in html and "<style>" in html
    assert not re.search(r"<script[^>]*\ssrc=|<link(?![^>]*href=\"data:)", html), "the report loads a file"
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a fetch
    data = json.loads(html.split('id="harmo-data">', 1)[1].split("</script>", 1)[0])
    [s] = data["observatory"]["series"]
    assert s["items"] == s["total"] == 4 and data["summary"]["items"] == 4


def test_recording_is_safe_from_many_threads(watched):
    threads = [threading.Thread(target=watched.score, args=(req(math_items(20, True, f"t{k % 2}")),))
               for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(s["total"] for s in watched.observatory.snapshot()["series"]) == 160
