"""String verifiers: normalised exact match, ANLS (DocVQA/OCR) and VQAv2 soft accuracy."""
from __future__ import annotations

import re
import string

from pydantic import Field
from rapidfuzz.distance import Levenshtein

from .base import EXTRACT, Check, NoOptions, Verifier
from .extract import final_answer
from .hedges import before_next_turn

_ARTICLES_EN = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_text(s: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES_EN.sub(" ", s)
    return " ".join(s.split())


# A miss against a reference of this many words or more may be a paraphrase, not a wrong answer.
PHRASE_WORDS = 4
CONF_PHRASE_MISS = 0.5


def exact_match(response: str, references: list[str], **_: object) -> Check:
    """Normalised exact match. A match is certain; so is a miss against a short answer ("Paris",
    "two dogs"); a miss against a phrase is reported unsure, so that a hybrid profile can hand it
    to a model (``accuracy.min_confidence``)."""
    cand = final_answer(before_next_turn(response))
    pred = normalize_text(cand.text)
    golds = [normalize_text(r) for r in references]
    if pred in golds:
        return Check.binary(True, cand.text)
    if golds and set(golds) <= {"yes", "no"}:
        return _yes_no(cand.text, golds)
    phrase = any(len(g.split()) >= PHRASE_WORDS for g in golds)
    return Check.binary(False, cand.text, CONF_PHRASE_MISS if phrase else 1.0)


_YES_NO = re.compile(r"^\W*(yes|no)\b|\banswer\s*(?:is|:)\s*\W*(yes|no)\b|\b(yes|no)\W*$", re.IGNORECASE)


def _yes_no(text: str, golds: list[str]) -> Check:
    """A yes/no question answered in words: "Yes, because ...", "... the answer is no", "No.".
    A sentence that says neither ("Bubblegum is not the roughest") is not read as one: the rule
    cannot tell, so it is unsure and a hybrid profile hands it to its model, never a guess."""
    last = re.split(r"(?<=[.!?])\s+|\n+", text.strip())[-1] if text.strip() else ""
    said = {w.lower() for m in _YES_NO.finditer(last) for w in m.groups() if w}
    said |= {w.lower() for m in _YES_NO.finditer(text.strip()[:200]) for w in m.groups()[:1] if w}
    if len(said) != 1 or re.search(r"\b(?:yes\s*(?:or|/)\s*no|no\s*(?:or|/)\s*yes)\b", text, re.IGNORECASE):
        return Check.unparseable("a yes/no question answered without a clear yes or no", CONF_PHRASE_MISS)
    (word,) = said
    return Check.binary(word in golds, word)


def anls(response: str, references: list[str], *, threshold: float = 0.5, **_: object) -> Check:
    """Average Normalized Levenshtein Similarity for one item: ``max_g (1 - NL(pred, g))``,
    0 where the normalised distance reaches ``threshold`` (DocVQA's tau = 0.5)."""
    cand = final_answer(response)
    pred = " ".join(cand.text.strip().lower().split())
    best = 0.0
    for ref in references:
        gold = " ".join(ref.strip().lower().split())
        denom = max(len(pred), len(gold))
        if denom and abs(len(pred) - len(gold)) / denom >= threshold:
            continue  # the distance is at least the length difference: past tau without computing it
        nl = Levenshtein.distance(pred, gold) / denom if denom else 0.0
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return Check.graded(best, cand.text)


# --- VQAv2 answer normalisation (the official evaluation script's rules) ---
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_VQA_ARTICLES = {"a", "an", "the"}
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_VQA_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def _vqa_punctuation(text: str) -> str:
    out = text
    for p in _VQA_PUNCT:
        if (p + " " in text or " " + p in text) or (re.search(_COMMA_STRIP, text) is not None):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)


def _vqa_digits_articles(text: str) -> str:
    words = []
    for w in text.lower().split():
        w = _NUMBER_WORDS.get(w, w)
        if w not in _VQA_ARTICLES:
            words.append(_CONTRACTIONS.get(w, w))
    return " ".join(words)


def normalize_vqa(answer: str) -> str:
    """VQAv2 answer normalisation: punctuation, number words, articles, contractions."""
    a = answer.replace("\n", " ").replace("\t", " ").strip()
    return _vqa_digits_articles(_vqa_punctuation(a))


def vqa_accuracy(response: str, references: list[str], **_: object) -> Check:
    """VQAv2 soft accuracy: ``min(#matching humans / 3, 1)`` averaged over the leave-one-out
    subsets of the reference answers. With fewer than 4 references the threshold shrinks to
    ``len(refs) - 1`` (a single reference means exact match) so a unanimous match still scores 1."""
    cand = final_answer(response)
    pred = normalize_vqa(cand.text)
    golds = [normalize_vqa(r) for r in references]
    if len(golds) == 1:
        return Check.binary(pred == golds[0], cand.text)
    need = min(3, len(golds) - 1)
    accs = []
    for i in range(len(golds)):
        others = golds[:i] + golds[i + 1 :]
        accs.append(min(sum(g == pred for g in others) / need, 1.0))
    return Check.graded(sum(accs) / len(accs), cand.text)


class OcrOptions(NoOptions):
    threshold: float = Field(0.5, gt=0, le=1, description="ANLS: normalised distance at which the score drops to 0")


_TEXT_SOURCES = ("harmo.server.rewards.text", "harmo.server.rewards.hedges", *EXTRACT)
OCR = Verifier("ocr", anls, OcrOptions, 5, "ANLS with threshold, max over references (DocVQA)", _TEXT_SOURCES,
               ("rapidfuzz",))
VQA = Verifier("vqa", vqa_accuracy, NoOptions, 5, "VQAv2 soft accuracy with the VQA answer normalisation",
               _TEXT_SOURCES)
TEXT = Verifier("text", exact_match, NoOptions, 5, "normalised exact match (a miss against a phrase is unsure)",
                _TEXT_SOURCES)
