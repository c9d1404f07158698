"""GRPO-shaped synthetic workloads: groups of 8 responses that share one prompt and gold.

Deterministic (seeded). Math responses are reasoning text with inline LaTeX and a final
answer in one of the forms policies produce (boxed, "the final answer is", none), the
group's answers drawn from a few equivalent and wrong forms of the gold, as a policy's
samples are.
"""
from __future__ import annotations

import random
from fractions import Fraction

GROUP = 8
# Kinds of gold answer, weighted roughly as in competition-math training sets, where most
# final answers are integers and simple fractions.
ANSWER_MIX = {"int": 0.55, "frac": 0.12, "decimal": 0.05, "sqrt": 0.07, "pi": 0.05, "expr": 0.04,
              "interval": 0.04, "tuple": 0.04, "poly": 0.04}


def _gold_and_forms(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """A gold answer, equivalent spellings of it, and wrong answers."""
    kind = rng.choices(list(ANSWER_MIX), weights=list(ANSWER_MIX.values()))[0]
    a, b = rng.randint(2, 97), rng.randint(2, 97)
    if kind == "int":
        n = rng.randint(-500, 5000)
        return str(n), [str(n), f"{n}.0", f"{n:,}" if abs(n) >= 1000 else str(n)], [str(n + rng.randint(1, 9)), str(-n - 1)]
    if kind == "frac":
        f = Fraction(a, b)
        if f.denominator == 1:
            f = Fraction(a, b + 1)
        p, q = f.numerator, f.denominator
        return rf"\frac{{{p}}}{{{q}}}", [rf"\frac{{{p}}}{{{q}}}", rf"\dfrac{{{p}}}{{{q}}}", f"{p}/{q}", rf"\frac{{{2 * p}}}{{{2 * q}}}"], [rf"\frac{{{q}}}{{{p}}}", rf"\frac{{{p + 1}}}{{{q}}}"]
    if kind == "sqrt":
        k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11])
        return rf"{k}\sqrt{{{m}}}", [rf"{k}\sqrt{{{m}}}", rf"\sqrt{{{k * k * m}}}", rf"{k} \sqrt{{{m}}}"], [rf"{k}\sqrt{{{m + 1}}}", rf"{k + 1}\sqrt{{{m}}}"]
    if kind == "pi":
        k = rng.randint(2, 40)
        return rf"{k}\pi", [rf"{k}\pi", rf"\pi \cdot {k}", rf"{k} \pi"], [rf"{k + 2}\pi", f"{k}"]
    if kind == "interval":
        lo, hi = sorted(rng.sample(range(-20, 20), 2))
        return f"({lo}, {hi}]", [f"({lo}, {hi}]", rf"\left({lo},{hi}\right]"], [f"[{lo}, {hi}]", f"({lo}, {hi})"]
    if kind == "tuple":
        return f"({a}, {b})", [f"({a}, {b})", f"({a},{b})"], [f"({b}, {a})", f"({a}, {b + 1})"]
    if kind == "poly":
        p, q = rng.randint(1, 9), rng.randint(1, 9)
        return f"x^2 + {p + q}x + {p * q}", [f"x^2 + {p + q}x + {p * q}", f"(x+{p})(x+{q})", f"{p * q} + {p + q}x + x^2"], [f"x^2 + {p + q + 1}x + {p * q}", f"(x-{p})(x+{q})"]
    if kind == "decimal":
        v = round(rng.uniform(0, 100), 2)
        return f"{v}", [f"{v}", f"{v:.2f}", f"{v}0"], [f"{v + 0.5:.2f}", f"{v * 10:.1f}"]
    return rf"{a} + {b}\sqrt{{2}}", [rf"{a} + {b}\sqrt{{2}}", rf"{b}\sqrt{{2}} + {a}"], [rf"{a} - {b}\sqrt{{2}}", rf"{a + b}\sqrt{{2}}"]


