"""Multiple choice (MMMU / MathVista style): the one rule set, read as a careful grader reads.

The answer part of a response is what follows the last ``</think>``, up to an invented next
turn. In it, evidence is taken in this order; the first kind present decides:

1. **Containers**: ``<answer>`` tags and ``\\boxed{}``. The last container decides, whatever its
   content: an invalid, empty or hedged last container is no answer, never an earlier one's
   letter. Boxes joined by "or", "and", "then", commas state one (hedged) answer together.
   Malformed markup (nested or mismatched tags, a stray ``</answer>``, an unclosed or nested
   box) is no answer. An unclosed last ``<answer>`` runs to the end ("<answer> c").
2. **Declarations**: answer markers ("the answer is", "answer:", "I choose", "the correct
   option is", "option C is correct"; Chinese, Japanese, Korean, Spanish, French, German and
   Portuguese markers). The last declaration decides, and it is read *next to its marker*: the
   letter right after it (any case: the marker makes it a selection; markdown, quotes and
   brackets are formatting), else the option text it states. Prose after the marker ("the
   answer is probably B", "I choose plan B") is not a selection.
3. **Implicit evidence**, only where neither is present: a response that is a letter alone
   ("b", "**C**", "'B'"), a leading label ("B. a yellow bus", "(a) a sphere", "a because..."),
   a bracketed letter ("... matches (C)."), a letter ending the response after a comma,
   semicolon or on a line of its own, or the one option text the final sentence states. Such a
   reading has low confidence (``CONF_FALLBACK``) unless the response is the letter alone.

Everywhere, a reading must name exactly one option. Two options ("A or B", "A/B", "A, C",
"(B) or (C)", options listed back), an option negated ("not C", "B is not my selection"), a
refusal, a letter out of range or a word ("Answer: DNA") is *no answer*: certain, never paid,
and never handed to a model. Prose the rules cannot read is unsure (``CONF_FALLBACK``), so a
hybrid profile can hand it to its model.

Which letters are options: the item's ``choices`` (a list of single letters is the alphabet
itself, "A", "C", "F"; otherwise one option per text, A, B, C...), else the options its prompt
lists, else A-D, stretched to the gold letter (a response naming a letter beyond both can only
be wrong). Unlike MMMU's parser, an answer that names no option is never replaced by a random
choice: it scores 0 (verdict ``incorrect``) with a typed ``unparseable`` error saying why.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import boxed_spans
from .hedges import before_next_turn, degenerate, is_refusal, negated
from .text import normalize_text
from .unicode import unify

LETTERS = string.ascii_uppercase
DEFAULT_OPTIONS = 4  # letters A-D when nothing says how many options there are
CONF_FALLBACK = 0.5
_MAX_STATEMENT = 300  # characters of a statement read: an answer is short; the cost stays linear

_MARKERS = re.compile(
    r"(?:(?<![</\w])(?:the\s+)?(?:final\s+|correct\s+|right\s+|best\s+|my\s+)?answer(?![\w<])"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be|could\s+be|might\s+be))?"
    r"|(?<![<\w/])answer>"
    r"|\b(?:the\s+)?(?:correct|right|best|closest|nearest)\s+(?:option|choice)\b(?:\s+(?:is|would\s+be))?"
    r"|\b(?:correct\s+)?(?:option|choice)(?=\s*[:])"
    r"|\bI(?:['’]d|['’]ll|\s+would|\s+will)?\s+(?:choose|pick|select|go\s+with|opt\s+for)\b"
    r"|\b(?:la\s+respuesta\s+(?:correcta\s+)?es|la\s+r[ée]ponse\s+(?:correcte\s+)?est|die\s+(?:richtige\s+)?antwort\s+ist"
    r"|a\s+resposta\s+(?:correta\s+)?[ée])\b"
    r"|(?:正确)?答案(?:是|为|為|應為|应为)?|答えは|正解は|(?:我)?选(?:择|項|项)?|정답(?:은|는)?|(?<!정)답(?:은|는)?(?=\s*[:\w])|옵션)",
    re.IGNORECASE,
)
# "B is correct", "Option C is the right one", "A seems correct"
_IS_CORRECT = re.compile(
    r"(?<![\w.@/])(?:option\s+|choice\s+)?[*_`'\"(]*([A-Za-z])[*_`'\")]*\s+(?:is|seems|looks|appears)\s+"
    r"(?:to\s+be\s+)?(?:the\s+)?(?:correct|right|best|answer)\b", re.IGNORECASE)
# "Option C, garter snakes would decrease, is the correct answer."
_IS_CORRECT_LATE = re.compile(r"\b(?:option|choice)\s+\(?([A-Z])\)?,?[^.\n]{0,80}?\bis\s+the\s+"
                              r"(?:correct|right|best)\s+(?:answer|option|choice)\b", re.IGNORECASE)
_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)
_MARKUP = re.compile(r"</?[A-Za-z][\w-]*>")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mathit)\s*\{([^{}]*)\}")
_SENTENCE_END = re.compile(r"\n|。|！|？|(?<=\S)[.!?](?=\s|$)")
_SKIP = re.compile(r"[\s:=>\-—–*_`'\"“”‘’(\[【]*(?:(?:therefore|thus|hence|clearly|indeed|then),?\s+)?"
                   r"[\s:*_`'\"“”‘’(\[【]*(?:(?:option|choice|letter|选项)\s*[\s:*_`'\"“”‘’(\[【]*)?", re.IGNORECASE)
_SUFFIXES = ("입니다", "이다", "です", "である")
# A second option right after the first: "A or B", "A/B", "A, B", "(A) or (D)", "B and C", "A+B"
_ALTERNATIVE = re.compile(
    r"^[)\]】*_`'\"”’]*\s*(?:,|/|&|\+|、|;|\bor\b|\band\b|\beither\b|或者?|和|还是|及)\s*"
    r"(?:\b(?:or|and)\b\s*)?[*_`'\"“‘(\[]*([A-Za-z])(?![A-Za-z0-9_])", re.IGNORECASE)
_LABELLED = re.compile(r"(?<![\w/])\(([A-Za-z])\)|(?<![\w./@])([A-Z])\)")
# Letters joined as alternatives anywhere in a sentence: "A or B", "Options A, B, C, D"
_JOINED = re.compile(r"(?<![\w.@/])\(?([A-Z])\)?\s*(?:,|/|&|\bor\b|\band\b)\s*\(?([A-Z])(?![\w])")
_MAYBE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|might|could|also)\b|或|还是", re.IGNORECASE)
_LEAD = re.compile(r"^[\s*_]*(?:\(([A-Za-z])\)|([A-Za-z])[*_]*[.):])[*_]*(?=\s|$)")
_LEAD_REASON = re.compile(r"^\s*([A-Za-z])\s+(?:because|since|as)\b", re.IGNORECASE)
_TRAILING = re.compile(r"[,;:]\s*[*_`'\"“‘]*(?:\(([A-Za-z])\)|([A-Z]))[*_`'\"”’]*\s*[.!]?\s*$")
_IS_LETTER = re.compile(r"\b(?:is|are)\s+(?:option\s+)?\(?([A-Z])\)?\s*[.!]?\s*$")
_LIST_LINE = re.compile(r"^[^\S\n]*[*_]*\(?([A-Za-z])[.)][*_]*[^\S\n]+\S|^[^\S\n]*\(([A-Za-z])\)[^\S\n]*\S",
                        re.MULTILINE)
_PROMPT_OPTION = re.compile(r"(?:^|\n|\s)\(?([A-Z])[.)：:]\s*\S|\(([A-Z])\)\s*\S")


@dataclass(frozen=True)
class Options:
    """The valid labels of an item and, where known, each option's text."""

    letters: tuple[str, ...]
    texts: dict[str, str]

    def valid(self, letter: str) -> bool:
        return letter.upper() in self.letters


