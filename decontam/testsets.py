"""Benchmark test sets -> ``TestItem``s. The only module that reaches the Hugging Face hub for test sets.

A source is ``NAME=SPEC`` where SPEC is a local file (JSONL, JSON, Parquet, CSV, TSV; compressed too), a folder
of such files, a folder written by ``datasets.save_to_disk``, or a hub dataset: ``hf:ID`` with
optional ``?config=...&split=...&revision=...`` (a bare ``owner/name`` that is not a local path is
read as a hub id too).

The parts of an item (question, choices, answers, turns) are found from common field names, including
nested ones (ARC's ``question.stem``, Arena-Hard's ``turns[].content``); ``field_map`` overrides them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .checksums import sha256_files
from .errors import InputError
from .readers import (
    CSV_SUFFIXES,
    ArrayRecord,
    check_content_matches_name,
    compressed_forms,
    hub_offline_hint,
    iter_records,
    open_parquet,
)
from .types import ItemPart, MalformedRow, TestItem

QUESTION_KEYS = (
    "question", "problem", "prompt", "instruction", "query", "text", "input",
    "prompt_template", "jinja", "template",
)  # fmt: skip
ANSWER_KEYS = (
    "answer", "solution", "canonical_solution", "best answer", "best_answer", "output",
    "reference", "code", "completion", "target", "response", "chosen", "rejected",
)  # fmt: skip
RESPONSE_PAIR_KEYS = re.compile(r"^response[ _]?([ab12])$", re.IGNORECASE)
CHOICE_COLUMN = re.compile(r"^(?:choice|option)[ _]?([0-9a-j])$", re.IGNORECASE)
# which choice is right: MMLU's answer index, ARC's and OpenBookQA's answerKey, MMLU-Pro's and C-Eval's
# letter, HellaSwag's label
ANSWER_CHOICE_KEYS = ("answerkey", "answer_index", "answer_idx", "answer", "label")
WORD = re.compile(r"\w+")
MIN_INPUT_WORDS = 8  # an instruction's input shorter than an 8-gram is no evidence on its own (_input_parts)
ID_KEYS = ("id", "question_id", "task_id", "key", "idx", "pair_id", "unique_id", "uid", "_id")
SUBSET_KEYS = ("subset", "subject", "category", "source", "type", "dataset", "skill", "config")
MAP_ROLES = ("question", "choices", "answer", "id", "subset")
FILE_SUFFIXES = (*compressed_forms(".jsonl", ".json"), ".parquet", *CSV_SUFFIXES)


@dataclass(frozen=True)
class SourceSpec:
    """Where one benchmark's test set comes from."""

    name: str
    location: str  # a local path, or a hub id
    hub: bool = False
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    field_map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedTestSet:
    """A benchmark's items plus what the manifest records about where they came from."""

    __test__ = False

    spec: SourceSpec
    items: list[TestItem]
    revision: str  # hub revision, or sha256 of the local files
    # rows whose item fields are all empty or null (an image-only item, a placeholder): nothing of
    # them can leak; their ids (their 0-based positions where they have none), for the manifest
    rows_without_text: list[str] = field(default_factory=list)


