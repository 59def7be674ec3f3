"""Sentence splitting for long text (pure Python, no Festival needed).

The service renders text one sentence at a time, so the vocoder can start on the first
sentence while later ones are still being rendered. Sentences end at ``. ! ? ;`` followed by
whitespace (closing quotes and brackets stay with their sentence) and at line breaks.
A full stop does not end a sentence after a known abbreviation ("Dr.", "e.g."), an initial
("J. Smith"), a dotted acronym ("U.S.") or when the next word starts in lower case. Sentences
longer than ``max_chars`` are cut at the last comma (or colon, dash) that fits, else at the
last space, else hard.
"""

from __future__ import annotations

import re

#: Default longest piece :func:`split_sentences` returns (characters).
MAX_SENTENCE_CHARS = 400

#: Lower-cased abbreviations (with their final dot) after which a full stop is no boundary.
ABBREVIATIONS: frozenset[str] = frozenset(
    (
        "mr.", "mrs.", "ms.", "mx.", "dr.", "prof.", "st.", "jr.", "sr.", "rev.", "hon.", "gen.", "col.",
        "capt.", "lt.", "sgt.", "gov.", "pres.", "sen.", "rep.", "vs.", "etc.", "e.g.", "i.e.", "cf.",
        "approx.", "dept.", "est.", "fig.", "no.", "nos.", "vol.", "vols.", "p.", "pp.", "ch.", "sec.", "ed.",
        "eds.", "inc.", "ltd.", "co.", "corp.", "mt.", "ft.", "ave.", "blvd.", "rd.", "jan.", "feb.", "mar.",
        "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.", "mon.", "tue.", "tues.",
        "wed.", "thu.", "thur.", "thurs.", "fri.", "sat.", "sun.", "a.m.", "p.m.", "u.s.", "u.k."
    )
)

# Sentence-final punctuation, then closing quotes/brackets, then whitespace or the end.
_BOUNDARY = re.compile(r"[.!?;]+[\"')\]]*(?=\s|$)")
_INITIALS = re.compile(r"^(?:[A-Za-z]\.)+$")
_SOFT_BREAKS = ",:;\u2013\u2014-"


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split ``text`` into sentences of at most ``max_chars`` characters.

    Args:
        text: any text; line breaks always end a sentence.
        max_chars: longest piece returned (at least 20).

    Returns:
        the sentences in order, stripped, each holding at least one letter or digit (parts
        that are empty or punctuation only are dropped).
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 20:
        raise ValueError(f"max_chars must be an integer of at least 20, got {max_chars!r}")
    out: list[str] = []
    for line in text.splitlines():
        for sentence in _split_line(line):
            out.extend(_cap_length(sentence, max_chars))
    return [s for s in out if any(c.isalnum() for c in s)]


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(line):
        if _is_boundary(line, m.start(), m.end()):
            pieces.append(line[start : m.end()].strip())
            start = m.end()
    pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def _is_boundary(line: str, punct_start: int, punct_end: int) -> bool:
    punct = line[punct_start:punct_end]
    if not punct.startswith(".") or punct.startswith(".."):
        return True  # ! ? ; and ellipses always end a sentence
    word_start = max(line.rfind(" ", 0, punct_start), line.rfind("\t", 0, punct_start)) + 1
    word = line[word_start : punct_start + 1].lstrip("\"'([")  # the token with its dot
    if word.lower() in ABBREVIATIONS or _INITIALS.match(word):
        return False
    following = line[punct_end:].lstrip()
    return not (following and following[0].islower())


def _cap_length(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = max(window.rfind(c) for c in _SOFT_BREAKS)
        if cut >= max_chars // 4 and cut < max_chars:
            cut += 1  # keep the comma with the first piece
        else:
            cut = window.rfind(" ")
            if cut < max_chars // 4:
                cut = max_chars  # one long word: hard cut
        head, rest = rest[:cut].strip(), rest[cut:].strip()
        if head:
            pieces.append(head)
    if rest:
        pieces.append(rest)
    return pieces
