"""Multiple choice (MMMU / MathVista style): the one rule set, in reading order.

1. **Answer statements** are found in the answer part of the response (after the last
   ``</think>``): ``<answer>`` tags (any case; an unclosed last one runs to the end), runs of
   ``\\boxed{}``, and markers: "the answer is", "answer:", "final answer", "the correct/best
   option is", "correct option:", "I choose/pick/select/go with", "X is correct", and the answer
   markers of Chinese, Japanese, Korean, Spanish, French, German and Portuguese.
2. **The last statement decides.** A statement reads to the end of its sentence (or line).
   It must name exactly one valid option: its whole text is an option's text, or it names one
   letter in range (lower case only alone or in parentheses; "I" as a pronoun is no letter), or
   it contains one option's text. A letter or text after "not", "n't", "neither", "nor", "but",
   "except" is negated, not chosen. Two or more options (a hedge, a list), none, or a refusal
   ("cannot be determined", "none of the above"...) is *no answer*: not paid, and never an
   earlier statement's letter instead.
3. **Without any statement**, only the final sentence is read: a letter alone ("B", "(C)",
   "d."), a letter leading it ("B. green", "option b"), a letter or an option's text after its
   last comma or colon ("..., C."), or the one option text it contains. Lists of the options
   echoed back and refusals are no answer. Such a reading has low confidence
   (``CONF_FALLBACK``), and so does prose the rules cannot read: a hybrid profile routes the item
   to its model. A non-answer the rules do see (a hedge, a refusal, an invalid letter, nothing
   after ``</think>``) is certain: no model can turn it into a reward.

Unlike MMMU's parser, an answer that names no option is never replaced by a random choice: it
scores 0 (verdict ``incorrect``) with a typed ``unparseable`` error saying why.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import boxed_spans
from .hedges import before_next_turn, degenerate, is_refusal, negated
from .text import normalize_text

LETTERS = string.ascii_uppercase
DEFAULT_OPTIONS = 5  # letters A-E when the item lists no choices
CONF_FALLBACK = 0.5
_MAX_STATEMENT = 300  # characters of a statement read: an answer is short; the cost stays linear

_MARKERS = re.compile(
    r"(?:(?<![</])\b(?:the\s+)?(?:final\s+|correct\s+|right\s+|best\s+|my\s+)?answer\b(?!>)"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be|could\s+be|might\s+be))?"
    r"|\b(?:the\s+)?(?:correct|right|best)\s+(?:option|choice)\b(?:\s+(?:is|would\s+be))?"
    r"|\b(?:correct\s+)?(?:option|choice)(?=\s*[:：])"
    r"|\bI(?:['’]d|['’]ll|\s+would|\s+will)?\s+(?:choose|pick|select|go\s+with|opt\s+for)\b(?:\s+(?:option|choice))?"
    r"|\b(?:la\s+respuesta\s+(?:correcta\s+)?es|la\s+r[ée]ponse\s+(?:correcte\s+)?est|die\s+(?:richtige\s+)?antwort\s+ist"
    r"|a\s+resposta\s+(?:correta\s+)?[ée])\b"
    r"|(?:正确)?答案(?:是|为|為|應為|应为)?|答えは|正解は|정답(?:은|는)?)"
    r"\s*(?:[:：—=-]\s*)?",
    re.IGNORECASE,
)
# "B is correct", "Option C is the right one"
_IS_CORRECT = re.compile(
    r"(?<![A-Za-z0-9])(?:option\s+|choice\s+)?\(?([A-Za-z])\)?\s+is\s+(?:the\s+)?(?:correct|right)\b", re.IGNORECASE)
_TAG_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_TAG_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_MARKDOWN = re.compile(r"[*_`>#]+")
_SENTENCE_END = re.compile(r"\n|。|！|？|(?<=\S)[.!?](?=\s|$)")
_LETTER = re.compile(r"(?<![A-Za-z0-9])(\()?([A-Za-z])(\))?(?![A-Za-z0-9'’])")
_LIST_LINE = re.compile(r"^[^\S\n]*\(?([A-Za-z])[.)]\)?[^\S\n]+\S|^[^\S\n]*\(([A-Za-z])\)[^\S\n]*\S", re.MULTILINE)


@dataclass(frozen=True)
class Reading:
    """What a response answers: ``letter`` or None, and why (for ``details``)."""

    letter: str | None
    reason: str
    confidence: float = 1.0


def _norm(s: str) -> str:
    """Lower case, single spaces, no surrounding punctuation (articles kept: "Solution A" stays)."""
    return " ".join(s.lower().split()).strip(" .,:;!?\"'()[]")


def _clean(s: str) -> str:
    s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("\\boxed", " ").replace("{", " ").replace("}", " ").replace("$", " ")
    return _MARKDOWN.sub(" ", s).strip()


def _options_in(text: str, choices: list[str]) -> tuple[list[str], list[str]]:
    """Letters of the options whose text the statement contains (whole words, the longest match
    where one option's text holds another's), and of those it only mentions negated."""
    low = f" {_norm(text)} "
    found: list[tuple[int, int, str, bool]] = []
    for i, c in enumerate(choices):
        nc = _norm(c)
        if not nc:
            continue
        start, seen = 0, 0
        while seen < 10 and (k := low.find(nc, start)) >= 0:  # ten mentions say as much as more
            seen += 1
            end = k + len(nc)
            if not low[k - 1].isalnum() and (end >= len(low) or not low[end].isalnum()):
                found.append((k, end, LETTERS[i], negated(low, k)))
            start = k + 1
    kept = [f for f in found if not any(o[0] <= f[0] and f[1] <= o[1] and (o[1] - o[0]) > (f[1] - f[0])
                                        for o in found)]
    chosen = sorted({f[2] for f in kept if not f[3]})
    denied = sorted({f[2] for f in kept if f[3]} - set(chosen))
    return chosen, denied


def _letters_in(text: str, n: int) -> tuple[list[str], list[str]]:
    """Letters the statement names (in range, not negated), and out-of-range ones."""
    whole = _LETTER.fullmatch(text.strip(" .:;!?"))
    named, invalid = [], []
    for m in _LETTER.finditer(text):
        ch = m.group(2)
        if ch.islower() and not (m.group(1) and m.group(3)) and whole is None:
            continue  # lower case only alone or in parentheses: otherwise a word ("a")
        if ch == "I" and re.match(r"\s+[a-z'’]", text[m.end():]):
            continue  # the pronoun
        if negated(text, m.start()):
            continue
        (named if ch.upper() in LETTERS[:n] else invalid).append(ch.upper())
    return sorted(set(named)), sorted(set(invalid))


def read_statement(text: str, choices: list[str] | None) -> Reading:
    """The one option a statement names, or why it names none."""
    text = _clean(text)
    n = len(choices) if choices else DEFAULT_OPTIONS
    if not text:
        return Reading(None, "the answer statement is empty")
    if choices:
        whole = _norm(text)
        exact = [LETTERS[i] for i, c in enumerate(choices) if _norm(c) == whole]
        if len(set(exact)) == 1:
            return Reading(exact[0], "an option's text")
    letters, invalid = _letters_in(text, n)
    if len(letters) > 1:
        return Reading(None, f"names several options ({', '.join(letters)}): a hedge is not an answer")
    if len(letters) == 1:
        return Reading(letters[0], "a letter")
    if choices:
        chosen, _ = _options_in(text, choices)
        if len(chosen) > 1:
            return Reading(None, f"names several options ({', '.join(chosen)}): a hedge is not an answer")
        if len(chosen) == 1:
            return Reading(chosen[0], "an option's text")
    if is_refusal(text):
        return Reading(None, "the answer is a refusal")
    if invalid:
        return Reading(None, f"names no valid option ({', '.join(invalid)} is out of range)")
    return Reading(None, "the answer statement names no option")


def _sentence(text: str, start: int) -> str:
    """From ``start`` to the end of the sentence (or line), skipping leading blank lines."""
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    window = text[start : start + _MAX_STATEMENT]
    end = _SENTENCE_END.search(window)
    return window[: end.start()] if end else window


def statements(response: str) -> list[tuple[int, str]]:
    """The last answer statement of each kind (tag, box run, marker, "X is correct"), as
    ``(position, text)`` in order; a marker inside the last tag or box run is that statement's.
    Each kind is found in one pass: the cost stays linear on degenerate responses."""
    think_end = response.lower().rfind("</think>")
    body = before_next_turn(response[think_end + len("</think>"):] if think_end >= 0 else response)
    found: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    last_open = last_close = None
    for last_open in _TAG_OPEN.finditer(body):  # noqa: B007 - the last one is wanted
        pass
    for last_close in _TAG_CLOSE.finditer(body):  # noqa: B007
        pass
    if last_open is not None:
        if last_close is not None and last_close.start() >= last_open.end():
            start, end = last_open.end(), last_close.start()
        else:  # the last tag is unclosed: what follows it, unless it closes an earlier one
            earlier = None
            if last_close is not None:
                for earlier in _TAG_OPEN.finditer(body, 0, last_close.start()):  # noqa: B007
                    pass
            if earlier is not None and last_open.start() > last_close.start():
                start, end = last_open.end(), len(body)  # closed ones before, an unclosed one last
            elif earlier is not None:
                start, end = earlier.end(), last_close.start()
            else:
                start, end = last_open.end(), len(body)
        found.append((start, body[start:end][:_MAX_STATEMENT]))
        spans.append((start, end))
    boxes = boxed_spans(body)
    if boxes:  # boxes joined by "or", "and", commas state one (possibly hedged) answer together
        run = [boxes[-1]]
        for prev in reversed(boxes[:-1]):
            if not _BOX_JOIN.fullmatch(body[prev[1] : run[0][0]]):
                break
            run.insert(0, prev)
        found.append((run[0][0], ", ".join(c for _, _, c in run)[:_MAX_STATEMENT]))
        spans.append((run[0][0], run[-1][1]))
    inside = lambda pos: any(a <= pos < b for a, b in spans)  # noqa: E731
    marker = None
    for m in _MARKERS.finditer(body):
        if m.group(0).strip() and not inside(m.start()):
            marker = m
    if marker is not None:
        found.append((marker.start(), _sentence(body, marker.end())))
    correct = None
    for m in _IS_CORRECT.finditer(body):
        if not inside(m.start()):
            correct = m
    if correct is not None:
        found.append((correct.start(), correct.group(1)))
    return sorted(found, key=lambda f: f[0])


_BOX_JOIN = re.compile(r"(?:\s|[,;$]|\\quad|\\qquad|\\[,;]|\band\b|\bor\b)*")


def _fallback(response: str, choices: list[str] | None) -> Reading:
    """No statement: the final sentence alone, read strictly, with low confidence."""
    think_end = response.lower().rfind("</think>")
    body = before_next_turn(response[think_end + len("</think>"):] if think_end >= 0 else response).strip()
    if not body or degenerate(body):
        return Reading(None, "the response states no answer" if not body else "a degenerate, repetitive response")
    tail = body[-2000:]
    listed = {(m.group(1) or m.group(2)).upper() for m in _LIST_LINE.finditer(tail)}
    listed |= {m.group(1).upper() for m in re.finditer(r"\(([A-Za-z])\)\s*\w", tail)}
    if len(listed) >= 3:
        return Reading(None, "the options listed back are not an answer")
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    last = _clean(lines[-1]) if lines else ""
    pieces = [p for p in re.split(r"(?<=[.!?])\s+", last) if p.strip()]
    final = pieces[-1] if pieces else last
    n = len(choices) if choices else DEFAULT_OPTIONS
    # The whole response is the answer ("B", "(C)", "whale"): sure; read from prose: not.
    whole = _clean(body).strip(" .:;!?")
    # a refusal, unless the refusal is itself an option ("none of these") that the sentence names
    refusal_options = [c for c in choices or () if is_refusal(c)]
    if is_refusal(final) and not any(_norm(c) in _norm(final) for c in refusal_options):
        return Reading(None, "the response declines to answer")
    forms = [
        final,  # "B", "(c)", "d."
        re.sub(r"^(?:option|choice)\s*", "", final.strip(), flags=re.IGNORECASE),  # "option b"
    ]
    lead = re.match(r"^\s*\(?([A-Za-z])\)?[.):]\s+\S", final)
    if lead and lead.group(1) not in "aI":
        forms.append(lead.group(1))  # "B. green"
    after = re.search(r"[,:：—]\s*([^,:：—]+?)\s*[.!]?\s*$", final)
    if after:
        forms.append(after.group(1))  # "..., C." / ", a whale."
    for form in forms:
        form = form.strip(" .:;!?")
        conf = 1.0 if form == whole else CONF_FALLBACK
        m = _LETTER.fullmatch(form)
        if m and form != "a" and m.group(2).upper() in LETTERS[:n]:
            return Reading(m.group(2).upper(), "a letter ending the response", conf)
        if choices:
            exact = [LETTERS[i] for i, c in enumerate(choices) if _norm(c) and _norm(c) == _norm(form)]
            if len(exact) == 1:
                return Reading(exact[0], "an option's text ending the response", conf)
    if choices:
        chosen, _ = _options_in(final, choices)
        if len(chosen) == 1:
            return Reading(chosen[0], "the one option the final sentence names", CONF_FALLBACK)
    # Prose the rules cannot read: unsure, so that a hybrid profile's model reads it.
    return Reading(None, "the response states no answer the rules can read", CONF_FALLBACK)


def read_choice(response: str, choices: list[str] | None) -> Reading:
    """The option a response answers (rules 1-3 of the module docstring)."""
    found = statements(response)
    if found:
        return read_statement(found[-1][1], choices)
    return _fallback(response, choices)


def reference_letter(reference: str, choices: list[str] | None) -> str | None:
    """The gold option's letter, from a letter ('B', '(B)') or from the option text."""
    ref = reference.strip()
    m = re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]\.]?", ref)
    n = len(choices) if choices else 26
    if m and m.group(1).upper() in LETTERS[:n]:
        return m.group(1).upper()
    if choices:
        norm = normalize_text(ref)
        for i, c in enumerate(choices):
            if normalize_text(c) == norm:
                return LETTERS[i]
    return None


def choice_match(response: str, references: list[str], *, choices: list[str] | None = None, **_: object) -> Check:
    if choices is not None and len(choices) > len(LETTERS):
        return Check(0.0, "error", 0.0, None, (
            "bad_choices", f"{len(choices)} options: a choice is a letter, so at most {len(LETTERS)}"))
    golds = {g for r in references if (g := reference_letter(r, choices))}
    if not golds:
        return Check(0.0, "error", 0.0, None, ("bad_reference", f"reference {references!r} names no option"))
    reading = read_choice(response, choices)
    if reading.letter is None:  # sure where the rules see a non-answer (a hedge, a refusal, ...)
        return Check(0.0, "incorrect", reading.confidence, None, ("unparseable", reading.reason))
    return Check.binary(reading.letter in golds, reading.letter, reading.confidence)


VERIFIER = Verifier("choice", choice_match, NoOptions, 5, "multiple choice: the last answer statement, one option",
                    ("harmo.server.rewards.choice", "harmo.server.rewards.hedges", "harmo.server.rewards.text",
                     *EXTRACT))
