"""Benchmark recipes, text-free (private) indexes, and CJK benchmarks."""

import json
import random
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import decontam
from decontam.cli import app
from decontam.errors import IndexFormatError
from decontam.private import export_private
from decontam.registry import RECIPES_DIR, load_recipe, load_recipes, pin
from decontam.testsets import SourceSpec, load_test_set

from .conftest import DATA, INDEX_SOURCES, read_jsonl, write_jsonl

runner = CliRunner()
RECIPES = load_recipes()
REVEALED_COLUMNS = {"benchmark", "subset", "item_id", "part", "kind", "template_id"}
NEEDED = {"rewardbench", "rewardbench2", "judgebench", "rm-bench", "ppe", "rmb", "mt_bench", "alpaca_eval", "arena_hard", "ifeval",
          "mmlu", "mmlu-pro", "gpqa", "gsm8k", "math", "math500", "aime", "humaneval", "mbpp", "livecodebench", "truthfulqa",
          "arc", "hellaswag", "bbh", "drop"}


def test_registry_lists_every_benchmark_the_issue_names():
    assert NEEDED <= set(RECIPES) and len(RECIPES) >= 25
    result = runner.invoke(app, ["benchmarks", "list"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split()[:3] == ["name", "hub", "dataset"]
    assert result.stdout.rstrip().endswith(f"{len(RECIPES)} recipes in {RECIPES_DIR}")
    assert all(json.loads(line)["hf_id"] for line in runner.invoke(app, ["benchmarks", "list", "--json"]).stdout.splitlines())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_maps_its_hub_layout(name, tmp_path):
    datasets = pytest.importorskip("datasets")
    recipe = RECIPES[name]
    assert recipe.example, f"{name} has no example row"
    folder = tmp_path / "ds"
    datasets.Dataset.from_list([recipe.example, recipe.example]).save_to_disk(folder)
    spec = SourceSpec(name, str(folder), field_map=recipe.fields)
    items = load_test_set(spec).items
    assert len(items) == 2
    parts = {p.name: p for p in items[0].parts}
    question_side = [p for p in items[0].parts if p.kind == "item"]
    assert question_side and all(p.text.strip() for p in question_side), parts
    if "answer" in recipe.fields:
        assert any(p.kind == "answer" for p in items[0].parts), parts
    if "id" in recipe.fields:
        assert items[0].item_id == str(_lookup(recipe.example, recipe.fields["id"]))


def _lookup(row, path):
    from decontam.testsets import _lookup as lookup

    return lookup(row, path)


@pytest.mark.parametrize("name", sorted(n for n, r in RECIPES.items() if r.shared_copy))
def test_recipe_with_its_shared_copy(name, tmp_path):
    recipe = RECIPES[name]
    result = runner.invoke(app, ["index", "build", str(tmp_path / "i"), "--benchmark", name,
                                 "--source", f"{name}={DATA / recipe.shared_copy}", "--methods", "ngram"])
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "i/manifest.json").read_text())
    assert manifest["benchmarks"][0]["name"] == name
    assert manifest["benchmarks"][0]["items"] == len(read_jsonl(DATA / recipe.shared_copy))


def test_recipe_goes_to_the_hub_with_config_split_revision(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list([RECIPES["gsm8k"].example])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    recipe_file = tmp_path / "gsm8k.toml"
    shutil.copy(RECIPES["gsm8k"].path, recipe_file)
    recipe_file.write_text(recipe_file.read_text().replace('revision = ""', f'revision = "{"a" * 40}"'))
    recipe = load_recipe(recipe_file)
    assert recipe.pinned
    loaded = load_test_set(recipe.source())
    assert calls == [("openai/gsm8k", "main", "test", "a" * 40)] and loaded.revision == "a" * 40


def test_pin_writes_the_hub_commit(monkeypatch, tmp_path):
    import huggingface_hub

    class Info:
        sha = "0123456789abcdef0123456789abcdef01234567"

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id: Info())
    recipe_file = tmp_path / "mmlu.toml"
    shutil.copy(RECIPES["mmlu"].path, recipe_file)
    assert pin(load_recipe(recipe_file)) == Info.sha
    assert load_recipe(recipe_file).revision == Info.sha


def test_unknown_benchmark_name(tmp_path):
    result = runner.invoke(app, ["index", "build", str(tmp_path / "i"), "--benchmark", "nope"])
    assert result.exit_code == 2 and "no recipe for benchmark 'nope'" in result.stderr


# -- private indexes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_and_private(tmp_path_factory):
    folder = tmp_path_factory.mktemp("private")
    full = decontam.build_index(folder / "full", [f"gsm8k={INDEX_SOURCES['gsm8k']}", f"mmlu={INDEX_SOURCES['mmlu']}"])
    private, salt = export_private(full, folder / "private", keep_salt=False)
    return folder, full, private


