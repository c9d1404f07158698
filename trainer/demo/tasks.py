"""The demo's task mix, made from a seed: every part of the hybrid reward has prompts to pay.

- ``number``: arithmetic and one-step word problems (rule verifier ``number``);
- ``choice``: four-option questions over small categories (rule verifier ``choice``);
- ``open``: short free-form answers with a reference (task ``open``: no rule judges them; the
  hybrid reward's embedding surrogate does, and a rule-only reward cannot: no reward, null);
- ``instruction``: a sentence to write under IFEval constraints (no reference: the full
  profile pays format, instruction adherence and length; accuracy-only profiles cannot judge it).

Each row is a dataset row as TRL hands it to ``HarmoReward``: ``prompt`` (rendered by the
caller), ``question``, ``reference``, ``task``, ``choices``, ``constraints``, ``data_source``.
Train and held-out rows never share a question.
"""
from __future__ import annotations

import random
from typing import Any

FAMILIES = ("number", "choice", "open", "instruction")
TASKS = {"number": "number", "choice": "choice", "open": "open", "instruction": "auto"}  # the item's task

EXAMPLE = "<think>2 plus 2 makes 4.</think>\n<answer>4</answer>"  # copying it is a hack the audit flags
INSTRUCTIONS = ("Think briefly inside <think> </think>, then give only the final answer inside "
                f"<answer> </answer>, like this:\n{EXAMPLE}")

NAMES = ["Tom", "Ana", "Sam", "Lea", "Ben", "Mia", "Raj", "Zoe", "Ivan", "Kim"]
THINGS = ["apples", "books", "coins", "stickers", "pencils", "marbles", "cards", "shells"]
CATEGORIES = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear", "peach", "plum"],
    "animal": ["dog", "cat", "horse", "lion", "tiger", "rabbit", "sheep", "whale", "eagle", "frog"],
    "vehicle": ["car", "bus", "train", "bicycle", "truck", "boat", "plane", "tram", "scooter", "taxi"],
    "colour": ["red", "blue", "green", "yellow", "purple", "pink", "brown", "black", "white", "grey"],
    "tool": ["hammer", "saw", "wrench", "drill", "shovel", "axe", "chisel", "rake", "spanner", "pliers"],
    "instrument": ["piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello", "banjo", "oboe"],
}
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow", "happy": "sad",
             "open": "closed", "wet": "dry", "early": "late", "light": "dark", "full": "empty", "old": "new",
             "hard": "soft", "high": "low", "rich": "poor", "strong": "weak", "long": "short", "loud": "quiet",
             "thick": "thin", "win": "lose", "push": "pull", "near": "far", "in": "out", "young": "old"}
COLOURS = {"grass": "green", "snow": "white", "the sky on a clear day": "blue", "a banana": "yellow",
           "coal": "black", "a ripe tomato": "red", "an orange": "orange", "milk": "white", "a lemon": "yellow",
           "a frog": "green", "blood": "red", "chocolate": "brown", "a crow": "black", "the sun": "yellow"}
SOUNDS = {"dog": "bark", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa", "lion": "roar",
          "snake": "hiss", "owl": "hoot", "horse": "neigh", "bee": "buzz", "pig": "oink", "frog": "croak"}
CAPITALS = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Canada": "Ottawa", "Russia": "Moscow", "Greece": "Athens", "Kenya": "Nairobi",
            "Peru": "Lima", "Norway": "Oslo", "China": "Beijing", "India": "New Delhi", "Cuba": "Havana"}
TOPICS = ["the sea", "a forest", "your morning", "a city at night", "the rain", "a good friend", "music",
          "a mountain", "the moon", "a market", "winter", "a library", "the wind", "a garden", "a river",
          "a train ride", "breakfast", "a storm", "a cat", "the desert"]
