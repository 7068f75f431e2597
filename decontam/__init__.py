"""decontam: find benchmark test sets inside training corpora.

    >>> import decontam
    >>> index = decontam.build_index("my-index", ["gsm8k=test.jsonl"])        # doctest: +SKIP
    >>> result = decontam.scan(["corpus.jsonl"], index=index)                 # doctest: +SKIP
    >>> result.findings  # polars DataFrame, one row per (segment, item part, method)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import DecontamError, IndexFormatError, InputError, ParameterError  # noqa: E402
from .index import Index, IndexParams, build_index, load_index  # noqa: E402
from .scan import ScanOptions, ScanResult, scan  # noqa: E402
from .types import Finding, Record, Segment, TestItem  # noqa: E402

__all__ = [
    "DecontamError", "Finding", "Index", "IndexFormatError", "IndexParams", "InputError", "ParameterError",
    "Record", "ScanOptions", "ScanResult", "Segment", "TestItem", "build_index", "load_index", "scan",
]  # fmt: skip
