"""Text to unit vectors, offline: wordllama's weights and tokenizer ship inside its wheel.

wordllama looks for its tokenizer under ``wordllama/tokenizer/`` but the wheel ships it under
``wordllama/tokenizers/``; pointing ``cache_dir`` at the package finds it there, and
``disable_download`` makes a missing file an error instead of a request to Hugging Face.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buttress.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """An ``(len(texts), dim)`` float32 matrix of L2-normalised rows."""
        ...


class WordLlamaEmbedder:
    """wordllama ``l2_supercat`` at ``dim`` dimensions (64, 128, 256, 512 or 1024; it is a
    Matryoshka model, so smaller is a truncation). Loads on first use, once, thread-safely."""

    def __init__(self, dim: int = 256, config: str = "l2_supercat") -> None:
        self.dim = dim
        self.config = config
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            try:
                import wordllama
                from wordllama import WordLlama
            except ImportError as exc:
                raise ConfigError("the semantic cache needs wordllama; install the extra: "
                                  "pip install 'buttress[semantic]'", source="cache",
                                  key="semantic") from exc
            home = Path(wordllama.__file__).parent
            try:
                self._model = WordLlama.load(config=self.config, cache_dir=home,
                                             dim=256 if self.dim <= 256 else self.dim,
                                             trunc_dim=self.dim if self.dim < 256 else None,
                                             disable_download=True)
            except (FileNotFoundError, ValueError, AttributeError) as exc:
                raise ConfigError(f"cannot load the wordllama model {self.config!r} "
                                  f"(dim {self.dim}) from {home}: {exc}", source="cache",
                                  key="semantic") from exc

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        if self._model is None:
            self.load()
        vectors = self._model.embed(list(texts), norm=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)
