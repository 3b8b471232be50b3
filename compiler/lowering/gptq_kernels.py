"""Loop nests for GPTQ dequantize and qmatmul (placeholder until written)."""


def lower_dequantize(*args, **kwargs):
    raise NotImplementedError


def lower_qmatmul(*args, **kwargs):
    raise NotImplementedError
