"""`quantir encodings`: every packed weight format with its block parameters.

One row per encoding: the format family, the weights per block, the bytes per
block and the bits each weight costs. GPTQ has no fixed block: its layout
follows from its config (bits, group_size), so its row names those instead.
"""

from __future__ import annotations

from typing import Any

from quantir.dialects.encoding import GPTQ_BITS, QuantizationEncoding


def encoding_rows() -> list[dict[str, Any]]:
    """One dict per encoding, in QuantizationEncoding's order."""
    rows: list[dict[str, Any]] = []
    for encoding in QuantizationEncoding:
        if encoding.is_gguf:
            block = encoding.block_parameters
            rows.append(
                {
                    "encoding": encoding.name,
                    "format": "GGUF",
                    "weights_per_block": block.elements_per_block,
                    "bytes_per_block": block.block_size,
                    "bits_per_weight": block.block_size * 8 / block.elements_per_block,
                }
            )
        else:
            bits = "/".join(map(str, GPTQ_BITS))
            rows.append(
                {
                    "encoding": encoding.name,
                    "format": "GPTQ",
                    "weights_per_block": "group_size (config)",
                    "bytes_per_block": "-",
                    "bits_per_weight": f"{bits} (config)",
                }
            )
    return rows


def format_encodings(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table with a header line."""
    header = ["ENCODING", "FORMAT", "WEIGHTS/BLOCK", "BYTES/BLOCK", "BITS/WEIGHT"]
    keys = ["encoding", "format", "weights_per_block", "bytes_per_block", "bits_per_weight"]

    def cell(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    table = [header] + [[cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table)
