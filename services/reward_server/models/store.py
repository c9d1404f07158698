"""Where model weights live on a node, how they get there, and how a checkpoint is checked.

A model's weights are named in the profiles file either by a local directory or by a Hugging
Face hub id (``org/name``). Hub ids live in the model directory (``HARMO_MODEL_DIR``, default
``~/.cache/harmo/models``) as plain checkpoint folders, ``<model dir>/<org>/<name>/``: that is
what ``reward-server models pull`` writes, what an offline node is pre-seeded with (copy the
folders), and what ``serve`` checks before it binds its port. Nothing is downloaded at
serve time, so a missing model is a start-up error that names the pull command, never a
failure at the first request.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


class ModelMissing(FileNotFoundError):
    """A model's weights are not on this node; the message says how to get them."""


def model_dir() -> Path:
    from ..settings import current

    return current().model_dir or Path.home() / ".cache" / "harmo" / "models"


def is_repo_id(ref: str) -> bool:
    """A hub id rather than a path: ``org/name``, and no such directory relative to here."""
    return bool(_REPO_ID.match(ref)) and not Path(ref).exists()


def location(ref: str) -> Path:
    """Where a weights reference is read from (whether or not anything is there yet)."""
    return model_dir() / ref if is_repo_id(ref) else Path(ref).expanduser()


def resolve(ref: str) -> Path:
    """The checkpoint directory of a weights reference; ``ModelMissing`` where there is none."""
    path = location(ref)
    if not (path / "config.json").is_file():
        where = f"the model directory {model_dir()} (HARMO_MODEL_DIR)" if is_repo_id(ref) else "that path"
        raise ModelMissing(f"{ref}: no checkpoint in {where}")
    return path


# -- checks -----------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name} is unreadable: {exc}") from None


def hidden_size(path: Path) -> int | None:
    cfg = _read_json(path / "config.json")
    for c in (cfg.get("text_config") or {}, cfg):
        if isinstance(c.get("hidden_size"), int):
            return c["hidden_size"]
    return None


@dataclass(frozen=True)
class HeadTensor:
    file: Path
    key: str
    shape: tuple[int, ...]


def value_head(path: Path, prefix: str = "v_head.") -> dict[str, HeadTensor]:
    """The value head's ``weight`` (and ``bias``) tensors, found by name in the checkpoint's
    safetensors files without loading them.

    Accepted names: ``<prefix>summary.weight`` (trl's ``ValueHead``, as Skywork-VL-Reward's
    ``value_head.safetensors`` holds it) and ``<prefix>weight``; inside ``value_head.safetensors``
    the same names without the prefix too (a head saved from the head module itself)."""
    from safetensors import safe_open

    found: dict[str, list[HeadTensor]] = {"weight": [], "bias": []}
    for f in sorted(path.glob("*.safetensors")):
        own_file = f.name == "value_head.safetensors"
        with safe_open(f, "pt") as st:
            for key in st.keys():
                if key.startswith(prefix):
                    rest = key[len(prefix):]
                elif own_file:
                    rest = key
                else:
                    continue
                for part in ("weight", "bias"):
                    if rest in (part, f"summary.{part}"):
                        found[part].append(HeadTensor(f, key, tuple(st.get_slice(key).get_shape())))
    for part, hits in found.items():
        if len(hits) > 1:
            raise ValueError(f"{path} holds {len(hits)} value-head {part} tensors "
                             f"({', '.join(f'{h.file.name}:{h.key}' for h in hits)}): which one is meant is unclear")
    return {part: hits[0] for part, hits in found.items() if hits}


@dataclass(frozen=True)
class WeightsRef:
    """What a model loads from this node: a directory or hub id, and what must be in it."""

    ref: str
    revision: str | None = None
    head_prefix: str | None = None  # a value-head model: the head must be there, of the backbone's width
    weights: bool = True  # False: config and tokenizer only (the weights are served elsewhere, e.g. by vLLM)
    tokenizer: bool = True


