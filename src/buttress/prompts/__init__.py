"""Prompts as code: prompt files under ``prompts/``, their versions, labels and rendering.

A prompt is ``prompts/NAME.md``: YAML front matter (description, model hints, params, output
schema reference, declared variables) and a Jinja2 body rendered in a sandbox, split into
messages by ``[system]``/``[user]``/``[assistant]`` lines. Its version is the content hash, plus
the git commit when committed. ``prompts.lock`` pins labels (production, staging) to versions.

Owns: parsing, rendering, versions, git history, labels, lint. Must not import the runtime, the
ledger, the gateway or the CLI; git runs only when a commit or an old version is asked for.
"""

from buttress.prompts.frontmatter import FrontMatter, PromptParams
from buttress.prompts.history import GitHistory, Revision
from buttress.prompts.lint import Problem, lint
from buttress.prompts.lock import LOCK_FILE
from buttress.prompts.output import OutputSchema, resolve_output
from buttress.prompts.prompt import Prompt, content_version
from buttress.prompts.store import DEVELOPMENT, PromptStore, split_ref

__all__ = [
    "DEVELOPMENT",
    "LOCK_FILE",
    "FrontMatter",
    "GitHistory",
    "OutputSchema",
    "Problem",
    "Prompt",
    "PromptParams",
    "PromptStore",
    "Revision",
    "content_version",
    "lint",
    "resolve_output",
    "split_ref",
]
