"""Evaluation of rollout output: per data source, the mean reward and each component, pass@k from
the verifiers' verdicts, length statistics; a table, a JSON summary and a PNG of the reward
distributions per component."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator: the chance that at least one of k of the n samples is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def summarize(rows: Iterable[dict[str, Any]], ks: Iterable[int] = (1, 4, 8)) -> dict[str, dict[str, Any]]:
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r.get("data_source") or "-"].append(r)
    out: dict[str, dict[str, Any]] = {}
    for source, rs in sorted(by_source.items()):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rs:
            groups[r["group_id"]].append(r)
        comps = sorted({c for r in rs for c in r["components"]})
        rewards = [r["reward"] for r in rs if r["reward"] is not None]
        tokens = sorted(r["tokens"] for r in rs)
        s: dict[str, Any] = {
            "prompts": len(groups), "samples": len(rs),
            "reward_mean": _mean(rewards), "reward_null": sum(r["reward"] is None for r in rs),
            "components": {c: _mean([r["components"][c] for r in rs if c in r["components"]]) for c in comps},
            "tokens_mean": _mean(tokens), "tokens_p50": tokens[len(tokens) // 2],
            "tokens_p95": tokens[min(len(tokens) - 1, int(0.95 * len(tokens)))],
            "truncated": sum(r.get("finish_reason") == "length" for r in rs) / len(rs),
            "errors": sum(bool(r.get("errors")) for r in rs),
        }
        verified = {g: m for g, m in groups.items() if all(r["verdict"] in ("correct", "incorrect", "partial")
                                                           for r in m)}
        if verified:
            for k in ks:
                vals = [pass_at_k(len(m), sum(r["verdict"] == "correct" for r in m), k)
                        for m in verified.values() if len(m) >= k]
                if vals:
                    s[f"pass@{k}"] = statistics.fmean(vals)
        out[source] = s
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    comps = sorted({c for s in summary.values() for c in s["components"]})
    passes = sorted({k for s in summary.values() for k in s if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    head = ["data_source", "prompts", "samples", "reward", *comps, *passes, "tokens", "p95", "trunc", "errors"]

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = [head]
    for src, s in summary.items():
        lines.append([src, s["prompts"], s["samples"], s["reward_mean"], *(s["components"].get(c) for c in comps),
                      *(s.get(p) for p in passes), s["tokens_mean"], s["tokens_p95"], s["truncated"], s["errors"]])
    cells = [[fmt(v) for v in line] for line in lines]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in cells)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    """Histograms of the reward and of each component, one colour per data source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = ["reward"] + sorted({c for r in rows for c in r["components"]})
    sources = sorted({r.get("data_source") or "-" for r in rows})
    cols = min(3, len(comps))
    nrows = math.ceil(len(comps) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.2 * nrows), squeeze=False)
    for ax, comp in zip(axes.flat, comps):
        for src in sources:
            vals = [r["reward"] if comp == "reward" else r["components"].get(comp) for r in rows
                    if (r.get("data_source") or "-") == src]
            vals = [v for v in vals if v is not None]
            if vals:
                ax.hist(vals, bins=20, alpha=0.6, label=src)
        ax.set_title(comp)
        ax.set_ylabel("samples")
    for ax in list(axes.flat)[len(comps):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
