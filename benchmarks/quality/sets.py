"""Labelled examples, made reproducibly from the shared data."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..common import long_passages, mmlu_rewrites, read_jsonl

SEED = 13


@dataclass(frozen=True)
class Example:
    cls: str  # contamination class, or a negative set's name
    positive: bool
    record: dict  # the corpus row
    benchmark: str | None = None  # the benchmark a positive comes from
    item_id: str | None = None
    extra: dict = field(default_factory=dict, compare=False)


# Classes reported apart: a user may or may not count them as contamination.
OPTIONAL_CLASSES = {"numeric perturbation"}


def _wrap(text: str, words: int = 7) -> str:
    tokens = text.split()
    return "\n".join(" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words))


def build_sets(per_class: int = 100, seed: int = SEED) -> list[Example]:
    rng = random.Random(seed)
    gsm = read_jsonl("benchmarks/gsm8k/test.jsonl.gz")
    mmlu = read_jsonl("benchmarks/mmlu/test.jsonl.gz")
    humaneval = read_jsonl("benchmarks/humaneval/HumanEval.jsonl.gz")
    mt = read_jsonl("benchmarks/mt_bench/question.jsonl.gz")
    tqa = read_jsonl("benchmarks/truthfulqa/TruthfulQA.jsonl.gz")
    arc = read_jsonl("benchmarks/arc/ARC-Challenge-Test.jsonl.gz")
    out: list[Example] = []

    def mmlu_text(m):
        return f"{m['question']}\nA. {m['choice0']}\nB. {m['choice1']}\nC. {m['choice2']}\nD. {m['choice3']}"

    pool = ([("gsm8k", g["id"], g["question"]) for g in rng.sample(gsm, per_class // 2)]
            + [("mmlu", m["id"], mmlu_text(m)) for m in rng.sample(mmlu, per_class // 2)])
    out += [Example("verbatim", True, {"prompt": t, "chosen": "Sure."}, b, i) for b, i, t in pool]
    styles = [
        lambda t: f"<|im_start|>user\n{t}<|im_end|>\n<|im_start|>assistant\n",
        _wrap, str.upper, lambda t: t.replace("'", "\u2019").replace(" ", "\u00a0"),
        lambda t: f"**Question:** {t}\n\n---", lambda t: t.replace("\nA. ", "\n(a) ").replace("\nB. ", "\n(b) "),
    ]
    out += [Example("formatting", True, {"messages": [{"role": "user", "content": styles[k % len(styles)](t)}]}, b, i)
            for k, (b, i, t) in enumerate(pool)]
    out += [Example("inside a longer prompt", True, {"prompt": f"Here is something from my notes that I could not solve. {t} "
                                                                "Please explain it slowly and check the arithmetic twice."}, b, i)
            for b, i, t in pool]
    short = [(x["id"], x["Question"], "truthfulqa") for x in tqa if len(x["Question"].split()) < 13]
    short += [(x["id"], x["question"]["stem"], "arc") for x in arc if len(x["question"]["stem"].split()) < 13]
    out += [Example("short items (< 13 words)", True, {"prompt": t}, b, i) for i, t, b in rng.sample(short, min(per_class, len(short)))]
    answers = [("gsm8k", g["id"], g["answer"]) for g in rng.sample(gsm, per_class // 2)]
    answers += [("humaneval", h["id"], h["prompt"] + h["canonical_solution"]) for h in rng.sample(humaneval, per_class // 2)]
    out += [Example("answer leaked into chosen", True, {"prompt": "Please help me with this.", "chosen": t, "rejected": "I do not know."}, b, i)
            for b, i, t in answers]
    out += [Example("multi-turn", True, {"messages": [{"role": "user", "content": q["turns"][0]}, {"role": "assistant", "content": "Done."},
                                                      {"role": "user", "content": q["turns"][1]}]}, "mt_bench", str(q["id"])) for q in mt]
    bench = read_jsonl("contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz")
    rephrased = read_jsonl("contamination/llm_decontaminator/gsm8k_rephrased_pairs.jsonl.gz")
    mmlu_pairs = mmlu_rewrites()
    para = [("gsm8k", x["gsm8k_test_id"], x["rewritten_question_1"]) for x in rng.sample(bench, per_class // 3)]
    para += [("gsm8k", x["id"], x["rephrased_text"]) for x in rng.sample(rephrased, per_class // 3)]
    para += [("mmlu", p["id"], p["rephrased_english_question"]) for p in rng.sample(mmlu_pairs, per_class // 3)]  # MMLU's own ids
    out += [Example("paraphrase (LLM rewrites)", True, {"prompt": t}, b, i) for b, i, t in para]
    trans = [("mmlu", p["id"], p["chinese_question"]) for p in rng.sample(mmlu_pairs, per_class // 2)]
    he_pairs = read_jsonl("contamination/llm_decontaminator/humaneval_rephrased_pairs.jsonl.gz")
    trans += [("humaneval", h["id"], h[rng.choice(["multi_c", "multi_javascript", "multi_rust", "multi_go", "multi_java"])])
              for h in rng.sample(he_pairs, per_class // 2)]
    out += [Example("translation", True, {"prompt": t}, b, i) for b, i, t in trans]
    out += [Example("code rephrasing", True, {"output": h["rephrased_python"]}, "humaneval", h["id"]) for h in rng.sample(he_pairs, per_class)]
    hard = read_jsonl("contamination/gsm_hard/gsm8k_vs_gsmhard.jsonl.gz")
    backward = read_jsonl("contamination/metamath_gsm8k_backward/GSM8K_Backward.jsonl.gz")
    out += [Example("numeric perturbation", True, {"prompt": x["gsmhard_question"]}, "gsm8k", x["id"]) for x in rng.sample(hard, per_class // 2)]
    out += [Example("numeric perturbation", True, {"prompt": x["question"]}, "gsm8k", x["gsm8k_test_id"]) for x in rng.sample(backward, per_class // 2)]
    judged = read_jsonl("contamination/llm_decontaminator/codealpaca_vs_humaneval_llm_judged.jsonl.gz")
    import json as _json

    for row in judged:
        trains = _json.loads(row["train"]) if isinstance(row["train"], str) else row["train"]
        results = _json.loads(row["results"]) if isinstance(row["results"], str) else row["results"]
        for text, verdict in zip(trains, results):
            if verdict:
                out.append(Example("real overlaps (Code Alpaca vs HumanEval, GPT-4 judged)", True, {"output": text}, "humaneval", row["id"]))
    # The same rewrites set apart (a paragraph of their own) between two long T0 passages, as in a
    # few-shot prompt or a page: a separate generator, so that the draws above stay as they were.
    apart = random.Random(seed + 1)
    context = long_passages()
    out += [Example("paraphrase set apart in a long text", True,
                    {"text": f"{apart.choice(context)}\n\n{t}\n\n{apart.choice(context)}"}, b, i) for b, i, t in para]
    negatives = {
        "negative: hh-rlhf": read_jsonl("corpora/hh_rlhf/harmless-base_test.jsonl.gz"),
        "negative: GSM8K train": [{"text": x["text"]} for x in read_jsonl("corpora/skywork/pt_train.jsonl.gz")],
        "negative: GSM8K-style mock": [{"text": x["text"]} for x in read_jsonl("contamination/skywork_mock_gsm8k/mock_gsm8k_test_public.jsonl.gz")],
        "negative: OpenBookQA (ARC-like, not indexed)": [{"prompt": f"{x['question']['stem']}\n" + "\n".join(
            f"{c['label']}. {c['text']}" for c in x["question"]["choices"])} for x in read_jsonl("benchmarks/openbookqa/test.jsonl.gz")],
        "negative: PandaLM": read_jsonl("corpora/pandalm/testset-v1.jsonl.gz"),
    }
    for name, rows in negatives.items():
        out += [Example(name, False, row) for row in rng.sample(rows, min(len(rows), per_class * 3))]
    return out
