"""Layer 8, cli: the `autoshield` command, thin over the library (`python -m autoshield.cli` runs it too)."""

from autoshield.cli.app import main

__all__ = ["main"]
