"""Answering calls from earlier results: exact and semantic caches over pluggable backends.

Owns the normalised request key (``keys``), the stored entry (``entry``), the backends (``memory``,
``sqlite``, ``redis``), the exact and semantic caches and ``CacheLayer``, the runtime's
``CallCache`` that routes each call by feature. It reads the runtime's values (``Call``,
``CallResult``) and must not import the ledger, config, gateway or CLI; ``client.build_cache``
turns config into a layer. Importing it loads nothing: numpy, wordllama and redis load lazily.
"""

from buttress.cache.backend import CacheBackend
from buttress.cache.layer import CacheLayer, CachePolicy
from buttress.cache.memory import MemoryBackend

__all__ = ["CacheBackend", "CacheLayer", "CachePolicy", "MemoryBackend"]