def options_for(choices: list[str] | None, prompt: str | None = None, golds: tuple[str, ...] = ()) -> Options:
    if choices:
        raw = [c.strip().strip("()") for c in choices]
        labels = [x.upper() for x in raw]
        # Choices that are letters are the alphabet itself ("A", "C", "F"; "a", "b", "c"), where
        # lower-case ones that do not run from "a" ("x", "y") are options' texts.
        if all(len(x) == 1 and x in LETTERS for x in labels) and len(set(labels)) == len(labels) and \
                (all(x.isupper() for x in raw) or "".join(raw) == string.ascii_lowercase[: len(raw)]):
            return Options(tuple(labels), {})
        return Options(tuple(LETTERS[: len(choices)]), {LETTERS[i]: c for i, c in enumerate(choices)})
    n = 0
    if prompt:
        listed = {(m.group(1) or m.group(2)) for m in _PROMPT_OPTION.finditer(prompt[-4000:])}
        while n < len(LETTERS) and LETTERS[n] in listed:
            n += 1
        n = n if n >= 2 else 0
    # the gold is an option whatever the prompt seemed to list
    n = max([n or DEFAULT_OPTIONS] + [LETTERS.index(g) + 1 for g in golds if g in LETTERS])
    return Options(tuple(LETTERS[:n]), {})


