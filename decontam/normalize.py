"""Text normalization and tokenization, shared by index build and scan.

Everything runs as polars string expressions over a whole batch (Rust regex, all cores), because a
per-record Python loop costs 5-10x (see ../shared/MEASUREMENTS.md). ``normalize(text)`` for one
string goes through the very same expressions, so index and scan can never disagree. A scan may cut
the folded text of steps 1-5 into tokens in compiled code instead (``compiled_tokenizer``), with a
character table that ``char_classes`` fills from the token regex of step 6 itself.

Steps, in order (the version string below is stored in every index manifest):

1. Zero-width characters and soft hyphens are removed.
2. GSM8K-style calculator annotations (``<<48/2=24>>``) are removed: some copies of a solution carry
   them and others do not.
3. Chat-template tokens (``<|im_start|>user``, ``[INST]``, ``<</SYS>>``, ``<s>``) and role tags at
   the start of a line (``Human:``, ``Assistant:``, ``### Instruction:``) are removed.
4. Multiple-choice labels (``(A)``, ``A.`` or ``A)`` at the start of a line, ``(b)`` anywhere) are
   removed, so "A. Paris" and "(a) Paris" and a plain choice list all read "paris"; so are common
   HTML tags (``<b>``, ``</p>``, ``<a href=...>``) and the HTML entities of punctuation and spaces
   (``&#39;``, ``&#x27;``, ``&quot;``, ``&amp;``, ``&nbsp;``, ``&rsquo;``...): web text keeps them, and
   each one would put a token ("b", "39", "quot") between two words of a test item. An entity of a
   letter (``&eacute;``) is left as it is.
5. Lower case and Unicode NFKC (fullwidth letters and digits, ligatures, NBSP and other
   compatibility forms fold), plus ß -> ss, the one common case-folding difference.
6. Tokens are runs of letters, digits and combining marks; everything else (punctuation, curly vs
   straight quotes, markdown, every kind of line wrapping) only separates tokens. Each CJK character
   is a token of its own (Chinese has no spaces between words).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import polars as pl

NORMALIZATION_VERSION = "nfkc-lower-punct-v3"

_ZERO_WIDTH = r"[\x{00AD}\x{200B}-\x{200F}\x{2060}-\x{2064}\x{FEFF}]"
# HTML entities of characters that only separate tokens (ASCII punctuation and space, NBSP, dashes,
# curly quotes, bullets, ellipsis), by number or name: as a space they give the tokens their decoded
# text gives.
_SEPARATOR_CODES = sorted({c for c in range(0x20, 0x7F) if not chr(c).isalnum()}
                          | {0xA0, 0xAB, 0xB7, 0xBB, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2026})
_SEPARATOR_ENTITY = (r"&(?:#0*(?:" + "|".join(map(str, _SEPARATOR_CODES)) + r")|#[xX]0*(?i:" + "|".join(f"{c:x}" for c in _SEPARATOR_CODES)
                     + r")|(?i:amp|lt|gt|quot|apos|nbsp|ndash|mdash|lsquo|rsquo|ldquo|rdquo|laquo|raquo|hellip|bull|middot));")
_HTML_TAG = (r"(?i:</?(?:a|abbr|b|big|blockquote|br|center|cite|code|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|li|mark|ol|p|pre"
             r"|q|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul)(?:\s[^<>]{0,200})?/?>)")
# Everything that becomes a space before tokenization, as one regex so the text is scanned once:
# calculator annotations, chat-template tokens, role tags at line start, multiple-choice labels,
# HTML tags and entities.
_MARKUP = "|".join([
    r"<<[^<>\n]{1,80}>>",
    r"(?i:<\|im_start\|>[ \t]*(?:system|user|assistant)?)",
    r"(?i:<\|start_header_id\|>[^<]{0,20}<\|end_header_id\|>)",
    r"(?i:<start_of_turn>[ \t]*(?:user|model)?|<end_of_turn>)",
    r"(?i:<\|[a-z_]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>)",
    r"(?im:^[ \t]*(?:human|assistant|user|system|gpt|bot)[ \t]*:)",
    r"(?im:^[ \t]*#{1,4}[ \t]*(?:instruction|input|response|output)[ \t]*:?)",
    r"(?m:^[ \t]*(?:\(?[A-Ja-j]\)|[A-Ja-j][.:])[ \t]+)",
    r"\([A-Ja-j]\)",
    _HTML_TAG,
    _SEPARATOR_ENTITY,
])
_CJK_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
# A token: one CJK character, or a run of letters, digits and combining marks.
_TOKEN = rf"[{_CJK_CLASS}]|[[\p{{L}}\p{{N}}\p{{M}}]--[{_CJK_CLASS}]]+"


def tokens_expr(expr: pl.Expr) -> pl.Expr:
    """The normalization pipeline as one polars expression: a string column -> list of tokens."""
    return folded_expr(expr).str.extract_all(_TOKEN)


def folded_expr(expr: pl.Expr) -> pl.Expr:
    """Steps 1-5: the text whose tokens (step 6) are the matches of the token regex."""
    return sharp_s_expr(nfkc_expr(cased_expr(expr)))


def cased_expr(expr: pl.Expr) -> pl.Expr:
    """Steps 1-4 and the first lower-casing (before NFKC, so that NFKC sees fewer distinct characters)."""
    return expr.fill_null("").str.replace_all(_ZERO_WIDTH, "").str.replace_all(_MARKUP, " ").str.to_lowercase()


def nfkc_expr(expr: pl.Expr) -> pl.Expr:
    """Step 5's NFKC, lower-cased again (NFKC can produce capitals: "㎒" -> "MHz"). It changes no text
    without a character that ``nfkc_unsafe_chars`` marks."""
    return expr.str.normalize("NFKC").str.to_lowercase()


def sharp_s_expr(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all("ß", "ss", literal=True)


def ascii_tokens_expr(expr: pl.Expr) -> pl.Expr:
    """``tokens_expr`` for text that is all ASCII, where it gives the same tokens with fewer steps:
    there are no zero-width characters, NFKC changes nothing, and tokens are runs of [a-z0-9]."""
    return ascii_folded_expr(expr).str.extract_all("[a-z0-9]+")


def ascii_folded_expr(expr: pl.Expr) -> pl.Expr:
    """``folded_expr`` for text that is all ASCII."""
    return expr.fill_null("").str.replace_all(_MARKUP, " ").str.to_lowercase()


SEPARATOR, WORD, SINGLE = 0, 1, 2


@functools.cache
def char_classes() -> np.ndarray:
    """[0x110000] uint8: the class of every code point under the token rule of step 6, computed with
    the token regex itself: SINGLE (a token of its own: CJK), WORD (part of a run), or SEPARATOR.
    For the compiled tokenizer (~70 ms, once per process)."""
    points, chars = _code_points(0x110000)
    single = chars.str.contains(f"^[{_CJK_CLASS}]$").to_numpy()
    word = chars.str.contains(f"^(?:{_TOKEN})$").to_numpy() & ~single
    classes = np.full(0x110000, SEPARATOR, dtype=np.uint8)
    classes[points[word]] = WORD
    classes[points[single]] = SINGLE
    return classes


def _code_points(end: int) -> tuple[np.ndarray, pl.Series]:
    """Every code point below ``end`` but the surrogates, and each as a one-character string."""
    points = np.concatenate([np.arange(0xD800), np.arange(0xE000, end)]).astype("<u4")
    return points, pl.Series([points.tobytes().decode("utf-32-le")]).str.split("").explode()


_HANGUL_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))


@functools.cache
def nfkc_unsafe_chars() -> np.ndarray:
    """[0x110000] bool: the characters that can make ``nfkc_expr`` change a lower-cased text; a text
    with none of them is left as it is, so NFKC can be skipped for it (most non-English text: accents,
    curly quotes and CJK are all stable). Marked: every character that NFKC changes on its own (NBSP,
    fullwidth forms, ligatures; computed with polars' own NFKC), every combining mark (it may compose
    with its neighbour or be reordered), and the Hangul jamo (they compose into syllables) -- the
    characters that Unicode's NFC quick check answers "maybe" for are marks and jamo. Outside the
    Basic Multilingual Plane (emoji, mathematical letters, rare CJK) everything is marked, which
    keeps this table quick to fill (~20 ms) and costs only the texts that hold such characters."""
    points, chars = _code_points(0x10000)
    unsafe = np.ones(0x110000, dtype=bool)
    unsafe[points] = False
    changed = (chars.str.normalize("NFKC") != chars) | chars.str.contains(r"^\p{M}$")
    unsafe[points[changed.to_numpy()]] = True
    for low, high in _HANGUL_JAMO:
        unsafe[low : high + 1] = True
    return unsafe


def normalized_expr(expr: pl.Expr) -> pl.Expr:
    """Normalized text: the tokens joined by single spaces."""
    return tokens_expr(expr).list.join(" ")


def chunked_frame(texts: Sequence[str]) -> pl.DataFrame:
    """A one-column frame in several chunks: polars runs string expressions chunk-parallel."""
    texts = list(texts)
    n_chunks = max(1, min(pl.thread_pool_size(), len(texts) // 2048))
    size = -(-len(texts) // n_chunks) if texts else 0
    frames = [pl.DataFrame({"text": texts[i : i + size]}, schema={"text": pl.String}) for i in range(0, len(texts), size or 1)]
    return pl.concat(frames, rechunk=False) if frames else pl.DataFrame(schema={"text": pl.String})


def normalize_batch(texts: Sequence[str]) -> list[str]:
    """Normalize many strings at once."""
    return chunked_frame(texts).select(normalized_expr(pl.col("text"))).to_series().to_list()


def normalize(text: str) -> str:
    """Normalize one string: ``normalize("Janet’s  DUCKS\\nlay")`` -> ``"janet s ducks lay"``."""
    return normalize_batch([text])[0]


def tokenize_batch(texts: Sequence[str]) -> list[list[str]]:
    """Tokens of many strings: words of normalized text, one token per CJK character."""
    return chunked_frame(texts).select(tokens_expr(pl.col("text"))).to_series().to_list()


def tokenize(text: str) -> list[str]:
    return tokenize_batch([text])[0]


# A raw token of the original text: one CJK character, or a run of letters/digits (with marks).
_RAW_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


def token_offsets(text: str, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character span in ``text`` of each of its normalized ``tokens`` (as ``tokenize(text)`` gives them).

    Normalization drops and folds characters, so the mapping is recovered by walking the raw words of
    the original text alongside the tokens; a token that cannot be placed gets its predecessor's span.
    Used only to show evidence for findings, never for matching.
    """
    return token_offsets_batch([text], [tokens])[0]


