"""Composition roots: what a server subcommand builds in its own (monkey-patched) process."""