@dataclass(frozen=True)
class Reading:
    """What a response answers: ``letter`` or None, and why (for ``details``)."""

    letter: str | None
    reason: str
    confidence: float = 1.0


_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")


def _clean(s: str) -> str:
    if "\\" not in s and "$" not in s and "{" not in s:
        return s
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _FRAC.sub(r"\1/\2", s)
    s = _SQRT.sub(r"√\1", s)
    s = s.replace("^\\circ", "°").replace("^{\\circ}", "°").replace("\\circ", "°")
    s = s.replace("\\boxed", " ").replace("\\left", "").replace("\\right", "")
    return s.replace("{", " ").replace("}", " ").replace("$", " ").replace("\\%", "%")


def _norm(s: str) -> str:
    """An option text or a statement, compared: LaTeX unwrapped, lower case, single spaces,
    no surrounding punctuation (articles kept: "Solution A" stays)."""
    return _norm_short(s) if len(s) <= 200 else _normalise(s)


@lru_cache(maxsize=4096)  # options' texts are normalised again and again
def _norm_short(s: str) -> str:
    return _normalise(s)


def _normalise(s: str) -> str:
    return " ".join(_clean(s).lower().split()).strip(" .,:;!?\"'()[]*_`")


_GLUED = set("√^/.-+_*")  # "3" is not the option "3" inside "√3", "0.3", "-3", "3/4"


def _options_in(text: str, opts: Options) -> tuple[list[str], list[str]]:
    """Letters of the options whose text the statement contains (whole words, the longest match
    where one option's text holds another's), and of those it only mentions negated."""
    low = f" {_norm(text).replace('*', ' ')} "  # markdown emphasis is no part of an option's text
    found: list[tuple[int, int, str, bool]] = []
    for letter, c in opts.texts.items():
        nc = _norm(c)
        if not nc or _LABEL_TEXT.fullmatch(c):  # a text that is a letter ("(b)") is no words to find
            continue
        start, seen = 0, 0
        while seen < 10 and (k := low.find(nc, start)) >= 0:  # ten mentions say as much as more
            seen += 1
            end = k + len(nc)
            before, after = low[k - 1], low[end] if end < len(low) else " "
            if not (before.isalnum() or before in _GLUED) and not (after.isalnum() or after in _GLUED - {"."}):
                found.append((k, end, letter, negated(low, k)))
            start = k + 1
    kept = [f for f in found if not any(o[0] <= f[0] and f[1] <= o[1] and (o[1] - o[0]) > (f[1] - f[0])
                                        for o in found)]
    chosen = sorted({f[2] for f in kept if not f[3]})
    denied = sorted({f[2] for f in kept if f[3]} - set(chosen))
    return chosen, denied


