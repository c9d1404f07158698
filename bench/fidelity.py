"""Agreement of the rule verifiers with public labelled suites, written to ``docs/fidelity.md``.

    python -m bench.fidelity --mcq CASES_JSON --mathvista MATHVISTA_DIR --surrogate
                             [--out docs/fidelity.md] [--mismatches FILE]

The suites are not copied into this tree; point the command at a checkout of each:

- ``--mcq``: lmms-eval's multiple-choice extraction contract,
  ``test/eval/mcq_extract/cases.json`` (github.com/EvolvingLMMs-Lab/lmms-eval): responses with
  the letter a careful grader reads (or none). Each case is scored twice through the pipeline
  (task ``choice``): with the option count (the case's letters as ``choices``) and without it.
  Agreement is the extracted letter equal to the label; a *wrong letter* is a letter read where
  the label is another letter or none (it would be paid wherever the gold is that letter).
- ``--mathvista``: a checkout of github.com/lupantech/MathVista; its ``results/<model>/output_*.json``
  hold four models' recorded testmini responses with the benchmark's own verdict (``true_false``:
  GPT-4 answer extraction, then its normalisation). Each response is scored with
  ``task: auto``, the question's ``choices`` and its prompt; agreement is our verdict equal to
  the recorded one. math-verify (``verify(parse(boxed gold), parse(response))``) is scored on the
  free-form ones as the peer.

- always: math-verify's own regression table (default options, from its sdist on PyPI), scored
  by the math verifier and by math-verify's ``verify`` itself;
- ``--surrogate``: the embedding surrogate's cosine on honest paraphrases and on gamed answers,
  before and after its guards.

Every case goes through ``ScoringPipeline`` (the server's code path, in-process) under the
``accuracy_only`` profile.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import platform
import re
from importlib.metadata import version
from pathlib import Path

from harmo.protocol import ScoreRequest
from harmo.server.pipeline import ScoringPipeline

MATHVISTA_MODELS = {  # four models' zero-shot testmini outputs, as the benchmark recorded them
    "bard": "results/bard/output_bard.json",
    "gpt4": "results/gpt4/output_gpt4.json",
    "claude": "results/claude/output_claude.json",
    "llava-llama-2-13b": "results/llava/output_llava_llama_2_13b.json",
}
BATCH = 256
SUITES = {  # name: (repository, the commit measured)
    "lmms-eval": ("https://github.com/EvolvingLMMs-Lab/lmms-eval", "3e7e22d2b2838bf6cca555a067153d4f401291d4"),
    "MathVista": ("https://github.com/lupantech/MathVista", "53d525874bdde205128e6b160b7357a88277d479"),
}
NOTES = [
    "How to read them:",
    "",
    "- *With option count*: each case's letters are sent as `choices` (a list of letters is the",
    "  alphabet itself). *Without*: no choices and no prompt; the verifier then takes A-D, stretched to",
    "  the gold letter. Letters outside an alphabet the response cannot know (a lower-case or sparse one)",
    "  are then read as letters; they are never the gold, so never paid.",
    "- One disagreement is deliberate: a fullwidth \"Ｂ\" reads as B here, as \"１５\" reads as 15 in the",
    "  math and number verifiers (one Unicode reading for every verifier, `rewards/unicode.py`); the",
    "  contract refuses it.",
    "- MathVista's grader maps an extraction that names no option to the closest option by edit",
    "  distance, so a refusal is often recorded right; the table counts those apart. Where we pay an answer",
    "  it recorded wrong, the response and its recorded extraction are listed for the reader to judge.",
]


def _score(pipeline: ScoringPipeline, items: list[dict]) -> list:
    out = []
    for k in range(0, len(items), BATCH):
        req = ScoreRequest.model_validate({"profile": "accuracy_only", "items": items[k : k + BATCH]})
        out += pipeline.score(req).results
    return out


def mcq(pipeline: ScoringPipeline, path: Path) -> dict:
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    figures: dict = {"cases": len(cases)}
    mismatches = []
    for mode in ("with option count", "without option count"):
        items = []
        for c in cases:
            letters = [x.upper() for x in (c["choices"] or [])]
            gold = c["expected"] or (letters[0] if letters else "A")
            items.append({"response": c["response"] or "", "reference": gold, "task": "choice",
                          "choices": letters or None if mode.startswith("with ") else None})
        results = _score(pipeline, items)
        agree = wrong = 0
        for c, r in zip(cases, results):
            got = (r.accuracy.extracted or "").upper() if r.accuracy.verdict != "error" else "error"
            if got == c["expected"]:
                agree += 1
                continue
            if got not in ("", "error"):
                wrong += 1
            mismatches.append({"suite": "mcq", "mode": mode, "id": c["id"], "response": c["response"],
                               "choices": c["choices"], "expected": c["expected"], "got": got,
                               "errors": [e.message for e in r.errors]})
        figures[mode] = {"agree": agree, "wrong_letters": wrong}
    return {"figures": figures, "mismatches": mismatches}


def _mathvista_item(row: dict) -> dict:
    item = {"response": row.get("response") or "", "reference": str(row["answer"]), "task": "auto",
            "prompt": row.get("query")}
    if row.get("question_type") == "multi_choice" and row.get("choices"):
        item["choices"] = [str(c) for c in row["choices"]]
    return item


def mathvista(pipeline: ScoringPipeline, root: Path) -> dict:
    from math_verify import parse, verify

    figures: dict = {}
    mismatches = []
    totals = collections.Counter()
    for model, rel in MATHVISTA_MODELS.items():
        rows = list(json.loads((root / rel).read_text(encoding="utf-8")).values())
        results = _score(pipeline, [_mathvista_item(r) for r in rows])
        c = collections.Counter()
        for row, res in zip(rows, results):
            kind = "choice" if row.get("question_type") == "multi_choice" else "free-form"
            ours, truth = res.accuracy.verdict == "correct", bool(row["true_false"])
            c[f"{kind}_n"] += 1
            c[f"{kind}_agree"] += ours == truth
            c["paid_wrong"] += ours and not truth
            c["refused_right"] += truth and not ours
            # MathVista maps an extraction that is no option to the closest option by edit
            # distance: a refusal can be recorded right. Counted apart, and agreement without them.
            said = str(row.get("extraction", "")).strip()
            guessed = kind == "choice" and said not in [str(x) for x in row["choices"]] \
                and not re.fullmatch(r"\(?[A-Z]\)?", said)
            c["guessed"] += guessed
            c["guessed_right_refused"] += guessed and truth and not ours
            c["agree_not_guessed"] += (ours == truth) and not guessed
            if kind == "free-form":
                try:
                    mv = bool(verify(parse(f"\\boxed{{{row['answer']}}}"), parse(row.get("response") or "")))
                except Exception:  # noqa: BLE001 - the peer's own failure is a miss for it
                    mv = False
                c["mv_agree"] += mv == truth
            if ours != truth:
                mismatches.append({"suite": "mathvista", "model": model, "pid": row.get("pid"), "kind": kind,
                                   "answer": row["answer"], "choices": row.get("choices"),
                                   "recorded": truth, "ours": ours, "extracted": res.accuracy.extracted,
                                   "source": res.accuracy.source,
                                   "errors": [f"{e.code}: {e.message}" for e in res.errors],
                                   "recorded_extraction": row.get("extraction"),
                                   "tail": (row.get("response") or "")[-300:]})
        figures[model] = dict(c)
        totals.update(c)
    figures["all"] = dict(totals)
    return {"figures": figures, "mismatches": mismatches}


def surrogate() -> dict:
    """The embedding surrogate (the packaged MiniLM) on honest paraphrases and on the ways to game
    it, before and after its guards."""
    from sentence_transformers import SentenceTransformer

    from harmo.server.models.embedding import guard, packaged_minilm
    from tests.paraphrase_cases import PARAPHRASES, hacks

    model = SentenceTransformer(packaged_minilm())

    def cos(a: str, b: str) -> float:
        e = model.encode([a, b], normalize_embeddings=True)
        return max(0.0, float(e[0] @ e[1]))

    honest = [(cos(r, p), guard(p, [r])[0]) for r, p in PARAPHRASES]
    ref, other = PARAPHRASES[0][0], PARAPHRASES[4][0]
    gamed = {name: (cos(ref, resp), cos(ref, resp) * guard(resp, [ref])[0]) for name, resp in hacks(ref, other).items()}
    return {"paraphrases": len(honest), "unchanged": sum(g == 1.0 for _, g in honest),
            "mean_before": sum(c for c, _ in honest) / len(honest),
            "mean_after": sum(c * g for c, g in honest) / len(honest),
            "unrelated": cos(ref, PARAPHRASES[-1][0]), "gamed": gamed}


def math_verify_cases(pipeline: ScoringPipeline) -> dict:
    """math-verify's own regression table (default options), read from its sdist: its expected
    verdicts against ours (``task: math``) and against math-verify's ``verify`` itself."""
    from math_verify import parse, verify

    from devtools.mv_cases import default_option_cases

    cases = default_option_cases()
    results = _score(pipeline, [{"response": p, "reference": g, "task": "math"} for g, p, _ in cases])
    ours = sum((r.accuracy.verdict == "correct") == bool(e) for (_, _, e), r in zip(cases, results))
    ref = sum(bool(verify(parse(g), parse(p))) == bool(e) for g, p, e in cases)
    return {"cases": len(cases), "ours": ours, "reference": ref, "version": version("math-verify")}


