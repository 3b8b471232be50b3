"""Command-line entry points (quantir-opt, quantir-run)."""
