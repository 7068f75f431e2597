"""Corpus inputs -> ``Record``s -> ``Segment``s.

Inputs: JSONL files (plain, or compressed: .gz, .zst, .bz2, .xz), Parquet files (read row group by
row group, 2,000 rows at a time), JSON files holding one array of records (``alpaca_data.json``; a
``.json`` file that does not start with ``[`` is read as JSONL), CSV and TSV files with a header row
(quoted fields may hold line breaks; compressed too), plain text files (``.txt``, and ``.md`` when
named: records of whole paragraphs, ``text_records``), folders and globs of those, ``-`` for JSONL
on stdin, and Hugging Face datasets (``hf:owner/name?split=train`` or a ``save_to_disk`` folder).
Records are streamed: nothing holds a whole corpus in memory (JSON arrays are parsed incrementally,
with ijson, but for one with NaN or Infinity in it, which ijson refuses: up to 256 MB, read whole).

Segments: every string inside a record becomes a segment with its field path (``prompt``,
``chosen``, ``messages[2].content``) and a role when it can be told: message ``role``/``from``
fields, hh-rlhf transcripts (``\\n\\nHuman: ... \\n\\nAssistant: ...``, split into turns as
``chosen.turn[0]``, ``chosen.turn[1]``...), text in a chat template (ChatML, Llama 2/3, Mistral,
Gemma, the Alpaca prompt; split the same way), and field names (prompt/instruction/input are user text,
chosen/rejected/output/response/completion are assistant text).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import functools
import glob as globlib
import gzip
import io
import json
import lzma
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from zstandard import ZstdError

from .errors import InputError
from .types import MalformedRow, Record, Segment

# Compressed JSONL: gzip, bz2 and xz (standard library) and zstd (the Pile, RedPajama; zstandard).
COMPRESSED = (".gz", ".zst", ".bz2", ".xz")


def compressed_forms(*bases: str) -> tuple[str, ...]:
    """Each suffix, plain and with every compression suffix (``.csv``, ``.csv.gz``, ...)."""
    return tuple(f"{base}{packed}" for base in bases for packed in ("", *COMPRESSED))


JSONL_SUFFIXES = compressed_forms(".jsonl", ".ndjson")
CSV_SUFFIXES = compressed_forms(".csv", ".tsv")
TEXT_SUFFIXES = compressed_forms(".txt", ".md")
CORPUS_SUFFIXES = (*JSONL_SUFFIXES, ".parquet", *CSV_SUFFIXES, *compressed_forms(".txt"))
JSON_SUFFIXES = compressed_forms(".json")
# Read when named as files or globs, not picked up from folders (where .json is often metadata, and .md a README).
NAMED_SUFFIXES = (*JSON_SUFFIXES, *compressed_forms(".md"))
RECORD_ID_KEYS = ("id", "_id", "uuid", "idx", "question_id", "key", "uid", "prompt_id")
USER_FIELDS = {"prompt", "instruction", "input", "question", "query", "problem", "human", "user"}
ASSISTANT_FIELDS = {"chosen", "rejected", "output", "response", "completion", "answer", "solution",
                    "assistant", "gpt", "response_a", "response_b", "response1", "response2", "target"}
ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                "model": "assistant", "chatgpt": "assistant", "system": "system"}
# Fields that describe a record rather than hold its text (unless they hold METADATA_MAX_WORDS words or more).
METADATA_MAX_WORDS = 4
META_FIELDS = {"id", "_id", "uuid", "idx", "key", "uid", "source", "model", "model_id", "dataset", "split",
               "label", "lang", "language", "url", "timestamp", "tstamp", "license", "category", "role", "from",
               "type"}  # OpenAI content parts: {"type": "image_url", ...}
_TRANSCRIPT_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|User|System):[ \t]?")
# Chat templates written out as text (the "text" field of many SFT sets): what opens a turn. The role
# is the named group that matched, or fixed by the mark (Llama 2 / Mistral ``[INST]``).
_TEMPLATE_TURN = re.compile(
    r"<\|im_start\|>[ \t]*(?P<chatml>\w+)[ \t]*\n?"  # ChatML (Qwen, OpenHermes, ...)
    r"|<\|start_header_id\|>[ \t]*(?P<llama3>\w+)[ \t]*<\|end_header_id\|>\n*"  # Llama 3
    r"|<start_of_turn>[ \t]*(?P<gemma>\w+)[ \t]*\n?"  # Gemma
    r"|(?P<inst>\[/?INST\]|<</?SYS>>)"  # Llama 2, Mistral
    r"|(?m:^[ \t]*###[ \t]*(?P<alpaca>Instruction|Input|Response)[ \t]*:[ \t]*\n?)"  # Alpaca prompt
)
# A text is in a template when a turn opens within its first characters (the Alpaca prompt's preamble
# is ~190 characters long).
_TEMPLATE_HEAD = 400
_INST_ROLES = {"[INST]": "user", "[/INST]": "assistant", "<<SYS>>": "system", "<</SYS>>": "user"}
_TEMPLATE_ROLES = {"instruction": "user", "input": "user", "response": "assistant"}
_END_TOKENS = re.compile(r"<\|(?:im_end|eot_id|end_of_text|begin_of_text|endoftext)\|>|<end_of_turn>|</?s>")
MIN_SEGMENT_CHARS = 8
PARQUET_BATCH_ROWS = 2_000
# A text file's record ends before the first paragraph that starts after TEXT_RECORD_BYTES, or, with no
# blank line in sight, at the first line end after TEXT_RECORD_MAX_BYTES: most documents are one record,
# a book or a crawl dump is read in pieces, and a finding's line is never far from where its record starts.
TEXT_RECORD_BYTES = 64 << 10
TEXT_RECORD_MAX_BYTES = 1 << 20


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``datasets.save_to_disk`` (one split)."""
    return (folder / "dataset_info.json").exists() or (folder / "state.json").exists()


