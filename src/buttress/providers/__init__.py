"""Provider adapters: translate ``CallRequest`` to a wire format and back, and classify errors.

Owns: one module per wire format (OpenAI-compatible, Anthropic, Gemini, local llama.cpp) and the
registry that builds them from config. Must not import ``buttress.runtime``, the ledger, the
gateway or the CLI: adapters classify errors, the runtime decides what to do about them.
"""

from buttress.providers.base import Provider, assemble_stream

__all__ = ["Provider", "assemble_stream"]