def parse_source(text: str, field_map: Mapping[str, str] | None = None) -> SourceSpec:
    """Parse ``NAME=PATH_OR_HF_ID`` as given to ``--source``."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise InputError(
            f"--source {text!r} is not NAME=PATH_OR_HF_ID",
            "write e.g. --source gsm8k=data/gsm8k/test.jsonl or --source gsm8k=hf:openai/gsm8k?config=main&split=test",
        )
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise InputError(f"benchmark name {name!r} in --source {text!r} has characters other than letters, digits, _ . -",
                         "pick a short name such as gsm8k or mmlu")
    fmap = dict(field_map or {})
    for role in fmap:
        if role not in MAP_ROLES:
            raise InputError(f"unknown field role {role!r} in the mapping for {name}", f"use one of {', '.join(MAP_ROLES)}")
    if spec.startswith("hf:") or spec.startswith("hf://"):
        hub_id = spec.split(":", 1)[1].lstrip("/")
        if hub_id.startswith("datasets/"):
            hub_id = hub_id[len("datasets/"):]
        hub_id, _, query = hub_id.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(params) - {"config", "split", "revision"}
        if unknown:
            raise InputError(f"unknown hub option(s) {sorted(unknown)} in --source {text!r}", "use config=, split= and revision=")
        return SourceSpec(name, hub_id, hub=True, config=params.get("config"), split=params.get("split", "test"),
                          revision=params.get("revision"), field_map=fmap)
    if not Path(spec).exists() and not any(ch in spec for ch in "*?[") and re.fullmatch(r"[\w.\-]+/[\w.\-]+", spec):
        return SourceSpec(name, spec, hub=True, split="test", field_map=fmap)
    path, _, query = spec.partition("?")
    split = parse_qs(query).get("split", [None])[-1] if query and Path(path).is_dir() else None
    return SourceSpec(name, path if split else spec, split=split, field_map=fmap)


def load_test_set(spec: SourceSpec) -> LoadedTestSet:
    """Read a test set and turn every row into a ``TestItem``."""
    if spec.hub:
        rows, revision = _read_hub(spec)
        where = f"hf:{spec.location}"
    elif _is_saved_dataset(Path(spec.location)):
        rows, revision = _read_saved_dataset(spec)
        where = spec.location
    else:
        files = _local_files(spec.location)
        rows, revision = _read_local(files), "sha256:" + sha256_files(files)
        where = spec.location
    items, without_text = [], []
    for position, row in enumerate(rows):
        item = item_from_row(row, benchmark=spec.name, position=position, field_map=spec.field_map, where=where)
        if item is None:
            without_text.append(_item_id(row, spec.field_map, position))
        else:
            items.append(item)
    if not items:
        what = "has no rows" if not without_text else f"has no row with text in its item fields ({len(without_text)} rows, all empty)"
        raise InputError(f"test set {spec.name} at {where} {what}", "check the path, split or config")
    return LoadedTestSet(spec=spec, items=items, revision=revision, rows_without_text=without_text)


def item_from_row(
    row: Mapping[str, Any], *, benchmark: str, position: int, field_map: Mapping[str, str] | None = None, where: str = ""
) -> TestItem | None:
    """Find the parts, id and subset of one test-set row; None for a row whose item fields are all
    empty or null. A row with none of the fields an item is found in is an ``InputError``."""
    if not isinstance(row, Mapping):
        raise InputError(f"{where}: row {position} is a {type(row).__name__}, not an object", "each row must be a JSON object / table row")
    fmap = field_map or {}
    mapped = "question" in fmap or "answer" in fmap or "choices" in fmap
    parts = _mapped_parts(row, fmap, where, position) if mapped else _detected_parts(row)
    if not parts and (mapped or _has_item_fields(row)):
        return None
    if not parts:
        headerless = (" If the file has no header row (hendrycks' MMLU CSVs have none), add one first, e.g. "
                      "question,A,B,C,D,answer") if where.endswith(CSV_SUFFIXES) else ""
        raise InputError(
            f"{where}: cannot tell which fields of row {position} hold the test item; keys seen: {sorted(row)}",
            "map them explicitly, e.g. --map " + benchmark + ":question=<field> (and :answer=, :choices=, :id=, :subset=)."
            + headerless,
        )
    subset = _lookup(row, fmap["subset"]) if "subset" in fmap else _first(row, SUBSET_KEYS)
    return TestItem(
        benchmark=benchmark,
        item_id=_item_id(row, fmap, position),
        parts=tuple(parts),
        subset=None if subset is None or isinstance(subset, (dict, list)) else str(subset),
        answer_choice=_answer_choice(row, fmap),
    )


def _item_id(row: Mapping[str, Any], fmap: Mapping[str, str], position: int) -> str:
    """The row's own id (the mapped field, or the first of ``ID_KEYS``), else its 0-based position."""
    item_id = _lookup(row, fmap["id"]) if "id" in fmap else _first(row, ID_KEYS)
    return str(item_id) if item_id is not None else str(position)


# -- part detection ---------------------------------------------------------------------------------


def _has_item_fields(row: Mapping[str, Any]) -> bool:
    """Whether a row holds any of the fields ``_detected_parts`` reads an item from (empty or not)."""
    names = {str(k).lower() for k in row}
    return (bool(names & {*QUESTION_KEYS, *ANSWER_KEYS, "turns", "choices"})
            or any(RESPONSE_PAIR_KEYS.match(str(k)) for k in row) or _raw_choices(row, {}) is not None)