def is_dataset(source: str) -> bool:
    """A Hugging Face dataset: a hub id (``hf:owner/name?split=...``) or a ``save_to_disk`` folder."""
    return source.startswith("hf:") and not source.startswith("hf://") or (not is_url(source) and Path(source).is_dir())


def records_as_jsonl(records: Iterable[Record]) -> Iterator[bytes]:
    """Each record's data as one JSON line. Bytes that are UTF-8 become strings (the scan reads them as
    text); values JSON has no text form for (other bytes, dates, arrays, images) become null: the scan
    would not have read them either."""
    option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE
    for record in records:
        yield orjson.dumps(record.data, default=_text_or_null, option=option)


def _text_or_null(value: Any) -> str | None:
    return _bytes_as_text(value) if isinstance(value, (bytes, bytearray)) else None


def _bytes_as_text(value: bytes | bytearray) -> str | None:
    """Bytes that hold text (UTF-8, no zero byte), as Spark and Impala write Parquet strings; None for
    an image or other binary data."""
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def is_url(spec: str) -> bool:
    """``s3://``, ``gs://``, ``hf://``, ``memory://`` ...: read through fsspec (installed with ``datasets``)."""
    return "://" in spec and not spec.startswith("file://")


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files behind the inputs: folders are walked, globs expanded (remote ones through fsspec); hub ids
    and ``-`` pass through. A file that several inputs name (``a.jsonl a.jsonl``, a folder and a file
    in it) is in the list once, as the first of them spells it: scanned twice, its rows and findings
    would count twice."""
    out: list[str] = []
    for spec in inputs:
        if spec == "-" or spec.startswith("hf:") and not spec.startswith("hf://"):
            out.append(spec)
            continue
        if is_url(spec):
            out += _expand_url(spec)
            continue
        path = Path(spec)
        if path.is_dir():
            if is_saved_dataset(path):
                out.append(spec)
                continue
            files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.name.endswith(CORPUS_SUFFIXES))
            if not files:
                raise InputError(f"folder {spec} holds no corpus file",
                                 f"corpus files end in {', '.join(CORPUS_SUFFIXES)}; name .json and .md files by a glob ({spec}/*.json)")
            out += files
        elif any(ch in spec for ch in "*?["):
            files = sorted(p for p in globlib.glob(spec, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"pattern {spec} matches no file", "check the glob (quote it so the shell does not expand it)")
            out += files
        elif not path.exists():
            raise InputError(f"corpus file {spec} does not exist", "check the path; hub datasets are written hf:owner/name?split=train")
        elif not path.name.endswith(CORPUS_SUFFIXES + NAMED_SUFFIXES):
            raise InputError(f"cannot read corpus file {spec}: unknown format", f"use one of {', '.join(CORPUS_SUFFIXES + NAMED_SUFFIXES)}")
        else:
            out.append(spec)
    firsts: dict[str, str] = {}
    for name in out:
        firsts.setdefault(_file_key(name), name)
    return list(firsts.values())


def _file_key(name: str) -> str:
    """What tells two spellings of one input apart: a local file's absolute path (a symbolic link stays
    a file of its own, as it is to a reader of the folder), else the name."""
    return name if name == "-" or name.startswith("hf:") or is_url(name) else os.path.abspath(name)


def _expand_url(spec: str) -> list[str]:
    try:
        import fsspec
    except ImportError as exc:
        raise InputError(f"reading {spec} needs fsspec", 'pip install "decontam[hf]" (and s3fs / gcsfs for those stores)') from exc
    try:
        fs, _, paths = fsspec.get_fs_token_paths(spec)
    except (ImportError, ValueError) as exc:
        raise InputError(f"cannot open {spec}: {exc}", "install the fsspec backend for that store (s3fs, gcsfs, ...)") from exc
    protocol = spec.split("://", 1)[0]
    suffixes = CORPUS_SUFFIXES + (NAMED_SUFFIXES if spec.endswith(NAMED_SUFFIXES) else ())  # .json, .md when asked for by name
    found = []
    for p in paths:
        if fs.isdir(p):  # a folder is walked, as a local one is
            found += [f for f in fs.find(p) if f.endswith(CORPUS_SUFFIXES)]
        elif p.endswith(suffixes) and fs.isfile(p):
            found.append(p)
    files = sorted(p if "://" in p else f"{protocol}://{p.lstrip('/') if protocol != 'memory' else p}" for p in found)
    if not files:
        raise InputError(f"{spec} matches no corpus file", f"corpus files end in {', '.join(CORPUS_SUFFIXES)} (.json when the name or pattern ends so)")
    return files


def open_input(source: str):
    """An input opened for reading bytes, decompressed: a local file, a URL (fsspec), or ``-``."""
    if source == "-":
        stdin = sys.stdin.buffer
        peek = getattr(stdin, "peek", None)  # `decontam scan - < corpus.jsonl.zst` works as well as zstdcat
        head = peek(6)[:6] if peek is not None else b""
        if head.startswith(b"\x1f\x8b"):
            return gzip.GzipFile(fileobj=stdin)
        if head.startswith(b"\x28\xb5\x2f\xfd"):
            return _zstd_reader(stdin)
        if head.startswith(b"BZh"):
            return bz2.BZ2File(stdin)
        if head.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMAFile(stdin)
        return stdin
    if is_url(source):
        import fsspec

        if source.endswith(".zst"):  # fsspec's zstd reader refuses long-window frames: ours takes them
            return _zstd_reader(fsspec.open(source, "rb").open())
        return fsspec.open(source, "rb", compression="infer").open()
    return open_compressed(source)


# zstd --long=31 (used for big corpora) writes frames with a 2 GB window; the decoder's default limit
# (128 MB) refuses them as "too much memory", as `zstd -d` does without --long=31 / --memory.
ZSTD_MAX_WINDOW = 1 << 31


def _zstd_reader(raw):
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    return io.BufferedReader(dctx.stream_reader(raw, closefd=True, read_across_frames=True))  # (no readline of its own)


class _GzipWriter(gzip.GzipFile):
    """A gzip file that stores no file name in its header. ``gzip.open`` stores the name it writes to,
    which for an output is its temporary name (``atomic.replaced``): ``gunzip -N`` restored
    ``kept.jsonl.gz`` as ``kept.12345.tmp.jsonl``."""

    def __init__(self, path: str | Path, mode: str):
        self._raw = open(path, mode)  # noqa: SIM115 -- closed by close(), after the gzip trailer
        super().__init__(filename="", mode=mode, fileobj=self._raw)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_compressed(path: str | Path, mode: str = "rb"):
    """A local file, (de)compressed by its suffix (``.gz``, ``.zst``, ``.bz2``, ``.xz``), in binary mode."""
    name = str(path)
    if name.endswith(".gz"):
        return gzip.open(path, mode) if "r" in mode else _GzipWriter(path, mode)
    if name.endswith(".bz2"):
        return bz2.open(path, mode)
    if name.endswith(".xz"):
        return lzma.open(path, mode)
    if name.endswith(".zst"):
        import zstandard

        return _zstd_reader(open(path, "rb")) if "r" in mode else zstandard.open(path, mode)
    return open(path, mode)


def iter_records(source: str, *, byte_range: tuple[int, int] | None = None, first_row: int = 0,
                 row_groups: tuple[int, int] | None = None, payload: bytes | None = None,
                 first_line: int | None = None) -> Iterator[Record | MalformedRow]:
    """Records of one input (file, URL, ``-``, hub id or ``save_to_disk`` folder), or a
    ``MalformedRow`` for every row that cannot be read. Row numbers are 0-based positions in the
    source; a shard (``byte_range`` of a JSONL file whose first line is row ``first_row``, or
    ``row_groups`` of a Parquet file) keeps the numbering of the whole file. ``payload``: the bytes
    of that byte range, already read (a piece of a compressed file the scan streams; of a CSV file,
    its header and whole records, the first on line ``first_line`` of the file)."""
    if payload is not None and source.endswith(CSV_SUFFIXES):
        yield from _iter_csv(source, payload=payload, first_row=first_row, first_line=first_line)
        return
    if payload is not None and source.endswith(TEXT_SUFFIXES):
        yield from _iter_text(source, payload=payload, first_line=first_line or 1)
        return
    if payload is not None:
        yield from _iter_jsonl(source, first_row=first_row, payload=payload)
        return
    with damaged_input(source):
        if is_dataset(source):
            yield from _iter_dataset(source)
        elif source.endswith(".parquet"):
            yield from _iter_parquet(source, row_groups=row_groups, first_row=first_row)
        elif source.endswith(CSV_SUFFIXES):
            yield from _iter_csv(source)
        elif source.endswith(TEXT_SUFFIXES):
            yield from _iter_text(source)
        elif is_json_array(source):
            yield from _iter_json_array(source)
        else:
            yield from _iter_jsonl(source, byte_range=byte_range, first_row=first_row)


@contextlib.contextmanager
def damaged_input(source: str) -> Iterator[None]:
    """A compressed file that is cut short or is not what its name says: an ``InputError`` that names
    it, instead of a traceback (or click's bare "Aborted." for the ``EOFError`` of a cut gzip stream)."""
    try:
        yield
    except (EOFError, OSError, zlib.error, lzma.LZMAError, ZstdError) as exc:
        if isinstance(exc, OSError) and (exc.errno is not None or isinstance(exc, io.UnsupportedOperation)):
            raise  # a real I/O error (permissions, a disk) or a bug, not a damaged stream
        problem = "it ends early (cut short?)" if isinstance(exc, EOFError) else str(exc)
        raise InputError(f"cannot read {source}: {problem}", "the file is damaged; fetch or write it again (gzip -t / zstd -t FILE checks one)") from exc


def _iter_jsonl(source: str, *, byte_range: tuple[int, int] | None = None, first_row: int = 0,
                payload: bytes | None = None) -> Iterator[Record | MalformedRow]:
    name = "<stdin>" if source == "-" else source
    with io.BytesIO(payload) if payload is not None else open_input(source) as handle:
        lines: Iterable[bytes] = handle
        if byte_range is not None and payload is None:
            handle.seek(byte_range[0])
            lines = _lines_until(handle, byte_range[1] - byte_range[0])
        for row, line in enumerate(lines, start=first_row):
            line_no = row + 1
            if row == 0 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (Windows tools write one)
                line = line[3:]
            elif row == 0 and _looks_utf16(line):
                raise _utf16_error(name)
            if not line.strip():
                yield MalformedRow(name, line_no, "empty line")
                continue
            try:
                data = json_value(line)
            except ValueError as exc:
                yield MalformedRow(name, line_no, str(exc))
                continue
            record = record_of_value(data)
            if record is None:
                yield MalformedRow(name, line_no, f"a JSON {_json_type(data)}, not an object")
                continue
            yield Record(name, row, record, record_id_of(data) if record is data else None, len(line))


class ArrayRecord(dict):
    """The record of a row that was a JSON array (``record_of_value``): a test set refuses it."""


def record_of_value(data: Any) -> dict | None:
    """A row's JSON value as a record: an object as it is; a string as its ``text`` (prompts or
    documents, one per line); an array as ``messages`` when it holds objects (a chat saved as a bare
    list of turns, ``[{"role": "user", "content": ...}, ...]``), else as ``text``, a list of texts; None
    for a number, true, false or null."""
    if isinstance(data, dict):
        return data
    if isinstance(data, str):
        return {"text": data}
    if isinstance(data, list):
        return ArrayRecord(messages=data) if data and all(isinstance(item, dict) for item in data) else ArrayRecord(text=data)
    return None


def json_value(data: bytes) -> Any:
    """The JSON value in ``data``: one JSONL line, or a small ``.json`` file read whole. orjson reads
    nearly every one; what it refuses is read again by the standard library, which also takes:

    - ``NaN`` and ``Infinity``, which Python's ``json.dumps`` writes for a missing float;
    - integers past 64 bits;
    - an escaped lone surrogate ("\\ud83d", an emoji cut in half, common in scraped chats), which
      becomes U+FFFD so that the rest of its text is scanned;
    - a byte-order mark at the start of the line (files joined with ``cat``).

    A ValueError says what is wrong with a line that neither reads: not UTF-8, or not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: byte 0x{data[exc.start]:02x} at byte {exc.start + 1} of the line (convert the file: "
                         "iconv -f LATIN1 -t UTF-8, or from the encoding it is in)") from None
    try:  # (a byte-order mark inside: files joined by cat)
        return _without_lone_surrogates(json.loads(text.removeprefix("\ufeff")))
    except (ValueError, RecursionError):  # (nested past Python's recursion limit: orjson's 1,024 levels is more)
        raise ValueError(f"not valid JSON ({problem})") from None


def json_objects(lines: Iterable[str], path: str | Path, hint: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a small JSON Lines file that decontam reads as
    a whole (model results, curated templates): a line that is not a JSON object is an ``InputError``
    at ``path:line``, with ``hint``. ``lines`` are split at newlines only: ``str.splitlines`` also
    splits at U+2028, form feeds and the like, which JSON strings may hold raw (a model's output)."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line_no}: not valid JSON ({exc})", hint) from exc
        if not isinstance(value, dict):
            raise InputError(f"{path}:{line_no}: a JSON {type(value).__name__}, not an object", hint)
        yield line_no, value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins an escaped pair into one character; what is left is alone


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def is_json_array(source: str) -> bool:
    """A ``.json`` file (compressed or not) whose first character (after spaces and a byte-order mark) is ``[``.

    A ``.json`` file that starts with ``{`` is JSONL when its first line is a whole JSON value;
    otherwise it is one pretty-printed document, which is not a corpus (an ``InputError``)."""
    if source == "-" or not source.endswith(JSON_SUFFIXES):
        return False
    with damaged_input(source), open_input(source) as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"[":
        return True
    if head[:1] == b"{":
        with damaged_input(source), open_input(source) as handle:  # opened again: a zstd stream cannot seek back
            first_line = handle.readline()
            try:
                json_value(first_line)
            except ValueError:
                raise InputError(f"{source} holds one JSON document spread over many lines, not one record per line",
                                 "decontam reads JSONL and .json files holding one array of records; "
                                 "a list inside an object converts with `jq -c '.data[]' FILE > FILE.jsonl`") from None
    return False


def _iter_json_array(source: str) -> Iterator[Record | MalformedRow]:
    """The elements of a JSON array (``json_array_elements``); row = 0-based position in the array."""
    for row, data in enumerate(json_array_elements(source)):
        record = record_of_value(data)
        if record is None:
            yield MalformedRow(source, row + 1, f"a JSON {_json_type(data)}, not an object")
        else:
            yield Record(source, row, record, record_id_of(data) if record is data else None)


JSON_ARRAY_WHOLE_BYTES = 256 << 20  # the largest .json file read whole where ijson refuses it


def json_array_elements(source: str) -> Iterator[Any]:
    """The elements of a ``.json`` file holding one array, streamed (ijson). A file that ijson refuses
    but Python's json reads -- with ``NaN`` or ``Infinity``, which ``json.dump`` writes for a missing
    float -- is read whole by the standard library where it holds at most ``JSON_ARRAY_WHOLE_BYTES``,
    and the elements after those already given follow. Otherwise an ``InputError`` says where it stopped."""
    import ijson

    given = 0
    with open_past_bom(source) as handle:
        try:
            for element in ijson.items(handle, "item", use_float=True):
                yield element
                given += 1
            return
        except ijson.JSONError as exc:
            error = exc
    elements = _json_array_whole(source)
    if elements is None:
        problem = str(error).splitlines()[0]
        raise InputError(f"{source} is not valid JSON after its first {given:,} element{'' if given == 1 else 's'} ({problem})",
                         "fix the file, or write it as JSONL (one record per line), where a bad line is skipped and counted") from error
    yield from elements[given:]


def _json_array_whole(source: str) -> list | None:
    """The array of a small ``.json`` file as ``json_value`` reads it, or None."""
    with open_past_bom(source) as handle:
        data = handle.read(JSON_ARRAY_WHOLE_BYTES + 1)
    if len(data) > JSON_ARRAY_WHOLE_BYTES:
        return None
    try:
        value = json_value(data)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


@contextlib.contextmanager
def open_past_bom(source: str) -> Iterator[Any]:
    """The file opened (decompressed) for reading, past its UTF-8 byte-order mark if it has one
    (ijson does not skip it; opened twice, since a zstd stream cannot seek back)."""
    with open_input(source) as probe:
        bom = probe.read(3) == b"\xef\xbb\xbf"
    with open_input(source) as handle:
        if bom:
            handle.read(3)
        yield handle


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _lines_until(handle, length: int) -> Iterator[bytes]:
    """The lines of a byte range (a shard starts at a line start and ends just after a newline)."""
    done = 0
    for line in handle:
        if done >= length:
            return
        done += len(line)
        yield line


def open_parquet(source: str):
    """A ``pyarrow.parquet.ParquetFile`` of a local or remote file; a damaged one is an ``InputError``."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(open_input(source) if is_url(source) else source)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise InputError(f"cannot read Parquet file {source}: {exc}", "check that the file is complete") from exc


def _iter_parquet(source: str, *, row_groups: tuple[int, int] | None = None, first_row: int = 0) -> Iterator[Record | MalformedRow]:
    parquet = open_parquet(source)
    row = first_row
    groups = list(range(*row_groups) if row_groups is not None else range(parquet.num_row_groups))
    if not groups:
        return
    # batches of rows, not whole row groups, become Python objects: a file written as one big row group
    # would otherwise hold all its rows as dicts at once
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups):
        for data in batch.to_pylist():
            yield Record(source, row, data, record_id_of(data))
            row += 1


def csv_records(source: str, handle) -> Iterator[tuple[int, list[str], str]]:
    """(line the record starts on, its fields, its text as read) of every record of a CSV or TSV file
    opened as text with ``newline=""``, the header included. A quoted field may hold line breaks; a
    blank line is a record without fields. A quote still open at the end of the file is an error, not
    one last field that swallowed the rows after it."""
    delimiter = "\t" if without_compression(source).endswith(".tsv") else ","
    csv.field_size_limit(2**31 - 1)  # documents are longer than the 128 KB default
    taken: list[str] = []

    def lines() -> Iterator[str]:
        for line in handle:
            taken.append(line)
            yield line

    held = None  # each record is handed on once the next one is read: the last must be checked first
    start, text = 1, ""  # the line the record starts on, its text
    try:
        for fields in csv.reader(lines(), delimiter=delimiter):
            start += text.count("\n") or bool(text)
            text = "".join(taken)
            taken.clear()
            if held is None and "\x00" in text:  # a header row never holds a zero byte; UTF-16 text does
                raise _utf16_error(source)
            if held is not None:
                yield held
            held = (start, fields, text)
    except csv.Error as exc:
        raise InputError(f"cannot read {source} near line {start}: {exc}", "check the file's quoting") from exc
    if held is None:
        return
    try:
        list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):  # (strict mode also objects to quoting the reader accepts)
            raise InputError(f"{source}: the quoted field opened on line {start} is never closed",
                             "fix the quoting there; the rest of the file would be one field") from None
    yield held


@contextlib.contextmanager
def csv_records_as_bytes(source: str) -> Iterator[Iterator[tuple[int, list[str], bytes]]]:
    """``csv_records`` of a CSV or TSV file (the header first), each record with its very bytes (bytes
    that are not UTF-8 included): for copying or cutting the file as it is."""
    with open_input(source) as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        yield ((line, fields, text.encode("utf-8", "surrogateescape")) for line, fields, text in csv_records(source, handle))


# What a file's first bytes say it is, against what its name says
_MAGIC = ((b"\x1f\x8b", ".gz", "gzip-compressed"), (b"\x28\xb5\x2f\xfd", ".zst", "zstd-compressed"),
          (b"BZh", ".bz2", "bzip2-compressed"), (b"\xfd7zXZ\x00", ".xz", "xz-compressed"),
          (b"PAR1", ".parquet", "a Parquet file"), (b"PK\x03\x04", ".zip", "a zip archive"))


def check_content_matches_name(path: str) -> None:
    """An ``InputError`` where a local file's first bytes say another format than its name, before
    anything is scanned. Read by its name, a gzip file named ``.jsonl`` was refused after the scan as
    "not UTF-8 ... convert it from Latin-1", one named ``.csv`` as UTF-16, and a ``.parquet`` file that
    was not one was a pyarrow traceback."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(10)
            if head.startswith(b"PAR1") and not path.lower().endswith(".parquet"):  # (a text may start so; Parquet ends so too)
                handle.seek(-4, os.SEEK_END)
                head = head if handle.read(4) == b"PAR1" else b""
    except OSError:
        return  # (the reader reports what it cannot open)
    if head.startswith(b"BZh") and head[4:10] != b"\x31\x41\x59\x26\x53\x59":  # (a text may start so: not bzip2's block)
        head = b""
    found = next(((suffix, what) for magic, suffix, what in _MAGIC if head.startswith(magic)), None)
    name = path.lower()
    named = next((suffix for suffix in (*COMPRESSED, ".parquet") if name.endswith(suffix)), None)
    if found is None:
        if named == ".parquet":
            raise InputError(f"{path} is not a Parquet file (it does not start with PAR1)",
                             "a JSON Lines file is named .jsonl, a CSV file .csv; a Parquet file cut short must be written again")
        return
    suffix, what = found
    if suffix == named:
        return
    if suffix == ".zip":
        raise InputError(f"{path} is {what}", "unzip it and scan what it holds")
    if named == ".parquet":
        raise InputError(f"{path} is {what}, not a Parquet file",
                         "decompress it, or name it by what it holds (.jsonl.gz, .csv.gz...)")
    plain = path[: -len(named)] if named in COMPRESSED else path
    rename = plain + suffix if suffix in COMPRESSED else f"{plain.rsplit('.', 1)[0]}.parquet"
    raise InputError(f"{path} is {what}, but its name says {'a ' + named + ' file' if named else 'uncompressed text'}",
                     f"rename it {rename}: the name picks how it is read")


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text: its byte-order mark, or the zero bytes between ASCII characters."""
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or len(head) >= 8 and (not any(head[1:8:2]) or not any(head[0:8:2]))


def _utf16_error(source: str) -> InputError:
    return InputError(f"{source} is UTF-16 text; decontam reads UTF-8",
                      f"convert it: iconv -f UTF-16 -t UTF-8 {source} > converted (Windows PowerShell's > and Out-File write UTF-16)")


def without_compression(name: str) -> str:
    """The name without its compression suffix (``c.tsv.gz`` -> ``c.tsv``)."""
    return name.removesuffix(next((packed for packed in COMPRESSED if name.endswith(packed)), ""))


def _iter_csv(source: str, *, payload: bytes | None = None, first_row: int = 0,
              first_line: int | None = None) -> Iterator[Record | MalformedRow]:
    """Rows of a CSV (TSV) file as records keyed by its header; row = 0-based position after the header.
    ``payload``: the header and some of the file's records (rows from ``first_row``, lines from ``first_line``)."""
    with (io.BytesIO(payload) if payload is not None else open_input(source)) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as handle:
        records = csv_records(source, handle)
        first = next(records, None)
        if first is None:
            return
        names = _column_names(first[1])
        if not names:
            raise InputError(f"the first line of {source} is empty", "a CSV file starts with its header row")
        shift = None  # local line numbers of a piece -> the file's
        for row, (line_no, fields, text) in enumerate(records, start=first_row):  # reported as row + 1, as findings are
            shift = shift if shift is not None else (first_line - line_no if first_line is not None else 0)
            line_no += shift
            if not fields:
                yield MalformedRow(source, row + 1, f"empty line (line {line_no} of the file)")
            elif len(fields) > len(names):
                yield MalformedRow(source, row + 1, f"{len(fields)} fields, the header has {len(names)} (line {line_no} of the file)")
            else:
                data = dict(zip(names, fields + [None] * (len(names) - len(fields))))
                yield Record(source, row, data, record_id_of(data), len(text))


def text_records(handle) -> Iterator[tuple[int, bytes]]:
    """(0-based line it starts on, its bytes) of every record of a text file opened as bytes: whole
    lines, cut before a line that follows a blank line once a record holds ``TEXT_RECORD_BYTES``, or
    before any line once it holds ``TEXT_RECORD_MAX_BYTES``. The records' bytes are the file's, in
    order; each cut depends only on where its record starts, so a piece of the file that starts at a
    record start is cut the same."""
    held: list[bytes] = []
    size = start = 0
    after_blank = False
    for line_no, line in enumerate(handle):
        if held and (size >= TEXT_RECORD_MAX_BYTES or size >= TEXT_RECORD_BYTES and after_blank and line.strip()):
            yield start, b"".join(held)
            held, size, start = [], 0, line_no
        held.append(line)
        size += len(line)
        after_blank = not line.strip()
    if held:
        yield start, b"".join(held)


def lines_in(data: bytes) -> int:
    """How many lines a record of a text file holds (its last one may lack a line break)."""
    return data.count(b"\n") + (not data.endswith(b"\n"))


def _iter_text(source: str, *, payload: bytes | None = None, first_line: int = 1) -> Iterator[Record | MalformedRow]:
    """A plain text file's ``text_records`` as records ``{"text": ...}``; row = the 0-based line the
    record starts on, so that ``file:row+1`` is its first line. ``payload``: whole records of the file,
    the first on line ``first_line`` (1-based)."""
    with io.BytesIO(payload) if payload is not None else open_input(source) as handle:
        for start, data in text_records(handle):
            row = first_line - 1 + start
            if row == 0 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            elif row == 0 and _looks_utf16(data[:8]):
                raise _utf16_error(source)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad, last = row + 1 + data.count(b"\n", 0, exc.start), row + lines_in(data)
                held = f"line {last}" if last == row + 1 else f"lines {row + 1}-{last}"
                yield MalformedRow(source, row + 1, f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {bad}; {held} not scanned "
                                                    "(convert the file: iconv -f LATIN1 -t UTF-8, or from the encoding it is in)")
                continue
            yield Record(source, row, {"text": text}, size=len(data))


def _column_names(header: list[str]) -> list[str]:
    """The header's names, made unique ("text", "text.1") and never empty ("column_3")."""
    names: list[str] = []
    for i, name in enumerate(header):
        name = name.strip() or f"column_{i + 1}"
        base, k = name, 0
        while name in names:
            k += 1
            name = f"{base}.{k}"
        names.append(name)
    return names


def _iter_dataset(source: str) -> Iterator[Record | MalformedRow]:
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"reading {source} needs the `datasets` package", 'pip install "decontam[hf]"') from exc
    try:
        if source.startswith("hf:"):
            hub_id, _, query = source[3:].lstrip("/").partition("?")
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            dataset = datasets.load_dataset(hub_id, params.get("config"), split=params.get("split", "train"),
                                            revision=params.get("revision"), streaming=True)
        else:
            dataset = datasets.load_from_disk(source)
            if isinstance(dataset, datasets.DatasetDict):
                raise InputError(f"{source} holds several splits {list(dataset)}", f"name one split folder, e.g. {source}/{next(iter(dataset))}")
    except InputError:
        raise
    except Exception as exc:  # datasets raises many types (network, missing config, missing split)
        raise InputError(f"cannot load dataset {source}: {exc}", f"check the id, config and split; {hub_offline_hint('the scan')}") from exc
    for row, data in enumerate(dataset):
        yield Record(source, row, dict(data), record_id_of(data))