def _reasoning(rng: random.Random) -> str:
    """A chain of thought as math policies write it: prose with dense inline and display LaTeX."""
    steps = []
    for _ in range(rng.randint(30, 80)):  # 2.5-6.5k characters, 700-1800 tokens
        x, y, z = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
        steps.append(rng.choice([
            f"We compute ${x} \\cdot {y} = {x * y}$, so the product is {x * y}.",
            f"Substituting $x = {x}$ gives $x^2 - {y} = {x * x - y}$.",
            f"Note that $\\frac{{{x}}}{{{y}}}$ cannot be simplified further unless they share a factor.",
            f"Adding the two parts, {x} + {y} = {x + y}, which we keep for later.",
            f"By the triangle inequality, $|a - b| \\le {x}$ whenever $|a|, |b| \\le {y}$.",
            f"Hence \\[ \\frac{{{x}}}{{{y}}} + \\frac{{{z}}}{{{x}}} = \\frac{{{x * x + y * z}}}{{{x * y}}}. \\]",
            f"Squaring both sides, $\\left(\\sqrt{{{x}}} + {z}\\right)^2 = {x + z * z} + {2 * z}\\sqrt{{{x}}}$.",
            f"\\begin{{align*}} f({z}) &= {z}^2 + {x} \\cdot {z} - {y} \\\\ &= {z * z + x * z - y}. \\end{{align*}}",
            f"Since $\\gcd({x}, {y}) = {__import__('math').gcd(x, y)}$, the fraction $\\tfrac{{{x}}}{{{y}}}$ is as given.",
            f"The roots satisfy $r_1 + r_2 = -{x}$ and $r_1 r_2 = {y}$, so $r_1^2 + r_2^2 = {x * x - 2 * y}$.",
        ]))
    return " ".join(steps)


