"""Subcommands of the ``bptt`` CLI, one module each (see ``bptt.cli``)."""