def hub_offline_hint(option: str) -> str:
    """What to do offline about a hub dataset that would not load."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return f"it is not in the datasets cache: point {option} at a local copy"
    return (f"offline, point {option} at a local copy, or set HF_HUB_OFFLINE=1 to read it from the datasets cache "
            "(without it, an unreachable hub costs ~24 s of retries)")


def record_id_of(data: Mapping[str, Any]) -> str | None:
    for key in RECORD_ID_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None


def segments_of(data: Mapping[str, Any], fields: Iterable[str] | None = None) -> list[Segment]:
    """Every text segment of a record, with its field path and role."""
    out: list[Segment] = []
    keys = list(fields) if fields is not None else [k for k in data if not _is_metadata(k, data[k])]
    for key in keys:
        if key in data:
            _walk(data[key], str(key), _role_from_name(str(key)), out)
    return out


def _walk(value: Any, path: str, role: str | None, out: list[Segment]) -> None:
    """The segments of one field's value, depth first in the record's order, on a stack of its own:
    orjson reads a row nested a thousand levels deep, which would overflow Python's."""
    stack: list[tuple[Any, str, str | None]] = [(value, path, role)]
    while stack:
        value, path, role = stack.pop()
        if isinstance(value, (bytes, bytearray)):  # Parquet written by Spark or Impala: text as unannotated binary
            value = _bytes_as_text(value)
        if isinstance(value, str):
            if len(value) < MIN_SEGMENT_CHARS:
                continue
            if (conversation := _conversation_in(value)) is not None:  # a chat exported to CSV or Parquet as JSON text
                stack.append((conversation, path, role))
                continue
            turns = _split_template(value) or _split_transcript(value)
            if turns is None:
                out.append(Segment(path, role, value))
            else:
                out += [Segment(f"{path}.turn[{i}]", turn_role, text) for i, (turn_role, text) in enumerate(turns)]
        elif isinstance(value, Mapping):
            message_role = value.get("role", value.get("from"))
            if isinstance(message_role, str):
                role = ROLE_ALIASES.get(message_role.lower(), message_role.lower())
            children = [(child, f"{path}.{key}", role if role is not None else _role_from_name(str(key)))
                        for key, child in value.items() if not _is_metadata(key, child)]
            stack += reversed(children)
        elif isinstance(value, (list, tuple)):
            stack += [(value[i], f"{path}[{i}]", role) for i in range(len(value) - 1, -1, -1)]