def checkpoint_problems(path: Path, *, head_prefix: str | None = None, tokenizer: bool = True,
                        weights: bool = True) -> list[str]:
    """What is wrong with a checkpoint directory (empty: it can be loaded): config, every weight
    shard its index names, a tokenizer, and for value-head models the head's shape."""
    problems: list[str] = []
    if not (path / "config.json").is_file():
        return [f"{path}: no config.json"]
    try:
        hidden = hidden_size(path)
    except ValueError as exc:
        return [f"{path}: {exc}"]
    indexes = sorted(path.glob("*.index.json"))
    files = [f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES and f.name != "value_head.safetensors"]
    for index in indexes if weights else ():
        try:
            shards = set(_read_json(index).get("weight_map", {}).values())
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
            continue
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            problems.append(f"{path}: {len(missing)} of {len(shards)} weight shards missing ({', '.join(missing[:3])}"
                            f"{', ...' if len(missing) > 3 else ''}): an interrupted download?")
    if weights and not files:
        problems.append(f"{path}: no weight files (*.safetensors, *.bin)")
    if tokenizer and not any((path / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.txt",
                                                            "vocab.json")):
        problems.append(f"{path}: no tokenizer files")
    if head_prefix is not None and not problems:
        try:
            head = value_head(path, head_prefix)
        except Exception as exc:  # noqa: BLE001 - a corrupt safetensors header
            return problems + [f"{path}: value head unreadable: {exc}"]
        w = head.get("weight")
        if w is None:
            problems.append(f"{path}: no value head ('{head_prefix}summary.weight' or a value_head.safetensors): "
                            "a plain vision-language model is not a reward model")
        elif hidden is not None and w.shape != (1, hidden):
            problems.append(f"{path}: value head {w.key} has shape {list(w.shape)}, expected [1, {hidden}] "
                            "(the backbone's hidden size)")
        elif "bias" in head and head["bias"].shape != (1,):
            problems.append(f"{path}: value head bias {head['bias'].key} has shape {list(head['bias'].shape)}, "
                            "expected [1]")
    return problems


# -- pulling ----------------------------------------------------------------------------
@dataclass
class Pulled:
    ref: str
    path: Path
    files: int = 0
    bytes: int = 0
    action: str = "present"  # present | copied | downloaded
    problems: list[str] = field(default_factory=list)


def _size(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file() and ".cache" not in f.relative_to(path).parts]
    return len(files), sum(f.stat().st_size for f in files)


def _copy_tree(src: Path, dst: Path, progress: Callable[[int], None]) -> None:
    """Copy a checkpoint folder into place atomically: a partial copy never looks complete, and
    pulls running at once (replicas' init containers on one volume) each finish whole."""
    tmp = dst.with_name(f"{dst.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for f in sorted(src.rglob("*")):
        if f.is_file():
            out = tmp / f.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            with f.open("rb") as r, out.open("wb") as w:
                while chunk := r.read(1 << 22):
                    w.write(chunk)
                    progress(len(chunk))
    if dst.exists():
        shutil.rmtree(dst, ignore_errors=True)
    try:
        tmp.rename(dst)
    except OSError:  # another pull put its copy in place first
        shutil.rmtree(tmp, ignore_errors=True)


def problems(w: WeightsRef, path: Path) -> list[str]:
    return checkpoint_problems(path, head_prefix=w.head_prefix, tokenizer=w.tokenizer, weights=w.weights)


def pull(w: WeightsRef, *, mirror: Path | None = None, refresh: bool = False, show_progress: bool = True) -> Pulled:
    """Bring one checkpoint into the model directory and check it.

    From ``mirror`` (a folder laid out as ``<mirror>/<org>/<name>``, e.g. a share or a disk
    carried to an offline site; default ``HARMO_MODEL_MIRROR``) when given, else from the
    Hugging Face hub. A checkpoint that is
    already present and passes its checks is left alone unless ``refresh``."""
    from tqdm import tqdm

    ref = w.ref
    if mirror is None:
        from ..settings import current

        mirror = current().model_mirror
    if not is_repo_id(ref):
        path = Path(ref).expanduser()
        out = Pulled(ref, path, action="local")
        out.problems = problems(w, path)
        out.files, out.bytes = _size(path) if path.is_dir() else (0, 0)
        return out
    dest = model_dir() / ref
    if not refresh and dest.is_dir() and not problems(w, dest):
        out = Pulled(ref, dest)
    elif mirror is not None:
        src = mirror / ref
        if not (src / "config.json").is_file():
            raise ModelMissing(f"{ref}: not in the mirror {mirror} (looked for {src}/config.json)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        total = _size(src)[1]
        with tqdm(total=total, unit="B", unit_scale=True, desc=ref, disable=not show_progress) as bar:
            _copy_tree(src, dest, bar.update)
        out = Pulled(ref, dest, action="copied")
    else:
        from huggingface_hub import snapshot_download

        dest.parent.mkdir(parents=True, exist_ok=True)
        # local_dir: plain files in <model dir>/<org>/<name>, resumable; the hub's own bars show progress.
        # Config and tokenizer only where another server (vLLM) loads the weights.
        patterns = None if w.weights else ["*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
        snapshot_download(ref, revision=w.revision, local_dir=dest, allow_patterns=patterns)
        out = Pulled(ref, dest, action="downloaded")
    out.files, out.bytes = _size(dest)
    out.problems = problems(w, dest)
    return out


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def missing(refs: Iterable[tuple[str, WeightsRef]]) -> list[tuple[str, str]]:
    """``(model, problem)`` for each named model whose checkpoint cannot be loaded here."""
    out = []
    for name, w in refs:
        try:
            path = resolve(w.ref)
        except ModelMissing as exc:
            out.append((name, str(exc)))
            continue
        out.extend((name, p) for p in problems(w, path))
    return out
