"""``python -m mssante`` runs the CLI."""

from mssante.cli import main

main()
