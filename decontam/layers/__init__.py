"""Detection layers of an index. Each module builds its arrays from the index's item parts, saves and
loads them as plain ``.npy`` files (never pickle), and matches a batch of corpus segments."""

from .artifact import ArtifactLayer, ArtifactParams
from .embedding import EmbeddingLayer, EmbeddingParams
from .minhash import MinHashLayer, MinHashParams
from .ngram import NgramLayer, NgramParams

__all__ = ["ArtifactLayer", "ArtifactParams", "EmbeddingLayer", "EmbeddingParams", "MinHashLayer", "MinHashParams", "NgramLayer", "NgramParams"]
