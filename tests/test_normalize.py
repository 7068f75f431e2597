from hypothesis import given, settings
from hypothesis import strategies as st

from decontam.normalize import normalize, normalize_batch, token_offsets, tokenize

SENTENCE = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning."


def test_folds_case_punctuation_and_whitespace():
    assert normalize("Janet’s  DUCKS\nlay,\t16 eggs!") == "janet s ducks lay 16 eggs"


def test_disguises_normalize_to_the_same_text():
    plain = normalize(SENTENCE)
    disguised = [
        SENTENCE.upper(),
        SENTENCE.replace("'", "\u2019"),
        SENTENCE.replace(" ", "\u00a0"),
        "\u200b".join(SENTENCE[i : i + 3] for i in range(0, len(SENTENCE), 3)),
        "\n".join(" ".join(SENTENCE.split()[i : i + 8]) for i in range(0, len(SENTENCE.split()), 8)),
        SENTENCE.replace("16", "１６"),
        SENTENCE.replace("per", "pe\u00adr"),
        f"<|im_start|>user\n{SENTENCE}<|im_end|>",
        f"[INST] {SENTENCE} [/INST]",
        f"\n\nHuman: {SENTENCE}\n\nAssistant:",
        f"### Instruction:\n{SENTENCE}",
    ]
    assert [normalize(d) for d in disguised] == [plain] * len(disguised)


def test_multiple_choice_labels_are_dropped():
    assert normalize("A. Paris\nB) London\n(C) Rome\nd: Oslo") == "paris london rome oslo"
    assert normalize("Options: (a) Paris (b) London") == "options paris london"


def test_cjk_is_tokenized_by_character():
    assert tokenize("我们如何在日常生活中减少用水？") == list("我们如何在日常生活中减少用水")
    assert tokenize("GPT-4 是一个模型") == ["gpt", "4", "是", "一", "个", "模", "型"]


def test_html_entities_of_punctuation_and_html_tags_read_as_the_text_they_show():
    """Web text keeps them (Bing snippets of pages holding ARC and MMLU items: "The ocean&#39;s surface",
    "<b>Water</b> <b>in the solid</b> <b>phase</b>"); each would put a token between two words."""
    shown = "The ocean's surface is \"varied\" – salt & water… in the solid phase"
    escaped = ("The ocean&#39;s surface is &quot;varied&quot; &ndash; salt &amp; water&#8230; in the "
               "<b>solid</b> <span class=\"hl\">phase</span>")
    assert tokenize(escaped) == tokenize(shown)
    assert tokenize("caf&eacute; AT&T; a &#039;b&#x27;<br/>c") == ["caf", "eacute", "at", "t", "a", "b", "c"]  # letters stay
    assert tokenize("if a < b and c > d") == ["if", "a", "b", "and", "c", "d"]  # comparisons are not tags


def test_calculator_annotations_are_dropped():
    assert normalize("2/2=<<2/2=1>>1 bolt") == normalize("2/2=1 bolt")


def test_batch_equals_single():
    texts = [SENTENCE, "", "Ünïcödé ＴＥＸＴ", "我们"]
    assert normalize_batch(texts) == [normalize(t) for t in texts]


def test_token_offsets_point_at_the_original_words():
    text = "Question: Janet’s ＤＵＣＫＳ lay 16 eggs."
    tokens = tokenize(text)
    spans = token_offsets(text, tokens)
    assert [text[s:e] for s, e in spans] == ["Question", "Janet", "s", "ＤＵＣＫＳ", "lay", "16", "eggs"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalized_text_has_single_spaces_only(text):
    out = normalize(text)
    assert "  " not in out and out == out.strip()


_ASCII_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=200)
_MARKUP_BITS = st.sampled_from(["<|im_start|>user\n", "\nHuman: ", "### Instruction:\n", "(B) ", "\nA. ", "[INST]", "<<3*4=12>>",
                                "x_y", "Don't", "  \t\n", "ABC def 123", "<s>", "\r\n", "&#39;", "&quot;", "<b>", "</P>",
                                '<a href="x">', "&AMP;", "&#x2019;", "&eacute;"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_ASCII_TEXT, _MARKUP_BITS), max_size=12).map("".join))
def test_ascii_pipeline_gives_the_same_tokens_as_the_full_one(text):
    import polars as pl

    from decontam.normalize import ascii_tokens_expr, tokens_expr

    frame = pl.DataFrame({"text": [text]})
    assert frame.select(ascii_tokens_expr(pl.col("text"))).item().to_list() == frame.select(tokens_expr(pl.col("text"))).item().to_list()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ASCII_TEXT, _MARKUP_BITS, st.text(max_size=20)), max_size=10).map("".join), st.integers(0, 40))
def test_token_offsets_take_the_raw_spans_where_they_are_the_alignment(text, keep):
    """The shortcuts (an ASCII word's token is the word lower-cased; raw words that are the tokens
    need no alignment; a prefix of the tokens places a prefix) give what aligning every raw word's
    own tokens with the text's tokens gives."""
    from decontam.normalize import _RAW_TOKEN, _place, token_offsets_batch, tokenize_batch

    tokens = tokenize(text)
    raw = [(m.start(), m.end(), m.group()) for m in _RAW_TOKEN.finditer(text)]
    words = tokenize_batch([word for _, _, word in raw]) if raw else []
    aligned = _place(tokens, [(tok, start, end) for (start, end, _), toks in zip(raw, words) for tok in toks])
    assert token_offsets_batch([text], [tokens]) == [aligned]
    assert token_offsets_batch([text, text], [tokens[:keep], tokens]) == [aligned[:keep], aligned]


def test_mixed_batches_keep_text_order():
    from decontam.ngrams import ascii_first, tokenize_frame

    texts = ["Plain ASCII one", "Janet’s ＤＵＣＫＳ", "plain two", "naïve café"]
    frame = tokenize_frame(texts)  # ASCII texts after a non-ASCII one take the full pipeline
    assert frame.group_by("text_ix", maintain_order=True).agg("tok")["tok"].to_list() == [tokenize(t) for t in texts]
    order = ascii_first(texts)
    assert order == [0, 2, 1, 3]
    reordered = tokenize_frame([texts[i] for i in order])
    assert reordered.group_by("text_ix", maintain_order=True).agg("tok")["tok"].to_list() == [tokenize(texts[i]) for i in order]
