"""The demo's report: a summary of ``metrics.json``, ``report.md`` and the PNG plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any

HELDOUT = [("reward_mean", "full reward (mean)"), ("format_rate", "format adherence"),
           ("instruction_pass", "instruction pass rate"), ("mean_length", "mean length (tokens)")]
CURVES = ["accuracy", "format", "instruction", "length"]


def _flat(ev: dict[str, Any]) -> dict[str, float | None]:
    out = {k: ev.get(k) for k, _ in HELDOUT}
    for fam, v in (ev.get("accuracy") or {}).items():
        out[f"accuracy/{fam}"] = v
    return out


def summary(metrics: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per profile and held-out figure: before, after per seed, their mean and spread (max - min),
    the change, and whether the change exceeds the seed-to-seed spread."""
    before = _flat(metrics["before"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for profile, runs in metrics["runs"].items():
        afters = [_flat(r["after"]) for r in runs.values()]
        rows = {}
        for key, b in before.items():
            vals = [a[key] for a in afters if a.get(key) is not None]
            if not vals or b is None:
                continue
            mean = sum(vals) / len(vals)
            spread = max(vals) - min(vals)
            rows[key] = {"before": b, "after": vals, "mean": mean, "spread": spread, "change": mean - b,
                         "beyond_spread": len(vals) > 1 and abs(mean - b) > spread}
        out[profile] = rows
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _series(run: dict[str, Any], name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one curve: ``reward``, ``completion_length`` or a full-profile component."""
    xs, ys = [], []
    for s in run["steps"]:
        v = s.get(name) if name in ("reward", "completion_length") else s["full"].get(name)
        if v is not None:
            xs.append(s["step"])
            ys.append(v)
    return xs, ys


def _smooth(ys: list[float], window: int) -> list[float]:
    """Trailing mean: per-step means of 8 samples are noisy."""
    return [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]


def plot(out: Path, metrics: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    window = max(1, min(5, metrics["config"]["budget"]["steps"] // 6))
    for profile, runs in metrics["runs"].items():
        names = ["reward", *CURVES, "completion_length"]
        titles = ["reward (trained on)", *[f"full: {c}" for c in CURVES], "completion length (tokens)"]
        fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharex=True)
        for ax, name, title in zip(axes.flat, names, titles):
            for k, (seed, run) in enumerate(runs.items()):
                xs, ys = _series(run, name)
                ax.plot(xs, ys, lw=0.8, alpha=0.35, color=f"C{k}")
                ax.plot(xs, _smooth(ys, window), lw=1.8, color=f"C{k}", label=f"seed {seed}")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        for ax in axes[-1]:
            ax.set_xlabel("step")
        axes.flat[0].legend(fontsize=8)
        fig.suptitle(f"profile {profile}: per-step means (thin) and their {window}-step trailing mean; the full "
                     "profile's components are logged beside the reward trained on")
        fig.tight_layout()
        name = f"components_{profile}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        files.append(name)

    # The ablation at a glance: each profile's seeds averaged, the full profile's parts per step.
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.6), squeeze=False)
    for ax, name in zip(axes[0], CURVES):
        for k, (profile, runs) in enumerate(metrics["runs"].items()):
            by_step: dict[int, list[float]] = {}
            for run in runs.values():
                for x, y in zip(*_series(run, name)):
                    by_step.setdefault(x, []).append(y)
            xs = sorted(by_step)
            ys = [sum(by_step[x]) / len(by_step[x]) for x in xs]
            ax.plot(xs, _smooth(ys, window), lw=1.8, color=f"C{k}", label=profile)
        ax.set_title(f"full: {name}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"training batches scored by the full profile, per profile trained on (mean over seeds, "
                 f"{window}-step trailing mean)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=90)
    plt.close(fig)
    files.append("ablation.png")

    summ = summary(metrics)
    before = _flat(metrics["before"])
    keys = [k for k, _ in HELDOUT] + sorted(k for k in before if k.startswith("accuracy/"))
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    profiles = list(metrics["runs"])
    for ax, key in zip(axes.flat, keys):
        labels = ["before", *profiles]
        means = [before.get(key) or 0.0] + [summ[p].get(key, {}).get("mean", 0.0) for p in profiles]
        lo = [0.0] + [means[i + 1] - min(summ[p][key]["after"]) if key in summ[p] else 0.0
                      for i, p in enumerate(profiles)]
        hi = [0.0] + [max(summ[p][key]["after"]) - means[i + 1] if key in summ[p] else 0.0
                      for i, p in enumerate(profiles)]
        ax.bar(labels, means, yerr=[lo, hi], capsize=4, color=["#999999"] + [f"C{i}" for i in range(len(profiles))])
        ax.set_title(dict(HELDOUT).get(key, key), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle("held-out, scored by the full profile: before training and after, per profile "
                 "(bars: mean over seeds; whiskers: min and max)")
    fig.tight_layout()
    fig.savefig(out / "heldout.png", dpi=90)
    plt.close(fig)
    files.append("heldout.png")
    return files


def write_report(out: Path, metrics: dict[str, Any]) -> None:
    plots = plot(out, metrics)
    summ = summary(metrics)
    cfg = metrics["config"]
    b = cfg["budget"]
    lines = [
        "# harmo training demo",
        "",
        f"{cfg['date']}; policy `{cfg['model']}` on {cfg['device']} ({cfg['torch_threads']} threads); "
        f"profiles {', '.join(cfg['profiles'])}; {cfg['seeds']} seed(s); {b['steps']} GRPO steps of "
        f"{b['prompts_per_step']} prompts x {b['num_generations']} completions, at most "
        f"{b['max_completion_length']} tokens, learning rate {b['learning_rate']:g}; "
        f"{cfg['train_prompts']} training prompts, {cfg['heldout_prompts']} held out (greedy decoding, "
        f"scored by `{cfg['eval_profile']}`). Total {metrics.get('seconds', 0):.0f} s.",
        "",
        "## Held-out, before and after",
        "",
        "Mean over seeds, the seed-to-seed spread (max - min) in brackets; **bold** where the change "
        "from the starting policy is larger than that spread (two seeds or more).",
        "",
        "| figure | before | " + " | ".join(summ) + " |",
        "|---|---|" + "---|" * len(summ),
    ]
    keys = [k for k, _ in HELDOUT] + sorted(k for k in _flat(metrics["before"]) if k.startswith("accuracy/"))
    for key in keys:
        cells = []
        for p in summ:
            r = summ[p].get(key)
            if r is None:
                cells.append("–")
                continue
            text = f"{r['mean']:.3f} [{r['spread']:.3f}]"
            cells.append(f"**{text}**" if r["beyond_spread"] else text)
        lines.append(f"| {dict(HELDOUT).get(key, key)} | {_fmt(_flat(metrics['before']).get(key))} | "
                     + " | ".join(cells) + " |")
    lines += ["", "![held-out](heldout.png)", "", "## Did it learn?", ""]
    for p in summ:
        n = len(metrics["runs"][p])
        checks = []
        for key, label in (("reward_mean", "the full reward's mean"), ("format_rate", "format adherence")):
            r = summ[p].get(key)
            if r is None:
                continue
            verdict = ("up" if r["change"] > 0 else "down") + (
                " by more than the seed spread" if r["beyond_spread"] else
                " (one seed: no spread measured)" if n == 1 else ", within the seed spread")
            checks.append(f"{label} {_fmt(r['before'])} -> {_fmt(r['mean'])}, {verdict}")
        lines.append(f"- `{p}` ({n} seed{'s' if n > 1 else ''}): " + "; ".join(checks) + ".")
    lines += ["", "## Training curves", "", "![ablation](ablation.png)", ""]
    for p in plots:
        if p.startswith("components_"):
            lines += [f"![{p}]({p})", ""]
    lines += ["## Null rewards and typed errors during training", "",
              "| profile | seed | null share (trained reward) | error share | error codes |", "|---|---|---|---|---|"]
    for profile, runs in metrics["runs"].items():
        for seed, run in runs.items():
            st = run["steps"]
            null = [s["train"].get("null_reward") for s in st if s["train"].get("null_reward") is not None]
            err = [s["train"].get("errors") for s in st if s["train"].get("errors") is not None]
            codes = sorted({c for s in st for c in s["errors"]})
            lines.append(f"| {profile} | {seed} | {_fmt(sum(null) / len(null) if null else None)} | "
                         f"{_fmt(sum(err) / len(err) if err else None)} | {', '.join(codes) or '–'} |")
    lines += ["", "## Hack audit of the held-out outputs", "",
              "Greedy held-out outputs flagged as the hacks RL finds: empty, tags with an empty answer "
              "(format_only), hedged answers (`or`, `maybe`, several options), and the prompt repeated (the "
              "question, or the system prompt's format example copied). In brackets, how many of them the "
              "full profile paid (accuracy >= 0.5, or every instruction followed).", "",
              "| policy | outputs | " + " | ".join(["empty", "format_only", "hedge", "repeats_prompt"]) + " |",
              "|---|---|---|---|---|---|"]
    evs = [("before", metrics["before"])] + [(f"{p} seed {s}", r["after"]) for p, runs in metrics["runs"].items()
                                             for s, r in runs.items()]
    for tag, ev in evs:
        h = ev.get("hacks", {})
        lines.append(f"| {tag} | {ev['n']} | " + " | ".join(
            f"{h[k]['outputs']} ({h[k]['paid']} paid)" if k in h else "0"
            for k in ["empty", "format_only", "hedge", "repeats_prompt"]) + " |")
    lines += ["", "The outputs themselves: `heldout_outputs.jsonl`.", ""]
    (out / "report.md").write_text("\n".join(lines))