def test_private_index_finds_the_same_planted_items(full_and_private, tmp_path):
    folder, full, _ = full_and_private
    gsm = read_jsonl(INDEX_SOURCES["gsm8k"])
    mmlu = read_jsonl(INDEX_SOURCES["mmlu"])
    rng = random.Random(3)
    planted = [("gsm8k", gsm[i]["id"], {"prompt": gsm[i]["question"]}) for i in rng.sample(range(len(gsm)), 15)]
    for i in rng.sample(range(len(mmlu)), 15):
        m = mmlu[i]
        text = f"{m['question']}\nA. {m['choice0']}\nB. {m['choice1']}\nC. {m['choice2']}\nD. {m['choice3']}"
        planted.append(("mmlu", m["id"], {"prompt": text}))
    rows = [row for _, _, row in planted] + [{"text": f"an ordinary sentence number {i} about rivers and hills"} for i in range(10)]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    full_findings = decontam.scan(str(corpus), index=full).findings
    private_findings = decontam.scan(str(corpus), index=decontam.load_index(folder / "private")).findings

    def found(findings):
        return {(r, b, i) for r, b, i in findings.select("row", "benchmark", "item_id").iter_rows()}

    truth = {(row, bench, item_id) for row, (bench, item_id, _) in enumerate(planted)}
    assert truth <= found(full_findings) and truth <= found(private_findings)
    assert not any(r >= len(planted) for r, _, _ in found(private_findings))  # ordinary rows stay clean
    # the exact layer is deterministic: identical findings; MinHash's LSH may differ near its threshold
    key = ["row", "benchmark", "item_id", "item_part", "score"]
    ngram = pl.col("method") == "ngram"
    assert full_findings.filter(ngram).select(key).sort(key).equals(private_findings.filter(ngram).select(key).sort(key))


def test_private_index_holds_no_test_text(full_and_private):
    folder, full, _ = full_and_private
    texts = full.parts["text"].to_list()
    words = sorted({w for t in texts for w in t.split() if len(w) >= 9 and w.isalpha()})
    probes = random.Random(0).sample(words, 300) + ["Janet", "ducks", "muffins"]
    phrases = [t[:40] for t in texts[:200]]
    for file in (folder / "private").rglob("*"):
        if not file.is_file():
            continue
        raw = file.read_bytes()
        if file.name == "manifest.json":  # our own prose (what the index reveals) may use English words
            assert not any(p.encode() in raw for p in phrases), file
            continue
        assert not any(p.encode() in raw for p in probes), file
        if file.suffix == ".npy":
            assert np.load(file, allow_pickle=False).dtype.kind in "uif", file
        if file.suffix == ".parquet":
            table = pq.read_table(file)
            for column in table.column_names:
                values = [v for v in table.column(column).to_pylist() if isinstance(v, str)]
                assert not any(p in v for v in values for p in phrases[:50]), (file, column)
                if column in REVEALED_COLUMNS:  # documented as revealed: names and ids, not test text
                    continue
                assert not any(w in v for v in values for w in probes[:50]), (file, column)
    manifest = json.loads((folder / "private/manifest.json").read_text())
    assert manifest["private"]["reveals"] and not (folder / "private/vocabulary.parquet").exists()
    assert set(json.loads(json.dumps(manifest)).get("layers")) == {"ngram", "minhash", "artifact"}
    templates = decontam.load_index(folder / "private").layers["artifact"].templates
    assert set(templates["origin"]) <= {"curated"}


def test_private_index_with_a_kept_salt(full_and_private, tmp_path, gsm8k):
    folder, full, _ = full_and_private
    salt_file = tmp_path / "salt.hex"
    out = runner.invoke(app, ["index", "export", str(folder / "full"), "--private", str(tmp_path / "p"), "--keep-salt", str(salt_file)])
    assert out.exit_code == 0, out.stderr
    assert salt_file.stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "p/manifest.json").read_text())["private"]["salt"] is None
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"prompt": gsm8k[4]["question"]}])
    no_salt = runner.invoke(app, ["scan", str(corpus), "--index", str(tmp_path / "p")])
    assert no_salt.exit_code == 2 and "whose owner kept the salt" in no_salt.stderr
    wrong = tmp_path / "wrong.hex"
    wrong.write_text("00" * 32)
    bad = runner.invoke(app, ["scan", str(corpus), "--index", str(tmp_path / "p"), "--salt-file", str(wrong)])
    assert bad.exit_code == 2 and "is not the one it was built with" in bad.stderr
    ok = runner.invoke(app, ["scan", str(corpus), "--index", str(tmp_path / "p"), "--salt-file", str(salt_file), "--json"])
    assert ok.exit_code == 1 and json.loads(ok.stdout)["benchmarks"]["gsm8k"]["items_found"] == 1
    with pytest.raises(IndexFormatError):
        decontam.load_index(tmp_path / "p")


# -- CJK ----------------------------------------------------------------------------------------------


def test_chinese_mmlu_translation_found_in_chinese_alpaca(tmp_path):
    pairs = read_jsonl(DATA / "contamination/llm_decontaminator/mmlu_rephrased_pairs.jsonl.gz")
    source = write_jsonl(tmp_path / "mmlu_zh.jsonl", [{"id": p["id"], "question": p["chinese_full"], "subject": p["subject"]} for p in pairs])
    index = decontam.build_index(tmp_path / "zh", [f"mmlu_zh={source}"], params=decontam.IndexParams(methods=("ngram",)))
    alpaca = read_jsonl(DATA / "corpora/skywork/alpaca_data_zh_51k_sample_1k.jsonl.gz")
    planted = pairs[42]
    rows = list(alpaca)
    rows.insert(500, {"id": "planted", "instruction": "请回答下面的问题。", "input": planted["chinese_full"], "output": "好的。"})
    corpus = write_jsonl(tmp_path / "alpaca_zh.jsonl", rows)
    findings = decontam.scan(str(corpus), index=index).findings
    assert findings.select("row", "item_id").unique().rows() == [(500, str(planted["id"]))]
    assert findings["field"][0] == "input"