def _pct(a: int, n: int) -> str:
    return f"{a}/{n} ({100 * a / n:.1f}%)" if n else "-"


def _one_line(s: str, n: int = 110) -> str:
    s = " ".join(str(s).split()).replace("|", "\\|")
    return s if len(s) <= n else "…" + s[-n:]


def render(mcq_fig: dict | None, mv_fig: dict | None, sources: dict, emb: dict | None = None,
           mismatches: list[dict] = (), mvc: dict | None = None) -> str:
    lines = ["# Fidelity", "",
             "Agreement of the rule verifiers with public labelled suites, as measured by",
             "`python -m bench.fidelity` (its docstring says how each suite is scored). The suites are not",
             "part of this tree; the figures below came from these checkouts:", "",
             "```sh",
             *[f"git clone {url} && git -C {name} checkout {commit}" for name, (url, commit) in SUITES.items()],
             "python -m bench.fidelity --mcq lmms-eval/test/eval/mcq_extract/cases.json --mathvista MathVista \\",
             "    --surrogate --out docs/fidelity.md",
             "```", "",
             f"Figures as they came out of the last run ({datetime.date.today().isoformat()}, Python "
             f"{platform.python_version()}, math-verify {version('math-verify')}), every disagreement listed.", "",
             *NOTES, ""]
    if mcq_fig:
        f = mcq_fig
        lines += ["## Multiple choice: lmms-eval's answer-extraction contract", "",
                  "| verifier | suite | cases | mode | agreement | wrong letters read | reference grader |",
                  "|---|---|---|---|---|---|---|"]
        for mode in ("with option count", "without option count"):
            m = f[mode]
            lines.append(f"| choice | lmms-eval mcq_extract | {f['cases']} | {mode} | {_pct(m['agree'], f['cases'])} "
                         f"| {m['wrong_letters']} | `extract_mcq_answer`: 100% (the suite is its contract test) |")
        lines += ["", "Every disagreement:", "", "| mode | case | response | label | ours |", "|---|---|---|---|---|"]
        lines += [f"| {x['mode']} | {x['id']} | `{_one_line(repr(x['response']), 60)}` | {x['expected'] or '-'} "
                  f"| {x['got'] or '-'} |" for x in mismatches if x["suite"] == "mcq"]
        lines.append("")
    if mv_fig:
        lines += ["## Math, numbers and choice in real outputs: MathVista testmini", "",
                  "Recorded verdicts (`true_false`) of the benchmark's own grader (GPT-4 answer extraction, then",
                  "normalisation); our verdict under `task: auto` with the question's choices and prompt.", "",
                  "| model | cases | agreement | multiple choice | free form | paid where recorded wrong "
                  "| refused where recorded right | of which the benchmark guessed | agreement where it did not guess "
                  "| math-verify (free form) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for model, c in mv_fig.items():
            n = c.get("choice_n", 0) + c.get("free-form_n", 0)
            a = c.get("choice_agree", 0) + c.get("free-form_agree", 0)
            lines.append(f"| {model} | {n} | {_pct(a, n)} | {_pct(c.get('choice_agree', 0), c.get('choice_n', 0))} "
                         f"| {_pct(c.get('free-form_agree', 0), c.get('free-form_n', 0))} | {c.get('paid_wrong', 0)} "
                         f"| {c.get('refused_right', 0)} | {c.get('guessed_right_refused', 0)} "
                         f"| {_pct(c.get('agree_not_guessed', 0), n - c.get('guessed', 0))} "
                         f"| {_pct(c.get('mv_agree', 0), c.get('free-form_n', 0))} |")
        lines += ["", "Every answer we pay that the benchmark recorded wrong (its recorded extraction beside it):", "",
                  "| model | gold | options | the response ends | recorded extraction | ours |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {x['model']} | {_one_line(x['answer'], 20)} | {_one_line(x['choices'] or '-', 40)} "
                  f"| {_one_line(x['tail'], 90)} | {_one_line(x['recorded_extraction'], 20)} | {x['extracted']} |"
                  for x in mismatches if x["suite"] == "mathvista" and x["ours"] and not x["recorded"]]
        lines.append("")
    if mvc:
        lines += ["## Math: math-verify's own regression table", "",
                  "| verifier | suite | cases | agreement | reference grader (math-verify `verify`) |",
                  "|---|---|---|---|---|",
                  f"| math | math-verify {mvc['version']} tests, default options | {mvc['cases']} "
                  f"| {_pct(mvc['ours'], mvc['cases'])} | {_pct(mvc['reference'], mvc['cases'])} |", ""]
    if emb:
        lines += ["## Open-ended answers: the embedding surrogate and its guards", "",
                  f"The packaged all-MiniLM-L6-v2, cosine to the reference ({emb['paraphrases']} honest paraphrases of "
                  "our own, `tests/paraphrase_cases.py`; no public labelled suite of gamed answers exists):", "",
                  "| answer | cosine | after the guards |", "|---|---|---|",
                  f"| honest paraphrases (mean) | {emb['mean_before']:.3f} | {emb['mean_after']:.3f} "
                  f"({emb['unchanged']}/{emb['paraphrases']} unchanged) |",
                  f"| an unrelated answer | {emb['unrelated']:.3f} | - |",
                  *[f"| {k} | {a:.3f} | {b:.3f} |" for k, (a, b) in emb["gamed"].items()], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mcq", type=Path, help="lmms-eval's test/eval/mcq_extract/cases.json")
    ap.add_argument("--mathvista", type=Path, help="a checkout of MathVista (its results/ folder)")
    ap.add_argument("--out", type=Path, help="write the markdown report here (e.g. docs/fidelity.md)")
    ap.add_argument("--mismatches", type=Path, help="write every disagreement here, as JSON")
    ap.add_argument("--surrogate", action="store_true", help="also measure the embedding surrogate's guards")
    args = ap.parse_args()
    if not (args.mcq or args.mathvista or args.surrogate):
        ap.error("give --mcq, --mathvista and/or --surrogate")
    mcq_out = mv_out = None
    with ScoringPipeline() as pipeline:
        if args.mcq:
            mcq_out = mcq(pipeline, args.mcq)
        if args.mathvista:
            mv_out = mathvista(pipeline, args.mathvista)
        mvc = math_verify_cases(pipeline)
    sources = {}
    if args.mcq:
        sources["mcq cases"] = str(args.mcq)
    if args.mathvista:
        sources["MathVista"] = str(args.mathvista)
    both = (mcq_out or {}).get("mismatches", []) + (mv_out or {}).get("mismatches", [])
    report = render(mcq_out and mcq_out["figures"], mv_out and mv_out["figures"], sources,
                    surrogate() if args.surrogate else None, both, mvc)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    if args.mismatches:
        args.mismatches.write_text(json.dumps(both, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