def math_groups(n_groups: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    groups = []
    for g in range(n_groups):
        gold, right, wrong = _gold_and_forms(rng)
        # A policy's samples repeat themselves: a few distinct final answers per group.
        pool = rng.sample(right, min(len(right), rng.randint(1, 2))) + rng.sample(wrong, rng.randint(0, 2))
        items = []
        for i in range(GROUP):
            ans = rng.choice(pool)
            style = rng.random()
            text = _reasoning(rng)
            if style < 0.8:
                response = f"{text} Therefore the answer is $\\boxed{{{ans}}}$."
            elif style < 0.95:
                response = f"{text}\nFinal Answer: The final answer is ${ans}$. I hope it is correct."
            else:
                response = text  # cut off before stating an answer
            items.append({"id": f"m{g}-{i}", "group_id": f"m{g}", "task": "math", "response": response,
                          "reference": gold})
        groups.append(items)
    return groups


def prose_groups(n_groups: int, seed: int = 0) -> list[list[dict]]:
    """Math items as models write them on word problems: answers stated in prose without a box,
    refusals, long chains of thought full of intermediate numbers, invented follow-up questions,
    options echoed back; integer golds (the common case of such benchmarks)."""
    rng = random.Random(seed)
    groups = []
    for g in range(n_groups):
        gold = rng.randint(2, 999)
        pool = [gold, gold, gold + rng.randint(1, 9)]
        items = []
        for i in range(GROUP):
            ans = rng.choice(pool)
            steps = " ".join(f"Step {k}: {a} + {b} = {a + b}, and {a + b} times 2 is {2 * (a + b)}." for k, (a, b) in
                             enumerate((rng.randint(2, 99), rng.randint(2, 99)) for _ in range(rng.randint(8, 30))))
            style = rng.random()
            if style < 0.35:
                response = f"{steps} So there are {ans} marbles in the jar."
            elif style < 0.55:
                response = f"{steps} Therefore, the total number of apples is {ans}."
            elif style < 0.65:
                response = "I cannot determine the answer from the information given in the figure."
            elif style < 0.8:
                response = f"{steps} The answer is {ans}.\n\nQuestion: what is 2 + 3?\nThe answer is 5."
            elif style < 0.9:
                opts = sorted({ans, ans + 2, ans + 4, ans + 6})
                response = " ".join(f"({'ABCD'[k]}) {o}" for k, o in enumerate(opts)) + f"\n{steps} It is {ans}."
            else:
                response = f"{steps} Thus the answer is $\\boxed{{{ans}}}$."
            truth = ans == gold and not 0.55 <= style < 0.65  # what a careful grader says
            items.append({"id": f"p{g}-{i}", "group_id": f"p{g}", "task": "math", "response": response,
                          "reference": str(gold), "metadata": {"truth": truth}})
        groups.append(items)
    return groups


def choice_groups(n_groups: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    groups = []
    for g in range(n_groups):
        choices = [str(rng.randint(1, 999)) for _ in range(4)]
        gold = rng.choice("ABCD")
        items = []
        for i in range(GROUP):
            letter = rng.choice("ABCD")
            think = " ".join(rng.choice(["the figure", "shows", "a bar", "of height", "so", "we", "compare"])
                             for _ in range(rng.randint(10, 60)))
            answer = rng.choice([f"({letter})", f"The answer is {letter}.", letter, choices["ABCD".index(letter)]])
            response = f"<think>{think}</think><answer>{answer}</answer>" if rng.random() < 0.9 else answer
            items.append({"id": f"c{g}-{i}", "group_id": f"c{g}", "task": "choice", "response": response,
                          "choices": choices, "reference": gold})
        groups.append(items)
    return groups


_CAPTIONS = [
    ("A cat is sitting on a mat in the warm afternoon sun.",
     ["A cat sits on a mat, enjoying the afternoon sunshine.", "In the sun, a cat rests on a small mat."]),
    ("Two children are playing football in a park on a cloudy afternoon.",
     ["Kids kick a soccer ball around a park under grey skies.", "A pair of children play football in the park."]),
    ("The chart shows that sales increased steadily from 2015 to 2020.",
     ["Sales rose every year between 2015 and 2020, the chart shows.", "According to the chart, sales grew."]),
    ("A red double-decker bus drives down a busy city street at rush hour.",
     ["A red two-storey bus moves along a crowded street.", "At rush hour a red bus drives through the city."]),
]
_UNRELATED = ["The stock market fell sharply today.", "Snow covers the peaks behind the lake.",
              "A bowl of soup is cooling on the table.", "The train leaves at half past nine."]
_CONSTRAINTS = [
    [{"id": "change_case:english_lowercase"}],
    [{"id": "length_constraints:number_words", "kwargs": {"relation": "at least", "num_words": 20}}],
    [{"id": "punctuation:no_comma"}, {"id": "keywords:existence", "kwargs": {"keywords": ["river"]}}],
    [{"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": 3}}],
]


def mixed_groups(n_groups: int, seed: int = 0) -> list[list[dict]]:
    """What the default profile sees in multimodal RL: a quarter each of math groups (the
    workload above), multiple-choice groups, open-ended groups (captions judged against a
    reference by the embedding surrogate) and instruction-following groups (constraints, no
    reference)."""
    rng = random.Random(seed)
    kinds = ["math", "choice", "open", "constrained"]
    math_iter = iter(math_groups(n_groups, seed=seed))
    choice_iter = iter(choice_groups(n_groups, seed=seed + 1))
    groups = []
    for g in range(n_groups):
        kind = kinds[g % 4]
        if kind == "math":
            groups.append(next(math_iter))
            continue
        if kind == "choice":
            groups.append(next(choice_iter))
            continue
        items = []
        for i in range(GROUP):
            think = " ".join(rng.choice(["look", "at the", "image", "it shows", "so", "the scene"])
                             for _ in range(rng.randint(10, 60)))
            if kind == "open":
                ref, paraphrases = _CAPTIONS[g % len(_CAPTIONS)]
                # every sample distinct, as a policy's are: a paraphrase (or not) with its own details
                detail = " ".join(rng.choice(["bright", "small", "near the window", "in the background", "quietly",
                                              "with a blue sky", "on the left", "slightly blurred"])
                                  for _ in range(rng.randint(2, 10)))
                answer = f"{rng.choice(paraphrases + _UNRELATED[:1])} It is {detail}."
                item = {"prompt": "Describe the image.", "reference": ref}
            else:
                words = rng.choice(["the river runs past the old mill", "a quiet morning by the water, with birds",
                                    "* first\n* second\n* third point about the river"])
                answer = " ".join([words] * rng.randint(1, 4))
                item = {"prompt": "Write about the river.", "constraints": _CONSTRAINTS[g % len(_CONSTRAINTS)]}
            items.append(item | {"id": f"{kind}{g}-{i}", "group_id": f"{kind}{g}",
                                 "response": f"<think>{think}</think><answer>{answer}</answer>"})
        groups.append(items)
    return groups