def _detected_parts(row: Mapping[str, Any]) -> list[ItemPart]:
    lower = {str(k).lower(): k for k in row}
    parts: list[ItemPart] = []
    for key in QUESTION_KEYS:
        if key in lower:
            value = row[lower[key]]
            parts += _text_part("question", "item", value["stem"] if _is_stem_layout(value) else value)
            if parts:
                if key == "instruction":
                    parts += _input_parts(row, lower)
                break
    if "turns" in lower:
        parts += _turn_parts("turn", "item", row[lower["turns"]])
    choices = row[lower["choices"]] if "choices" in lower else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) and "turns" in choices[0]:
        parts += _turn_parts("answer_turn", "answer", choices[0]["turns"])  # FastChat model-answer layout
    else:
        parts += _choices_part(_raw_choices(row, {}))
    for key in ANSWER_KEYS:
        if key in lower:
            value = row[lower[key]]
            name = key.replace(" ", "_")
            if isinstance(value, list):
                parts += _turn_parts(name, "answer", value)
            else:
                parts += _text_part(name, "answer", value)
    for key in row:
        if m := RESPONSE_PAIR_KEYS.match(str(key)):
            label = {"1": "a", "2": "b"}.get(m.group(1).lower(), m.group(1).lower())
            parts += _text_part(f"response_{label}", "answer", row[key])
    return parts


def _input_parts(row: Mapping[str, Any], lower: Mapping[str, Any]) -> list[ItemPart]:
    """The input an instruction applies to (Alpaca's ``input``, Self-Instruct's ``instances[].input``):
    a part of its own, as a corpus in that layout keeps it in a field of its own, and the instruction
    alone is often generic ("Answer the following question.", then "How do I compare strings in Java?").
    An input under ``MIN_INPUT_WORDS`` words is left out: "+ how are you?", 'print("Hello World!")'
    or "The Great Gatsby" is data that any chat or code corpus holds, not the test item."""
    if "input" in lower:
        parts = _text_part("input", "item", row[lower["input"]])
    else:
        instances = row[lower["instances"]] if "instances" in lower else None
        if not isinstance(instances, list):
            return []
        parts = _turn_parts("input", "item", [i.get("input") for i in instances if isinstance(i, Mapping)])
    return [p for p in parts if len(WORD.findall(p.text)) >= MIN_INPUT_WORDS]


def _mapped_parts(row: Mapping[str, Any], fmap: Mapping[str, str], where: str, position: int) -> list[ItemPart]:
    parts: list[ItemPart] = []
    for role, kind in (("question", "item"), ("choices", "item"), ("answer", "answer")):
        if role not in fmap:
            continue
        paths = [p.strip() for p in fmap[role].split(",") if p.strip()]
        values = [_at_path(row, p) for p in paths]
        missing = [p for p, v in zip(paths, values) if v is _MISSING]  # (a null is there: an empty item)
        if missing:
            raise InputError(f"{where}: row {position} has no field {missing[0]!r} (mapped as {role}); keys seen: {sorted(row)}",
                             "fix the field path in --map; nested fields are written a.b or a[0].b, several fields a,b,c")
        value = values[0] if len(values) == 1 else values  # several fields: choices A,B,C,D or turns
        if role == "choices":
            parts += _choices_part(value)
        elif isinstance(value, list):
            parts += _turn_parts(role if role == "answer" else "turn", kind, value)
        else:
            parts += _text_part(role, kind, value)
    return parts


def _text_part(name: str, kind: str, value: Any) -> list[ItemPart]:
    if isinstance(value, Mapping):
        value = value.get("content") or value.get("text") or value.get("value")
    if not isinstance(value, str) or not value.strip():
        return []
    return [ItemPart(name=name, kind=kind, text=value)]  # type: ignore[arg-type]


def _turn_parts(prefix: str, kind: str, value: Any) -> list[ItemPart]:
    if isinstance(value, str):
        return _text_part(prefix, kind, value)
    if not isinstance(value, list):
        return []
    flat = [t for turn in value for t in (turn if isinstance(turn, list) else [turn])]  # chosen: [a], rejected: [b, c]
    parts = []
    for i, turn in enumerate(flat, start=1):
        parts += _text_part(f"{prefix}{i}" if len(flat) > 1 or prefix == "turn" else prefix, kind, turn)
    return parts


def _letter_columns(row: Mapping[str, Any]) -> list[str]:
    """Columns named A, B, C... (or a, b, c...) in a row from the first letter on, as choices."""
    for letters in ("ABCDEFGHIJ", "abcdefghij"):
        found = []
        for letter in letters:
            if letter not in row:
                break
            found.append(letter)
        if found:
            return found
    return []


