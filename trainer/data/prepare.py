"""Common multimodal RL datasets, from local files, to veRL's parquet format with harmo's fields.

    python -m harmo.client.data.prepare geometry3k IN OUT.parquet [--split train] [--image-root DIR]
    python -m harmo.client.data.prepare mathvista  IN OUT.parquet ...
    python -m harmo.client.data.prepare vqa        IN OUT.parquet --task ocr|vqa|chart ...
    python -m harmo.client.data.prepare ifeval     IN OUT.parquet ...

IN is a JSONL or parquet file (e.g. a Hugging Face dataset saved with ``to_json``/``to_parquet``).
Each output row has veRL's fields: ``data_source``, ``prompt`` (chat messages; an ``<image>``
token per image), ``images`` (``{"bytes", "path"}``), ``ability``, ``reward_model``
(``{"style": "rule", "ground_truth"}``) and ``extra_info`` (``split``, ``index``, and what the
reward server reads: ``task``, ``choices``, ``constraints``). Images are read from bytes in the
row, or from paths relative to ``--image-root``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

# The reasoning format the `harmo` profile's format reward checks.
FORMAT = ("You FIRST think about the reasoning process as an internal monologue and then provide the final "
          "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE "
          "put in <answer> </answer> tags.")


class BadRow(ValueError):
    pass


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()
    else:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise BadRow(f"{path}:{n}: not JSON: {exc}") from None


def load_image(x: Any, root: Path | None) -> dict[str, Any]:
    if isinstance(x, dict) and x.get("bytes"):
        return {"bytes": bytes(x["bytes"]), "path": x.get("path")}
    p = x.get("path") if isinstance(x, dict) else x
    if not isinstance(p, str) or not p:
        raise BadRow(f"an image is neither bytes nor a path: {str(x)[:80]}")
    path = Path(p) if root is None or Path(p).is_absolute() else root / p
    try:
        return {"bytes": path.read_bytes(), "path": str(p)}
    except OSError as exc:
        raise BadRow(f"cannot read image {path}: {exc}") from None


def images_of(row: dict, keys: tuple[str, ...], root: Path | None) -> list[dict[str, Any]]:
    for k in keys:
        v = row.get(k)
        if v is None:
            continue
        return [load_image(i, root) for i in (v if isinstance(v, list) else [v])]
    return []


def with_images(text: str, n: int) -> str:
    """One ``<image>`` token per image, where the text does not place them itself."""
    have = text.count("<image>")
    return "<image>" * max(0, n - have) + text


def out_row(source: str, ability: str, prompt: str, images: list, truth: Any, extra: dict) -> dict[str, Any]:
    return {"data_source": source, "prompt": [{"role": "user", "content": prompt}], "images": images,
            "ability": ability, "reward_model": {"style": "rule", "ground_truth": truth}, "extra_info": extra}


def geometry3k(row: dict, root: Path | None) -> dict:
    imgs = images_of(row, ("images", "image"), root)
    problem = row["problem"]
    return out_row("hiyouga/geometry3k", "math", with_images(f"{problem} {FORMAT}", len(imgs)), imgs,
                   str(row["answer"]), {"task": "math", "question": problem})


def mathvista(row: dict, root: Path | None) -> dict:
    imgs = images_of(row, ("decoded_image", "image"), root)
    question = row.get("query") or row["question"]
    choices = row.get("choices") or None
    extra: dict[str, Any] = {"question": row["question"], "answer_type": row.get("answer_type")}
    if row.get("question_type") == "multi_choice" and choices:
        extra |= {"task": "choice", "choices": [str(c) for c in choices]}
    elif row.get("answer_type") in ("integer", "float"):
        extra["task"] = "number" if row.get("answer_type") == "float" else "math"
    else:
        extra["task"] = "text"
    return out_row("AI4Math/MathVista", "math", with_images(f"{question} {FORMAT}", len(imgs)), imgs,
                   str(row["answer"]), extra)


def vqa(task: str) -> Callable[[dict, Path | None], dict]:
    sources = {"ocr": "docvqa", "vqa": "textvqa", "chart": "chartqa"}

    def convert(row: dict, root: Path | None) -> dict:
        imgs = images_of(row, ("image", "images"), root)
        question = row.get("question") or row.get("query")
        answers = row.get("answers") if row.get("answers") is not None else row.get("label")
        if question is None or answers is None:
            raise BadRow("a VQA row needs question (or query) and answers (or label)")
        truth = [str(a) for a in answers] if isinstance(answers, list) else str(answers)
        prompt = with_images(f"{question} Answer with a single word or phrase. {FORMAT}", len(imgs))
        return out_row(row.get("data_source") or sources[task], "vqa", prompt, imgs, truth,
                       {"task": task, "question": question})
    return convert


def ifeval(row: dict, root: Path | None) -> dict:
    ids = row.get("instruction_id_list") or []
    kwargs = row.get("kwargs") or [{} for _ in ids]
    if len(kwargs) != len(ids):
        raise BadRow(f"{len(ids)} instruction ids but {len(kwargs)} kwargs")
    constraints = [{"id": i, "kwargs": {k: v for k, v in (kw or {}).items() if v is not None}}
                   for i, kw in zip(ids, kwargs)]
    return out_row(row.get("data_source") or "ifeval", "instruction_following", row["prompt"], [], "",
                   {"task": "open", "constraints": constraints})


CONVERTERS: dict[str, Callable[..., Any]] = {"geometry3k": lambda a: geometry3k, "mathvista": lambda a: mathvista,
                                              "vqa": lambda a: vqa(a.task), "ifeval": lambda a: ifeval}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harmo.client.data.prepare", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=sorted(CONVERTERS))
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--image-root", type=Path)
    ap.add_argument("--task", choices=["ocr", "vqa", "chart"], default="vqa", help="vqa: the verifier to use")
    ap.add_argument("--limit", type=int, help="first N rows only")
    args = ap.parse_args(argv)

    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    convert = CONVERTERS[args.dataset](args)
    rows, skipped = [], 0
    for index, row in enumerate(tqdm(read_rows(args.input), desc=f"{args.dataset} -> {args.output.name}",
                                     unit="row")):
        if args.limit is not None and index >= args.limit:
            break
        try:
            out = convert(row, args.image_root)
        except (BadRow, KeyError) as exc:  # a bad row is reported, never silently dropped
            print(f"{args.input}: row {index}: skipped: {exc}", file=sys.stderr)
            skipped += 1
            continue
        out["extra_info"] |= {"split": args.split, "index": index}
        rows.append(out)
    if not rows:
        print(f"{args.input}: no usable rows", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # JSON-typed columns where rows differ in shape (constraint kwargs): parquet needs one schema.
    for r in rows:
        r["extra_info"] = {k: v for k, v in r["extra_info"].items() if v is not None}
        if "constraints" in r["extra_info"]:
            for c in r["extra_info"]["constraints"]:
                c["kwargs"] = json.dumps(c["kwargs"])
    pq.write_table(pa.Table.from_pylist(rows), args.output)
    print(f"{args.output}: {len(rows)} rows ({skipped} skipped)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
