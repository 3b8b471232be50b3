"""GGUF files in and out: reading (memory-mapped, validated), writing, quantizing.

* ``open_gguf(path) -> GGUFModel``: validated, memory-mapped, lazy reading
  (gguf-py's reader is the test oracle, not used to read);
  ``model.metadata`` (key -> Python value, decoded when asked;
  ``metadata.array(key)`` for an array's length and a prefix without decoding
  the rest), ``model.tensors`` (``GGUFTensor``: name, ggml_type, encoding,
  logical shape, data, nbytes, as_weight()).
* ``write_gguf(path, tensors, metadata=None, arch=None)``: atomic writing of
  ``TensorToWrite`` records through gguf-py's GGUFWriter.
* ``encoding_for_ggml_type`` / ``ggml_type_for_encoding``: the mapping
  between ggml types and quantir's ``QuantizationEncoding``.

Errors: ``GGUFFormatError`` (a ValueError) for malformed files,
``UnsupportedTensorTypeError`` for using a tensor whose ggml type quantir
cannot compute with; both derive from ``GGUFError``.
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
from quantir.runtime.gguf.metadata import MetadataArray, MetadataValue
from quantir.runtime.gguf.reader import GGUFModel, GGUFTensor, open_gguf
from quantir.runtime.gguf.writer import TensorToWrite, write_gguf

__all__ = [
    "GGUFError",
    "GGUFFormatError",
    "GGUFModel",
    "GGUFTensor",
    "MetadataArray",
    "MetadataValue",
    "TensorToWrite",
    "UnsupportedTensorTypeError",
    "encoding_for_ggml_type",
    "ggml_type_for_encoding",
    "open_gguf",
    "supported_type_names",
    "write_gguf",
]