def _is_stem_layout(value: Any) -> bool:
    """ARC's and OpenBookQA's ``question: {"stem": ..., "choices": [...]}``."""
    return isinstance(value, Mapping) and "stem" in value


def _raw_choices(row: Mapping[str, Any], fmap: Mapping[str, str]) -> Any:
    """A row's choices as the row holds them: the mapped field(s), a stem layout's ``choices``, a
    ``choices`` field, an ``options`` field of texts (MMLU-Pro's list; MedQA's and AGIEval's
    ``{"A": ..., "B": ...}``), columns choice0..choiceN / option_a..., or columns A, B, C... (C-Eval,
    CMMLU, MMLU's CSVs: question,A,B,C,D,answer). None when it has none."""
    if "choices" in fmap:
        values = [_lookup(row, p.strip()) for p in fmap["choices"].split(",") if p.strip()]
        return values[0] if len(values) == 1 else values
    lower = {str(k).lower(): k for k in row}
    question = next((row[lower[k]] for k in QUESTION_KEYS if k in lower), None)
    if _is_stem_layout(question):
        return question.get("choices")
    if "choices" in lower:
        return row[lower["choices"]]
    options = row[lower["options"]] if "options" in lower else None
    if options and isinstance(options, (list, Mapping)) and all(isinstance(o, str) for o in (options.values() if isinstance(options, Mapping) else options)):
        return options  # not generation options ({"temperature": 0.7}) or other settings
    if columns := sorted((m.group(1), k) for k in row if (m := CHOICE_COLUMN.match(str(k)))):
        return [row[k] for _, k in columns]
    letters = _letter_columns(row)
    return [row[k] for k in letters] if len(letters) >= 2 else None


def _choice_texts(choices: Any) -> tuple[list[str], list[str]]:
    """The texts of raw choices in order (blank ones kept, so that an index still points at its
    choice) and their labels where the row gives them (ARC: "A".."D", or "1".."4")."""
    if isinstance(choices, Mapping) and isinstance(choices.get("text"), list):  # HF ARC layout
        texts, labels = choices["text"], list(choices.get("label") or [])
    elif isinstance(choices, Mapping) and all(isinstance(t, str) for t in choices.values()):  # {"A": text, "B": text}
        texts, labels = list(choices.values()), list(choices)
    elif isinstance(choices, list):
        texts = [c.get("text") if isinstance(c, Mapping) else c for c in choices]
        labels = [c.get("label") for c in choices if isinstance(c, Mapping)]
    else:
        return [], []
    texts = ["" if t is None else str(t) for t in texts]
    return texts, [str(label) for label in labels] if len(labels) == len(texts) else []


def _choices_part(choices: Any) -> list[ItemPart]:
    texts = [t for t in _choice_texts(choices)[0] if t.strip()]
    return _text_part("choices", "item", "\n".join(texts)) if texts else []


def _answer_choice(row: Mapping[str, Any], fmap: Mapping[str, str]) -> str | None:
    """The text of the right choice, when the row has choices and says which is right: ARC's
    ``answerKey`` against its choices' labels, a 0-based index (MMLU's ``answer: 1``, or ``"1"`` in
    its CSV mirrors), a letter (``answer: "B"``), or the choice's own text; in the mapped answer
    field, else in the first of ``ANSWER_CHOICE_KEYS`` that names one (a recipe maps ``answer`` to
    MMLU-Pro's worked solution; its ``answer`` field still holds the letter). None otherwise."""
    texts, labels = _choice_texts(_raw_choices(row, fmap))
    if not any(t.strip() for t in texts):
        return None
    lower = {str(k).lower(): k for k in row}
    values = ([_lookup(row, fmap["answer"])] if "answer" in fmap else []) + [row[lower[k]] for k in ANSWER_CHOICE_KEYS if k in lower]
    for value in values:
        index = _choice_index(value, texts, labels)
        if index is not None and 0 <= index < len(texts) and texts[index].strip():
            return texts[index]
    return None