def _exact_option(text: str, opts: Options) -> str | None:
    if not opts.texts or len(text) > 2 * max(map(len, opts.texts.values())) + 40:
        return None  # far longer than any option's text
    whole = _norm(text)
    exact = {letter for letter, c in opts.texts.items() if _norm(c) and _norm(c) == whole}
    return exact.pop() if len(exact) == 1 else None


def _token_at(text: str, i: int) -> tuple[str, int] | None:
    """The option letter starting at ``text[i]``, if it stands alone there (not the start of a
    word, an identifier, a number, a URL or the pronoun "I"), and where it ends."""
    if i >= len(text) or not ("A" <= text[i].upper() <= "Z") or not text[i].isascii():
        return None
    j = i + 1
    for suffix in _SUFFIXES:
        if text.startswith(suffix, j):
            return text[i], j
    k = j
    while k < len(text) and text[k] in "*_`'\"”’)]】":  # closing formatting: "**C**", "(B)"
        k += 1
    nxt = text[k] if k < len(text) else " "
    if nxt.isalnum() or nxt in "@" or (nxt in ".-/:'’" and k + 1 < len(text) and text[k + 1].isalnum()
                                       and not (nxt == "." and text[k + 1].isspace())):
        return None
    if text[i] == "I" and re.match(r"\s+[a-z'’]", text[j:]):
        return None  # "I think ...": the pronoun
    if text[i] == "a" and (w := re.match(r"\s+([a-z]+)", text[j:])) and w.group(1) not in _AFTER_LETTER:
        return None  # "the answer is a whale": the article
    return text[i], j


_AFTER_LETTER = {"because", "since", "as", "for", "given", "due", "which", "and", "or", "is", "seems"}


def _conflict(rest: str, letter: str, opts: Options) -> str | None:
    """Why what follows a chosen letter makes it no answer: another option joined to it ("or
    B", "/B", ", B"), another labelled option, or another option's text stated instead."""
    rest = rest[:_MAX_STATEMENT]
    alt = _ALTERNATIVE.match(rest)
    if alt and alt.group(1).upper() != letter:
        return f"names several options ({letter}, {alt.group(1).upper()}): a hedge is not an answer"
    sentence = rest[: m.start()] if (m := _SENTENCE_END.search(rest)) else rest
    for m in _LABELLED.finditer(sentence):
        other = (m.group(1) or m.group(2)).upper()
        if other != letter and opts.valid(other) and not negated(sentence, m.start()):
            return f"names several options ({letter}, {other}): a hedge is not an answer"
    if _MAYBE.search(sentence) and any(
            t.upper() != letter and opts.valid(t) and not negated(sentence, k)
            for k, t in ((m.start(1), m.group(1)) for m in re.finditer(r"(?<![\w.@/])([A-Z])(?![\w])", sentence))):
        return "names another option as possible too: a hedge is not an answer"
    if opts.texts:
        chosen, _ = _options_in(sentence, opts)
        if chosen and letter not in chosen:
            return f"the letter {letter} and the text of option {chosen[0]} disagree"
        value = re.match(r"[)\]】*_`'\"”’.:\s]*(-?\d[\d.,]*\s*\S*)", sentence)
        own = _norm(opts.texts.get(letter, ""))
        if value and own and not _norm(value.group(1)).startswith(own) and not own.startswith(_norm(value.group(1))):
            return f"the letter {letter} comes with the value {value.group(1).strip()}, not its option's text"
    return None


_LABEL_TEXT = re.compile(r"\s*\(?([A-Za-z])\)?\s*")


def _letter(letter: str, rest: str, opts: Options, how: str, confidence: float = 1.0) -> Reading:
    up = letter.upper()
    # Options whose texts are letters themselves ("(a)", "(b)" in shuffled order): a letter may
    # name an option or an option's text, and the rules cannot tell which (a model may).
    other = [k for k, t in opts.texts.items()
             if (m := _LABEL_TEXT.fullmatch(t)) and m.group(1).upper() == up and k != up]
    if other:
        return Reading(None, f"{up} is a letter and the text of option {other[0]}: ambiguous", CONF_FALLBACK)
    if (why := _conflict(rest, up, opts)) is not None:
        return Reading(None, why)
    if not opts.valid(up):
        return Reading(None, f"names no valid option ({up} is out of range)")
    return Reading(up, how, confidence)


