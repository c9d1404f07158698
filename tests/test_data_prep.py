"""harmo.client.data.prepare: local files of four dataset kinds to veRL parquet, usable by the reward server."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
from PIL import Image

from harmo.client.verl_reward import build_item
from tests.conftest import ROOT, score


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def prepare(tmp_path, kind, rows, *extra):
    src = tmp_path / f"{kind}.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / f"{kind}.parquet"
    p = subprocess.run([sys.executable, "-m", "harmo.client.data.prepare", kind, str(src), str(out),
                        "--image-root", str(tmp_path), *extra], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return pq.read_table(out).to_pylist(), p.stderr


def as_item(row, response):
    return build_item(data_source=row["data_source"], ground_truth=row["reward_model"]["ground_truth"],
                      extra_info=row["extra_info"], response=response, uid=None, group_size=None,
                      response_length=None, prompt=row["prompt"][0]["content"])


def test_four_dataset_kinds(tmp_path, pipeline):
    (tmp_path / "a.png").write_bytes(png())
    geo, log = prepare(tmp_path, "geometry3k", [
        {"images": ["a.png"], "problem": "Find x.", "answer": "3\\sqrt{2}"},
        {"images": ["missing.png"], "problem": "Find y.", "answer": "4"}])
    assert len(geo) == 1 and "row 1: skipped" in log and "1 rows (1 skipped)" in log
    g = geo[0]
    assert g["prompt"][0]["content"].startswith("<image>Find x.") and g["images"][0]["bytes"] == png()
    assert g["reward_model"] == {"style": "rule", "ground_truth": "3\\sqrt{2}"}
    assert g["extra_info"]["task"] == "math" and g["extra_info"]["index"] == 0

    mv, _ = prepare(tmp_path, "mathvista", [
        {"question": "Which shape?", "query": "Which shape? Choices: (A) circle (B) square", "image": "a.png",
         "choices": ["circle", "square"], "answer": "square", "question_type": "multi_choice",
         "answer_type": "text"},
        {"question": "How many?", "image": "a.png", "choices": None, "answer": "7", "question_type": "free_form",
         "answer_type": "integer"}])
    assert mv[0]["extra_info"]["task"] == "choice" and mv[0]["extra_info"]["choices"] == ["circle", "square"]
    assert mv[1]["extra_info"]["task"] == "math"

    doc, _ = prepare(tmp_path, "vqa", [{"question": "What is the total?", "answers": ["$12.50", "12.50"],
                                        "image": "a.png"}], "--task", "ocr")
    assert doc[0]["reward_model"]["ground_truth"] == ["$12.50", "12.50"] and doc[0]["extra_info"]["task"] == "ocr"

    ife, _ = prepare(tmp_path, "ifeval", [{"prompt": "Write about rain without commas, in at least 5 words.",
                                           "instruction_id_list": ["punctuation:no_comma",
                                                                   "length_constraints:number_words"],
                                           "kwargs": [{}, {"relation": "at least", "num_words": 5,
                                                           "keyword": None}]}])
    assert ife[0]["images"] == [] and len(ife[0]["extra_info"]["constraints"]) == 2

    # The rows, as the veRL reward manager turns them into items, score as intended.
    items = [as_item(geo[0], "<think>t</think><answer>\\boxed{3\\sqrt{2}}</answer>"),
             as_item(mv[0], "<think>t</think><answer>B</answer>"),
             as_item(mv[1], "<think>t</think><answer>\\boxed{7}</answer>"),
             as_item(doc[0], "<think>t</think><answer>12.50</answer>"),
             as_item(ife[0], "<think>t</think><answer>Rain falls on the quiet town</answer>")]
    res = score(pipeline, items, "harmo").results
    assert [r.accuracy.verdict for r in res[:4]] == ["correct"] * 4
    assert [r.accuracy.source for r in res[:4]] == ["rule:math", "rule:choice", "rule:math", "rule:ocr"]
    assert res[4].components["instruction"] == 1.0 and not res[4].errors
