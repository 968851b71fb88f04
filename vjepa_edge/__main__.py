"""`python -m vjepa_edge` runs the CLI."""

from vjepa_edge.cli import main

main()