def token_offsets_batch(texts: Sequence[str], token_lists: Sequence[Sequence[str]]) -> list[list[tuple[int, int]]]:
    """``token_offsets`` of many texts (of each, its first ``len(tokens)`` tokens: pass fewer to place
    fewer). An ASCII raw word's token is the word lower-cased; the other raw words are normalized in
    one call. Where the raw words' tokens are the text's tokens, their spans are the answer;
    elsewhere (role markers and choice labels are not tokens) ``_place`` aligns the two."""
    raws = [[(m.start(), m.end(), m.group()) for m in _RAW_TOKEN.finditer(text)] for text in texts]
    others = sorted({word for raw in raws for _, _, word in raw if not word.isascii()})
    folded = dict(zip(others, tokenize_batch(others))) if others else {}
    out = []
    for raw, tokens in zip(raws, token_lists):
        placed = [(tok, start, end) for start, end, word in raw for tok in ((word.lower(),) if word.isascii() else folded[word])]
        if [tok for tok, _, _ in placed[:len(tokens)]] == list(tokens):
            out.append([(start, end) for _, start, end in placed[:len(tokens)]])
        else:
            out.append(_place(tokens, placed))
    return out


def _place(tokens: Sequence[str], placed: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    j = 0
    for tok in tokens:
        k = j
        while k < len(placed) and k < j + 64 and placed[k][0] != tok:
            k += 1
        if k < len(placed) and placed[k][0] == tok:
            out.append((placed[k][1], placed[k][2]))
            j = k + 1
        else:
            out.append(out[-1] if out else (0, 0))
    return out