def _conversation_in(text: str) -> list | None:
    """The messages of a conversation written as JSON text ('[{"role": "user", "content": ...}, ...]',
    as a CSV or Parquet export of a messages column holds it; pandas' to_csv writes Python's repr,
    "[{'role': 'user', ...}]", read as a literal, never run); None for any other text, JSON included
    (a model's answer may be a JSON document: that is its text)."""
    if not (text.startswith("[{") and text.rstrip().endswith("}]")):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        if not text.startswith("[{'"):
            return None
        import ast

        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    chat = isinstance(value, list) and all(isinstance(m, dict) and ("role" in m or "from" in m) and ("content" in m or "value" in m)
                                           for m in value)
    return value if chat else None


def _is_metadata(key: Any, value: Any) -> bool:
    """A field that describes the record ("source": "sharegpt", "model": "gpt-4", a URL) rather than
    holds its text; under such a name, a string of several words is text all the same (translation
    and summarization sets keep their input in "source")."""
    return str(key).lower() in META_FIELDS and not (isinstance(value, str) and len(value.split()) >= METADATA_MAX_WORDS)


def _split_template(text: str) -> list[tuple[str | None, str]] | None:
    """Text in a chat template (ChatML, Llama 2/3, Mistral, Gemma, the Alpaca prompt) ->
    [(role, text)], end-of-turn tokens dropped; text before the first turn has no role. None for
    other text, and for a text whose first turn opens after ``_TEMPLATE_HEAD`` characters (an
    article that quotes a template is not in one)."""
    head = text[:_TEMPLATE_HEAD]  # the head only, and no loop: this runs for every string
    if not ("<|im_start|>" in head or "<|start_header_id|>" in head or "<start_of_turn>" in head
            or "[INST]" in head or "### Instruction" in head):
        return None
    marks = list(_TEMPLATE_TURN.finditer(text))
    if not marks or all(m["alpaca"] for m in marks) and not (len(marks) >= 2 and marks[-1]["alpaca"] == "Response"):
        return None  # "### Input:" alone is a markdown heading, not an Alpaca prompt
    pieces = [(None, text[: marks[0].start()])]
    for mark, nxt in zip(marks, marks[1:] + [None]):
        pieces.append((_template_role(mark), text[mark.end() : nxt.start() if nxt else len(text)]))
    turns = [(role, _END_TOKENS.sub("", body).strip()) for role, body in pieces]
    return [(role, body) for role, body in turns if body] or None


