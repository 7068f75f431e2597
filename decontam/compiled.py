"""Compiled kernels (``_kernels``, numba) for the hot loops of a scan, where numba can be imported.

Every kernel has a twin in numpy or polars that gives the same values; the twins run where numba is
missing, or when ``DECONTAM_NUMBA=0`` is set (to rule the kernels out when something looks wrong).
"""

from __future__ import annotations

import os

_kernels = None  # the compiled module once imported; False where numba is missing


def kernels():
    """The ``_kernels`` module, or None where numba is missing or ``DECONTAM_NUMBA=0`` is set."""
    global _kernels
    if os.environ.get("DECONTAM_NUMBA", "1") == "0":
        return None
    if _kernels is None:
        try:
            from . import _kernels as compiled

            _kernels = compiled
        except ImportError:
            _kernels = False
    return _kernels or None