def _words(text: str, opts: Options, where: str) -> Reading:
    """A statement with no letter next to its marker: the option text it states, if any."""
    sentence = text[: m.start()] if (m := _SENTENCE_END.search(text[:_MAX_STATEMENT])) else text[:_MAX_STATEMENT]
    if opts.texts:
        if (exact := _exact_option(sentence, opts)) is not None:
            return Reading(exact, "an option's text")
        chosen, _ = _options_in(sentence, opts)
        if len(chosen) > 1:
            return Reading(None, f"names several options ({', '.join(chosen)}): a hedge is not an answer")
        if len(chosen) == 1:
            return Reading(chosen[0], "an option's text")
    if is_refusal(sentence):
        return Reading(None, "the answer is a refusal")
    if not sentence.strip(" \t\n.:;!?*_`'\"()[]"):
        return Reading(None, f"the {where} is empty")
    return Reading(None, f"the {where} names no option next to its marker")


def read_declaration(text: str, opts: Options) -> Reading:
    """What follows an answer marker: the letter right next to it, else the option text."""
    text = _clean(text)
    skip = _SKIP.match(text)
    i = skip.end() if skip else 0
    tok = _token_at(text, i)
    if tok is not None:
        letter, end = tok
        return _letter(letter, text[end:], opts, "a letter")
    return _words(text[i:], opts, "answer statement")


def read_scoped(content: str, opts: Options) -> Reading:
    """The content of the last container, which must name exactly one option."""
    content = _clean(content)
    if (found := _declarations(content)) is not None:
        return read_declaration(found, opts)
    bare = _bare(content)
    if bare is not None:
        return _letter(bare, "", opts, "a letter")
    if opts.texts and (exact := _exact_option(content, opts)) is not None:
        return Reading(exact, "an option's text")
    lead = _LEAD.match(content)
    if lead:
        letter = lead.group(1) or lead.group(2)
        return _letter(letter, content[lead.end():], opts, "a labelled option")
    letters = {m.group(1) for m in re.finditer(r"(?<![\w.@/])([A-Z])(?![\w])", content)}
    letters |= {m.group(1).upper() for m in re.finditer(r"(?<![\w/])\(([A-Za-z])\)", content)}
    if len(letters) > 1:
        return Reading(None, f"names several options ({', '.join(sorted(letters))}): a hedge is not an answer")
    if len(letters) == 1:
        (letter,) = letters
        k = content.find(letter)
        if negated(content, k):
            return Reading(None, f"option {letter} is negated, not chosen")
        return _letter(letter, content[k + 1:], opts, "a letter")
    return _words(content, opts, "answer")


def _bare(s: str) -> str | None:
    """The letter a text is alone, with its formatting ("b", "**C**", "'B'", "(d)", "C.", "b)")."""
    s = s.strip()
    pairs = {"“": "”", "‘": "’", "(": ")", "[": "]", "【": "】"}
    while len(s) >= 2 and (s[0] == s[-1] and s[0] in "*_`'\"" or pairs.get(s[0]) == s[-1]):
        s = s[1:-1].strip()
    s = re.sub(r"(?<=[A-Za-z])[.:)]$", "", s) if len(s) == 2 else s
    return s if len(s) == 1 and s.isascii() and s.isalpha() else None


# Each declaration pattern holds one of these words, and only the last declaration counts: a
# pattern is tried in a window around its words' mentions, from the last one back (at most
# _MAX_WINDOWS of them), since trying its many alternatives at every position of a long
# reasoning trace costs half a microsecond a character.
_KEYWORDS = {
    "markers": (("answer", "option", "choice", "choose", "pick", "select", "go with", "opt for", "respuesta",
                 "ponse", "antwort", "resposta", "答", "选", "正解", "답", "옵션"), 40, 40),
    "is_correct": (("correct", "right", "best", "answer"), 60, 12),
    "is_correct_late": (("correct answer", "right answer", "best answer", "correct option", "right option",
                         "best option", "correct choice", "right choice", "best choice"), 130, 16),
}
_MAX_WINDOWS = 8


