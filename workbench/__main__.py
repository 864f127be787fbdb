"""``python -m workbench``: the ``workbench`` command (what model images run)."""

from workbench.cli import main

main()
