"""Command-line entry points that run compiled graphs (quantir-run)."""