def _last_match(kind: str, pattern: re.Pattern, text: str, low: str) -> re.Match | None:
    """The last match of ``pattern`` in ``text`` (``low`` is it in lower case)."""
    words, before, after = _KEYWORDS[kind]
    hits: list[tuple[int, int]] = []
    for w in words:
        i, n = low.rfind(w), 0
        while i >= 0 and n < _MAX_WINDOWS:
            hits.append((i, i + len(w)))
            i, n = low.rfind(w, 0, i), n + 1
    for s, e in sorted(hits, reverse=True)[:_MAX_WINDOWS]:
        last = None
        for last in pattern.finditer(text, max(0, s - before), min(len(text), e + after)):  # noqa: B007
            pass
        if last is not None:
            return last
    return None


def _declarations(body: str) -> str | None:
    """The text after the last answer declaration in ``body``, if it has one."""
    low = body.lower()
    last: tuple[int, str] | None = None
    if (m := _last_match("markers", _MARKERS, body, low)) is not None:
        last = (m.start(), body[m.end() : m.end() + _MAX_STATEMENT])
    m = _last_match("is_correct", _IS_CORRECT, body, low)
    if m is not None and (last is None or m.start() > last[0]):
        before = re.split(r"[.!?\n]", body[max(0, m.start() - 120) : m.start()])[-1]
        if re.search(r"(?<![\w.@/])[A-Z]\)?\s*(?:,|\bor\b|\band\b|/)\s*\(?$", before):
            last = (m.start(), "A or B")  # "A, B, C, D is correct": a list, not a choice
        elif is_refusal(before) or negated(body, m.start()) or \
                re.match(r"\s*(?:is|seems|looks|appears)\s+not\b", body[m.end(1):]):
            last = (m.start(), "not " + m.group(1))
        else:
            last = (m.start(), m.group(1) + body[m.end() : m.end() + _MAX_STATEMENT])
    m = _last_match("is_correct_late", _IS_CORRECT_LATE, body, low)
    if m is not None and (last is None or m.end() >= last[0]):  # its own "correct answer" is a marker too
        last = (m.end(), m.group(1) + ".")
    return None if last is None else last[1]


_BOX_JOIN = re.compile(r"(?:\s|[,;$]|\\quad|\\qquad|\\[,;]|\band\b|\bor\b|\bthen\b)*")


def _container(body: str) -> tuple[int, str | None, str] | None:
    """The last container as ``(position, content, why malformed)``; content None when the
    markup is malformed (the reason says how). None where the response has no container."""
    tag: tuple[int, str | None, str] | None = None
    depth, open_at, malformed = 0, -1, ""
    for m in _TAG.finditer(body):
        if m.group(1):  # </answer>
            if depth == 0:
                malformed = "a closing </answer> without its opening tag"
            else:
                tag = (open_at, body[open_at:m.start()], "")
            depth = 0
        else:
            if depth:
                malformed = "nested <answer> tags"
            depth, open_at = 1, m.end()
    if depth:  # the last tag is unclosed: what follows it, unless it is other markup
        rest = body[open_at:]
        tag = (open_at, None, "an <answer> tag closed by other markup") if _MARKUP.search(rest) else (open_at, rest, "")
    if malformed:
        return (len(body), None, malformed)
    boxes = boxed_spans(body)
    box: tuple[int, str | None, str] | None = None
    last_open = body.rfind("\\boxed")
    if boxes:
        run = [boxes[-1]]
        for prev in reversed(boxes[:-1]):
            if not _BOX_JOIN.fullmatch(body[prev[1] : run[0][0]]):
                break
            run.insert(0, prev)
        if any("\\boxed" in c or "\\fbox" in c for _, _, c in run):
            box = (run[0][0], None, "a box inside a box")
        else:
            # an empty box in the run leaves the run with no answer, whatever the others say
            box = (run[0][0], "" if any(not c.strip() for _, _, c in run) else ", ".join(c for _, _, c in run), "")
    if last_open >= 0 and (not boxes or last_open >= boxes[-1][1]):  # opened after the last closed box
        box = (last_open, None, "a box that is never closed")
    found = [c for c in (tag, box) if c is not None]
    return max(found, key=lambda c: c[0]) if found else None