def _choice_index(value: Any, texts: list[str], labels: list[str]) -> int | None:
    """Which choice an answer field names: an int index, or a string that is a label, a 0-based
    index, a letter or a choice's text (in that order); None when it names none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if value in labels:
        return labels.index(value)
    if value.isdigit() and int(value) < len(texts):
        return int(value)
    if len(value) == 1 and value.upper() in "ABCDEFGHIJ":
        return "ABCDEFGHIJ".index(value.upper())
    return texts.index(value) if value in texts else None


def _first(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    lower = {str(k).lower(): k for k in row}
    for key in keys:
        if key in lower and row[lower[key]] is not None and row[lower[key]] != "":
            return row[lower[key]]
    return None


_MISSING = object()


def _lookup(row: Any, path: str) -> Any:
    """Value at a field path such as ``question.stem`` or ``turns[0].content``; None when absent."""
    value = _at_path(row, path)
    return None if value is _MISSING else value


def _at_path(row: Any, path: str) -> Any:
    """Value at a field path; None where the path runs into a null, ``_MISSING`` where a field or
    list element on it is absent."""
    value = row
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if value is None:
            return None
        if piece.startswith("["):
            index = int(piece[1:-1])
            if not (isinstance(value, list) and index < len(value)):
                return _MISSING
            value = value[index]
        elif isinstance(value, Mapping) and piece in value:
            value = value[piece]
        else:
            return _MISSING
    return value


# -- reading rows -----------------------------------------------------------------------------------


def _local_files(location: str) -> list[Path]:
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(FILE_SUFFIXES))
        if not files:
            raise InputError(f"folder {location} holds no test-set file", f"put {', '.join(FILE_SUFFIXES)} files there or name a file")
        return files
    if any(ch in location for ch in "*?["):
        files = sorted(Path(p) for p in __import__("glob").glob(location, recursive=True))
        if not files:
            raise InputError(f"pattern {location} matches no file", "check the glob")
        return files
    if not path.exists():
        raise InputError(f"test-set file {location} does not exist", "check the path, or write hf:owner/name for a hub dataset")
    if not path.name.endswith(FILE_SUFFIXES):
        raise InputError(f"cannot read test-set file {location}: unknown format", f"use one of {', '.join(FILE_SUFFIXES)}")
    return [path]


def _read_local(files: list[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        name = path.name
        check_content_matches_name(str(path))
        if name.endswith(".parquet"):
            yield from open_parquet(str(path)).read().to_pylist()
        else:  # JSONL, JSON arrays, CSV: read as corpora are, but a test set must be read whole
            for row in iter_records(str(path)):
                if isinstance(row, MalformedRow):
                    if row.problem.startswith("empty line"):
                        continue
                    where = f"{path}, row {row.line}" if name.endswith(CSV_SUFFIXES) else row.location()
                    raise InputError(f"{where}: {row.problem}", "fix or remove that row of the test set")
                if isinstance(row.data, ArrayRecord):  # (a corpus row may be a bare list of chat turns; an item is an object)
                    raise InputError(f"{path}:{row.row + 1}: a JSON array, not an object", "fix or remove that row of the test set")
                yield row.data


def _read_hub(spec: SourceSpec) -> tuple[list[dict[str, Any]], str]:
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"reading hf:{spec.location} needs the `datasets` package", 'pip install "decontam[hf]"') from exc
    try:
        dataset = datasets.load_dataset(spec.location, spec.config, split=spec.split or "test", revision=spec.revision)
    except Exception as exc:  # datasets raises many types (network, missing config, missing split)
        raise InputError(f"cannot load hub dataset {spec.location} (config={spec.config}, split={spec.split}): {exc}",
                         f"check the id, config and split; {hub_offline_hint('--source')}") from exc
    revision = spec.revision or getattr(dataset, "_fingerprint", None) or "unknown"
    return list(dataset), str(revision)


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists())


def _read_saved_dataset(spec: SourceSpec) -> tuple[list[dict[str, Any]], str]:
    """A folder written by ``datasets``' ``save_to_disk`` (a Dataset, or a DatasetDict and a split)."""
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"reading the saved dataset {spec.location} needs the `datasets` package", 'pip install "decontam[hf]"') from exc
    dataset = datasets.load_from_disk(spec.location)
    if isinstance(dataset, datasets.DatasetDict):
        split = spec.split or "test"
        if split not in dataset:
            raise InputError(f"saved dataset {spec.location} has no split {split!r}; it has {sorted(dataset)}",
                             f"add ?split=NAME, e.g. --source NAME={spec.location}?split={next(iter(dataset))}")
        dataset = dataset[split]
    return list(dataset), f"fingerprint:{dataset._fingerprint}"
