"""One reading of Unicode for every verifier, answers and references alike.

A policy (or a dataset) may write "Ｂ", "１５", "3" with a combining accent, a zero-width space
inside "42", or a non-breaking space after "Answer:". Each verifier used to see these
differently: paid in one task, unparseable in another. ``unify`` is applied once, before any
verifier reads an item: NFKC (fullwidth forms, compatibility spaces and punctuation), with
superscript and subscript digits kept as exponents and indices ("x²" is "x^2", not "x2"),
format characters (zero-width spaces and joiners, bidi marks, soft hyphens) removed, and
combining marks removed where they sit on no letter ("3́" is "3"; "é" stays). Linear in the
text; ASCII text is returned as it is."""
from __future__ import annotations

import unicodedata

_SCRIPTS = str.maketrans({
    **{c: f"^{d}" for c, d in zip("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")}, "⁺": "^+", "⁻": "^-",
    **{c: f"_{d}" for c, d in zip("₀₁₂₃₄₅₆₇₈₉", "0123456789")},
    "⁄": "/",  # the fraction slash NFKC gives "½"
})


def unify(text: str) -> str:
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text.translate(_SCRIPTS)).translate(_SCRIPTS)
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if cat == "Mn" and not (out and out[-1].isalpha()):
            continue
        out.append(ch)
    return "".join(out)