def _implicit(body: str, opts: Options) -> Reading:
    """No container and no declaration: the evidence the response's own layout gives."""
    head = _clean(body[:200])  # where a leading label stands
    text = _clean(body if len(body) <= 4000 else body[-4000:])
    if opts.texts and (exact := _exact_option(text, opts)) is not None:
        return Reading(exact, "the response is an option's text")
    bare = _bare(re.sub(r"^\s*(?:option|choice)\s+", "", text, flags=re.IGNORECASE))
    if bare is not None:  # the whole response is the letter: as sure as a statement
        return _letter(bare, "", opts, "the response is a letter")
    end = _norm(text[-300:])
    for letter, t in opts.texts.items():  # "C (R, S, T)": a letter and its option's text
        nt = _norm(t)
        k = len(end) - len(nt)
        if nt and k > 0 and end.endswith(nt) and (b := _bare(end[:k].strip(" .:-—"))) is not None:
            return _letter(b, "", opts, "a letter and its option's text") if b.upper() == letter else \
                Reading(None, f"the letter {b.upper()} and the text of option {letter} disagree")
    masked, raw = text, text  # letters are looked for outside the options' texts ("Solution A")
    for t in sorted(opts.texts.values(), key=len, reverse=True):
        if len(t) > 1 and not _LABEL_TEXT.fullmatch(t):
            masked = masked.replace(t, " ")
    text = masked
    tail = text[-2000:]
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    listed = {(m.group(1) or m.group(2)).upper() for m in _LIST_LINE.finditer(tail)}
    if len(listed) >= 3:
        return Reading(None, "the options listed back are not an answer")
    last = lines[-1] if lines else ""
    pieces = [p for p in re.split(r"(?<=[.!?])\s+", last.strip()) if p.strip()]
    final = pieces[-1] if pieces else last
    if (j := _JOINED.search(final)) and j.group(1) != j.group(2):
        return Reading(None, f"names several options ({j.group(1)}, {j.group(2)}): a hedge is not an answer")
    refusal_options = [c for c in opts.texts.values() if is_refusal(c)]
    if is_refusal(final) and not any(_norm(c) in _norm(final) for c in refusal_options):
        return Reading(None, "the response declines to answer")
    seen: dict[str, str] = {}  # letter -> the text after it, for conflicts
    for ln in lines:
        if (b := _bare(ln)) is not None:
            seen.setdefault(b.upper(), "")
    for m in _LIST_LINE.finditer(tail):
        letter = (m.group(1) or m.group(2))
        if letter in "aI" and m.group(1) and not re.match(r"\s*\(?[aI][.)]", tail[m.start():]):
            continue
        seen.setdefault(letter.upper(), tail[m.end() - 1 :].split("\n", 1)[0])
    if (lead := _LEAD.match(head)) is not None:
        letter = lead.group(1) or lead.group(2)
        seen.setdefault(letter.upper(), head[lead.end():].split("\n", 1)[0])
    if (reason := _LEAD_REASON.match(head)) is not None:
        seen.setdefault(reason.group(1).upper(), "")
    for m in re.finditer(r"(?<![\w/])\(([A-Za-z])\)", tail):
        if not negated(tail, m.start()):
            seen.setdefault(m.group(1).upper(), tail[m.end():].split("\n", 1)[0])
    if (trail := _TRAILING.search(final)) is not None:
        seen.setdefault((trail.group(1) or trail.group(2)).upper(), "")
    if (copula := _IS_LETTER.search(final)) is not None:  # "So the most likely count is C."
        seen.setdefault(copula.group(1), "")
    if len(seen) > 1:
        return Reading(None, f"names several options ({', '.join(sorted(seen))}): a hedge is not an answer")
    if len(seen) == 1:
        ((letter, rest),) = seen.items()
        return _letter(letter, rest, opts, "a letter the response ends or starts with", CONF_FALLBACK)
    if opts.texts:
        raw_lines = [ln for ln in raw[-2000:].splitlines() if ln.strip()]
        pieces = [p for p in re.split(r"(?<=[.!?])\s+", raw_lines[-1].strip()) if p.strip()] if raw_lines else []
        final = pieces[-1] if pieces else ""
        after = re.search(r"[,:—]\s*([^,:—]+?)\s*[.!]?\s*$", final)
        exact = _exact_option(final, opts) or (after and _exact_option(after.group(1), opts))
        if exact is not None:
            return Reading(exact, "an option's text ending the response", CONF_FALLBACK)
        chosen, _ = _options_in(final.rsplit("=", 1)[-1], opts)  # "4 + 8 + 4 = 16": the result, not the terms
        if len(chosen) == 1:
            return Reading(chosen[0], "the one option the final sentence names", CONF_FALLBACK)
    # Prose the rules cannot read: unsure, so that a hybrid profile's model reads it.
    return Reading(None, "the response states no answer the rules can read", CONF_FALLBACK)


