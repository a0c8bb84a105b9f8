"""inferplane's core: what every room shares (the CLI for now; configuration and store later)."""

__version__ = "0.1.0"
