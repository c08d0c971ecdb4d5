"""``python -m titan_actors.cli``: the same as the ``titanctl`` script."""

from .app import main

main()