def answer_part(response: str) -> str:
    think_end = response.lower().rfind("</think>")
    return before_next_turn(response[think_end + len("</think>"):] if think_end >= 0 else response)


def read_choice(response: str, opts: Options | list[str] | None = None) -> Reading:
    """The option a response answers (the module docstring's rules, in order)."""
    if not isinstance(opts, Options):
        opts = options_for(opts)
    body = answer_part(unify(response))
    if not body.strip():
        return Reading(None, "the response states no answer")
    if degenerate(body):
        return Reading(None, "a degenerate, repetitive response")
    container = _container(body)
    if container is not None:
        _, content, why = container
        if content is None:
            return Reading(None, f"malformed answer markup ({why}): no answer")
        return read_scoped(content, opts)
    found = _declarations(body)
    if found is not None:
        return read_declaration(found, opts)
    return _implicit(body, opts)


def reference_letter(reference: str, opts: Options) -> str | None:
    """The gold option's letter, from a letter ('B', '(B)') or from the option text."""
    ref = reference.strip()
    m = re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]\.]?", ref)
    if m and opts.valid(m.group(1)):
        return m.group(1).upper()
    norm = normalize_text(ref)
    for letter, c in opts.texts.items():
        if normalize_text(c) == norm or _norm(c) == _norm(ref):
            return letter
    return None


def choice_match(response: str, references: list[str], *, choices: list[str] | None = None,
                 prompt: str | None = None, **_: object) -> Check:
    if choices is not None and len(choices) > len(LETTERS):
        return Check(0.0, "error", 0.0, None, (
            "bad_choices", f"{len(choices)} options: a choice is a letter, so at most {len(LETTERS)}"))
    hints = tuple(m.group(1).upper() for r in map(unify, references)
                  if (m := re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]\.]?", r.strip())))
    references = [unify(r) for r in references]
    choices = [unify(c) for c in choices] if choices is not None else None
    opts = options_for(choices, prompt, hints)
    golds = {g for r in references if (g := reference_letter(r, opts))}
    if not golds:
        return Check(0.0, "error", 0.0, None, ("bad_reference", f"reference {references!r} names no option"))
    reading = read_choice(response, opts)
    if reading.letter is None:  # sure where the rules see a non-answer (a hedge, a refusal, ...)
        return Check(0.0, "incorrect", reading.confidence, None, ("unparseable", reading.reason))
    return Check.binary(reading.letter in golds, reading.letter, reading.confidence)


VERIFIER = Verifier("choice", choice_match, NoOptions, 9, "multiple choice: the last answer statement, one option",
                    ("harmo.server.rewards.choice", "harmo.server.rewards.hedges", "harmo.server.rewards.text",
                     *EXTRACT))
