"""The files ``buttress init`` writes: a project with a worked example feature, ``triage``.

Owns: the template tree under ``project/`` (package data read with ``importlib.resources``) and
copying it. Must not import the runtime, providers or the CLI.
"""

from buttress.scaffold.files import ScaffoldFile, scaffold_files, write_scaffold

__all__ = ["ScaffoldFile", "scaffold_files", "write_scaffold"]