CONSTRAINTS = [  # (what the prompt says, the IFEval constraint)
    ("Use only lowercase letters.", {"id": "change_case:english_lowercase"}),
    ("Do not use any commas.", {"id": "punctuation:no_comma"}),
    ("Use fewer than 12 words.",
     {"id": "length_constraints:number_words", "kwargs": {"relation": "less than", "num_words": 12}}),
    ("Write it in capital letters only.", {"id": "change_case:english_capital"}),
]


def _number() -> list[tuple[str, str]]:
    out = [(f"What is {a} + {b}?", str(a + b)) for a in range(1, 16) for b in range(1, 16)]
    out += [(f"What is {a} - {b}?", str(a - b)) for a in range(5, 21) for b in range(1, 5)]
    out += [(f"What is {a} times {b}?", str(a * b)) for a in range(2, 10) for b in range(2, 6)]
    for i, name in enumerate(NAMES):
        for j, thing in enumerate(THINGS):
            a, b = 2 + (i + j) % 7, 1 + (3 * i + j) % 5
            out.append((f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?",
                        str(a + b)))
    return out


def _choice(rng: random.Random) -> list[tuple[str, str, list[str]]]:
    out = []
    for cat, members in CATEGORIES.items():
        others = [m for c, ms in CATEGORIES.items() if c != cat for m in ms]
        for right in members:
            options = [right, *rng.sample(others, 3)]
            rng.shuffle(options)
            letter = "ABCD"[options.index(right)]
            listed = "\n".join(f"({'ABCD'[k]}) {o}" for k, o in enumerate(options))
            article = "an" if cat[0] in "aeiou" else "a"
            out.append((f"Which of these is {article} {cat}?\n{listed}\nAnswer with the letter.", letter, options))
    return out


def _open() -> list[tuple[str, str]]:
    out = [(f"What is the opposite of \"{w}\"? Answer with one word.", o) for w, o in OPPOSITES.items()]
    out += [(f"What colour is {t}? Answer with one word.", c) for t, c in COLOURS.items()]
    out += [(f"What sound does a {a} make? Answer with one word.", s) for a, s in SOUNDS.items()]
    out += [(f"What is the capital of {c}?", k) for c, k in CAPITALS.items()]
    return out


def _instruction() -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for topic in TOPICS:
        for k, (said, constraint) in enumerate(CONSTRAINTS):
            out.append((f"Write one sentence about {topic}. {said}", [constraint]))
            said2, c2 = CONSTRAINTS[(k + 1) % len(CONSTRAINTS)]
            if {constraint["id"], c2["id"]} != {"change_case:english_lowercase", "change_case:english_capital"}:
                out.append((f"Write one sentence about {topic}. {said} {said2}", [constraint, c2]))
    return out


def make_tasks(seed: int = 0, heldout_per_family: int = 12, train_per_family: int | None = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, held-out rows), the same for the same arguments. The families weigh the same
    in training (the smaller ones are cycled), shuffled so that every step sees a mix."""
    rng = random.Random(seed)
    pools: dict[str, list[dict[str, Any]]] = {
        "number": [{"question": q, "reference": a} for q, a in _number()],
        "choice": [{"question": q, "reference": a, "choices": opts} for q, a, opts in _choice(rng)],
        "open": [{"question": q, "reference": a} for q, a in _open()],
        "instruction": [{"question": q, "reference": None, "constraints": c} for q, c in _instruction()],
    }
    train: list[list[dict[str, Any]]] = []
    heldout: list[dict[str, Any]] = []
    for family in FAMILIES:
        rows = pools[family]
        rng.shuffle(rows)
        for r in rows:
            r.update(task=TASKS[family], data_source=f"demo_{family}", family=family)
            r.setdefault("choices", None)
            r.setdefault("constraints", None)
        heldout += rows[:heldout_per_family]
        rest = rows[heldout_per_family:]
        train.append(rest[:train_per_family] if train_per_family else rest)
    n = max(len(t) for t in train)
    mixed = [t[i % len(t)] | {} for i in range(n) for t in train]
    rng.shuffle(mixed)
    return mixed, heldout
