"""The ``buttress`` command line (Typer + Rich), one module per command group.

Owns: commands, terminal output and reading the outside world. The CLI is the only part of
buttress that reads environment variables and project files on the user's behalf; it hands
everything else typed values. Nothing imports the CLI.
"""
