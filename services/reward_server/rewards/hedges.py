"""What makes a stated answer no answer, for every verifier that reads one: a refusal, a
negation ("not 3", "isn't B"), a hedge between several candidates ("3 or 4", "A or B"), and
an invented next turn after the answer ("Question: ... Answer: ..."). A reward that pays any of
these gets them: RL finds such holes within a few hundred steps."""
from __future__ import annotations

import re
from collections import Counter

REFUSAL = re.compile(
    r"cannot\s+be\s+determined|can\s*not\s+(?:be\s+)?(?:determine|answer|decide|tell|help|solve|find|provide|give)|"
    r"can['’]t\s+(?:help|answer|determine|tell|decide|solve|find|provide|give|be\s+determined)|unable\s+to|"
    r"please\s+provide|(?:don['’]t|do\s+not)\s+have\s+(?:access|enough)|"
    r"not\s+(?:provided|given|enough|possible|shown|visible|in\s+the\s+options|among\s+the\s+options|listed|"
    r"available|provide\s+(?:enough\s+)?information)|no\s+information|none\s+of\s+(?:the|these|them)|"
    r"no\s+(?:correct\s+)?(?:answer|option|solution)|insufficient|"
    r"i\s+don['’]t\s+know|i\s+do\s+not\s+know|unclear|not\s+sure|\bunknown\b|undetermined|"
    r"无法|不能确定|不确定|わかりません|알\s*수\s*없",
    re.IGNORECASE,
)
# A negation word within the three words before a candidate.
NEGATED_BEFORE = re.compile(
    r"(?:\bnot|n['’]t|\bneither|\bnor|\bbut|\bexcept|\bwithout|\bnever|\bno\s+longer|不是|并非)\W*(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
HEDGE_WORDS = re.compile(r"\b(?:or|either|between|maybe|perhaps|possibly)\b|或|还是|或者", re.IGNORECASE)
# An invented next turn: the policy asks itself another question and answers that one too.
_NEXT_TURN = re.compile(
    r"\n[^\S\n]*(?:#+[^\S\n]*)?(?:\*\*)?(?:(?:follow[- ]up|next|another|new)\s+)?(?:question|problem|exercise|"
    r"q|human|user)\s*\d*\s*(?:\*\*)?\s*[:：]",
    re.IGNORECASE,
)

# Words that say a statement is not sure of itself, or offers alternatives ("X or Y").
UNSURE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|probably|might|could\s+be|not\s+sure)\b|或|还是|也许|可能",
                    re.IGNORECASE)
NEGATION = re.compile(r"\b(?:not|never|neither|nor|no\s+longer|cannot|none)\b|n['’]t\b|不是|并非|没有", re.IGNORECASE)

WINDOW = 40  # characters before a candidate a negation is looked for in


def is_refusal(text: str) -> bool:
    return REFUSAL.search(text) is not None


def unsure(text: str) -> bool:
    return UNSURE.search(text) is not None


def polarity(text: str) -> int:
    """0 for a plain statement, 1 for a negated one (one negation or an odd count)."""
    return len(NEGATION.findall(text)) % 2


def negated(text: str, pos: int) -> bool:
    """Whether the candidate at ``pos`` of ``text`` is negated ("not 3", "isn't B")."""
    return NEGATED_BEFORE.search(text[max(0, pos - WINDOW) : pos]) is not None


def degenerate(text: str, min_tokens: int = 50, share: float = 0.8) -> bool:
    """A response that is one token over and over ("12 12 12 ..."): no statement of an answer."""
    tokens = text.split()
    if len(tokens) < min_tokens:
        return False
    return Counter(tokens).most_common(1)[0][1] >= share * len(tokens)


def before_next_turn(response: str) -> str:
    """The response up to an invented next question, if it goes on to one after answering."""
    for m in _NEXT_TURN.finditer(response):
        before = response[: m.start()]
        if _STATED.search(before):  # only once an answer was given: a restated question stays
            return before
    return response


_STATED = re.compile(r"answer|\\boxed|答案|答え|정답|=\s*-?\$?\d", re.IGNORECASE)
