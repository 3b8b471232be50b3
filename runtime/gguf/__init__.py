"""GGUF files: reading (memory-mapped, validated), writing, and quantizing.

The stable import path for users is ``quantir.runtime.gguf_io``, which
re-exports this package's public names.
"""

from quantir.runtime.gguf.errors import (
    GGUFError,
    GGUFFormatError,
    UnsupportedTensorTypeError,
)
from quantir.runtime.gguf.ggml_types import (
    encoding_for_ggml_type,
    ggml_type_for_encoding,
    supported_type_names,
)
from quantir.runtime.gguf.metadata import MetadataValue
from quantir.runtime.gguf.reader import GGUFModel, GGUFTensor, open_gguf
from quantir.runtime.gguf.writer import TensorToWrite, write_gguf

__all__ = [
    "GGUFError",
    "GGUFFormatError",
    "GGUFModel",
    "GGUFTensor",
    "MetadataValue",
    "TensorToWrite",
    "UnsupportedTensorTypeError",
    "encoding_for_ggml_type",
    "ggml_type_for_encoding",
    "open_gguf",
    "supported_type_names",
    "write_gguf",
]
