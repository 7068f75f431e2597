"""The small value types that flow between modules: test items, corpus records, segments, findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PartKind = Literal["item", "answer"]
FindingKind = Literal["item", "answer", "artifact"]


@dataclass(frozen=True)
class ItemPart:
    """One matchable piece of a test item: its question, its choices, its reference answer, a turn."""

    name: str  # question / choices / answer / turn1 / response_a ...
    kind: PartKind  # "answer" when a hit means the reference answer leaked
    text: str


@dataclass(frozen=True)
class TestItem:
    """One benchmark test item, split into parts."""

    __test__ = False  # not a pytest test class

    benchmark: str
    item_id: str
    parts: tuple[ItemPart, ...]
    subset: str | None = None
    # the text of the right choice of a multiple-choice item, when the test set says which; not a
    # part (a short choice such as "4" or "True, False" is no evidence on its own): the embedding
    # layer adds a vector for the question with it
    answer_choice: str | None = None


@dataclass(frozen=True)
class Record:
    """One corpus row: where it came from and its raw fields."""

    source: str
    row: int
    data: dict[str, Any]
    record_id: str | None = None
    size: int = 0  # bytes as read, where the reader knows them (JSONL, CSV, text); 0 otherwise


@dataclass(frozen=True)
class Segment:
    """One piece of text inside a record, with the path of the field that held it."""

    field: str  # prompt / chosen / messages[2].content / chosen.turn[1] ...
    role: str | None  # user / assistant / system, when known
    text: str


@dataclass(frozen=True)
class Finding:
    """One row of the findings table: a corpus segment matched a benchmark item part by one method."""

    source: str
    row: int
    record_id: str | None
    field: str
    role: str | None
    benchmark: str
    subset: str | None
    item_id: str
    item_part: str
    method: str
    kind: FindingKind
    score: float
    span_start: int | None
    span_end: int | None
    evidence: str


@dataclass
class MalformedRow:
    """A corpus row that could not be read; reported as ``source:line`` and never dropped silently."""

    source: str
    line: int  # 1-based line (JSONL), 1-based row after the header (CSV), 0-based row (Parquet / datasets)
    problem: str
    keys: list[str] = field(default_factory=list)

    def location(self) -> str:
        return f"{self.source}:{self.line}"
