"""buttress: the engineering around an LLM call.

Importing this package does no I/O, reads no environment and starts nothing.
"""

from buttress.errors import (
    AllAttemptsFailed,
    ButtressError,
    ConfigError,
    DeadlineExceeded,
    ProviderError,
)
from buttress.types import CallRequest, Completion, Message, StreamChunk, Tool, ToolCall, Usage

__version__ = "0.1.0"

__all__ = [
    "AllAttemptsFailed",
    "ButtressError",
    "CallRequest",
    "Completion",
    "ConfigError",
    "DeadlineExceeded",
    "Message",
    "ProviderError",
    "StreamChunk",
    "Tool",
    "ToolCall",
    "Usage",
    "__version__",
]
