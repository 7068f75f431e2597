"""Detection quality per contamination class, for decontam's layers and the rules peers use.

    python -m benchmarks.quality [--per-class 100] [--no-embedding]

Labelled sets are generated from ../shared/data with a fixed seed (``sets.py``), every detector sees
the same rows (``detectors.py``), and ``metrics.py`` scores them: recall per positive class,
false-positive rate per negative class, precision and F1 of each positive class against all the
negatives pooled.
"""