def _template_role(mark: re.Match) -> str:
    if mark["inst"]:
        return _INST_ROLES[mark["inst"]]
    if mark["alpaca"]:
        return _TEMPLATE_ROLES[mark["alpaca"].lower()]
    name = (mark["chatml"] or mark["llama3"] or mark["gemma"]).lower()
    return ROLE_ALIASES.get(name, name)


def _split_transcript(text: str) -> list[tuple[str, str]] | None:
    """hh-rlhf style "\\n\\nHuman: ... \\n\\nAssistant: ..." -> [(role, text)], None for other text."""
    if ":" not in text[:16] or "Human:" not in text and "User:" not in text:  # the first turn opens at once
        return None
    marks = list(_TRANSCRIPT_TURN.finditer(text))
    if len(marks) < 2 or marks[0].start() > 2:
        return None
    turns = []
    for mark, nxt in zip(marks, marks[1:] + [None]):
        body = text[mark.end() : nxt.start() if nxt else len(text)].strip()
        if body:
            turns.append((ROLE_ALIASES[mark.group(1).lower()], body))
    return turns


@functools.lru_cache(maxsize=4096)  # a corpus has few distinct field names; this runs for each string
def _role_from_name(name: str) -> str | None:
    lowered = name.lower().replace(" ", "_")
    if lowered in USER_FIELDS:
        return "user"
    if lowered in ASSISTANT_FIELDS or lowered.startswith("response"):
        return "assistant"
    if lowered == "system":
        return "system"
    return None


def describe_keys(data: Mapping[str, Any]) -> list[str]:
    return sorted(str(k) for k in data)
