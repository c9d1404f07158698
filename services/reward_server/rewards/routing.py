"""``task: auto``: which rule verifier applies to an item, if any."""
from __future__ import annotations

import fnmatch
import re

from harmo.protocol import ScoreItem

from .numeric import to_float
from .unicode import unify

_LETTER = re.compile(r"[\(\[]?\s*[A-E]\s*[\)\]\.]?")
_MATHY = re.compile(r"[\\^{}_=]|\d\s*[+\-*/]\s*\w|\w\s*[+\-*/]\s*\d|^[a-z]$|[a-z]\s*[+\-*/=<>]")
_WORDS = re.compile(r"[A-Za-z]{3,}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_TEST_KEYS = re.compile(r'^\{\s*"(inputs|outputs|fn_name|test|test_list|entry_point)"\s*:')
_ASSERT_LINE = re.compile(r"^(assert |def check\()", re.M)


def _is_tests(reference: str) -> bool:
    """A code dataset's tests: its JSON forms, or assert-style test code (rewards/code.py)."""
    head = reference.lstrip()[:64]
    return bool(_TEST_KEYS.match(head)) or bool(_ASSERT_LINE.search(reference[:4096]))


def route(item: ScoreItem, data_source_routes: dict[str, str]) -> str:
    """The verifier name for an item, or ``open`` where no rule applies."""
    if item.task != "auto":
        return item.task
    if item.data_source:
        for pattern, task in data_source_routes.items():
            if fnmatch.fnmatchcase(item.data_source.lower(), pattern.lower()):
                return task
    if len(item.references()) == 1 and _is_tests(item.references()[0]):
        return "code"
    refs = [unify(r) for r in item.references()]
    if item.choices:
        return "choice"
    if not refs:
        return "open"
    if len(refs) > 1 and not all(_MATHY.search(r) for r in refs):
        return "vqa"
    ref = refs[0].strip()
    if _LETTER.fullmatch(ref):
        return "choice"
    # Plain numbers go to math too: math-verify reads "1,000", "$5", "28\\%" and "\\frac{1}{2}".
    if to_float(ref) is not None:
        return "math"
    if _MATHY.search(ref) and not _WORDS.search(_LATEX_COMMAND.sub("", ref)):
        return "math"
    if len(ref.split()) <= 8:
        return "text"
    return "open"
