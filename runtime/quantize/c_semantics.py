"""numpy spellings of the C operations ggml's reference quantizers are built from.

Byte-identical output needs more than the same formulas: every float32 rounding,
every C integer conversion and every summation order has to be the one the C
code performs. The helpers here each reproduce one such operation exactly,
vectorized over whole arrays. All float inputs must already be float32 arrays;
none of these helpers promotes to float64.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

# nearest_int adds 1.5 * 2**23: the sum's low mantissa bits are then the rounded
# integer (ties to even, the FPU's rounding mode) offset by 2**22.
_ROUNDING_MAGIC = F32(12582912.0)
_MANTISSA_MASK = np.int32(0x007FFFFF)
_MANTISSA_OFFSET = np.int32(0x00400000)

# float32 values in [-2**31, 2**31) convert to int32 exactly; everything else
# (NaN, inf, larger magnitudes) is what x86-64's cvttss2si turns into INT_MIN.
_INT32_LOW = F32(-2147483648.0)
_INT32_HIGH = F32(2147483648.0)
_INT32_MIN = np.int32(-2147483648)
# Values strictly between these truncate into int8's range.
_INT8_LOW = F32(-129.0)
_INT8_HIGH = F32(128.0)


def nearest_int(values: np.ndarray) -> np.ndarray:
    """ggml's ``nearest_int``: round half to even through the 12582912 magic add.

    Bit-exact for every float32 input, including the ones outside the
    +-4194303 range its (release-disabled) assert guards, NaN and inf: the
    same float add and the same mantissa extraction are performed.
    Returns int32.
    """
    shifted = np.add(values, _ROUNDING_MAGIC, dtype=F32)
    return (shifted.view(np.int32) & _MANTISSA_MASK) - _MANTISSA_OFFSET


def c_float_to_int(values: np.ndarray) -> np.ndarray:
    """C's float -> int conversion (truncation) as compiled for x86-64.

    In range this is plain truncation toward zero. Out of range (and for NaN)
    C leaves it undefined; x86-64 compilers emit cvttss2si, which yields
    INT_MIN, and that is what ggml's binaries compute: we reproduce it
    explicitly instead of relying on numpy's platform-dependent cast.
    Returns int32.
    """
    if values.size and _INT32_LOW <= values.min() and values.max() < _INT32_HIGH:
        return values.astype(np.int32)  # all in range (a NaN fails the test)
    truncated = np.trunc(values)
    in_range = (truncated >= _INT32_LOW) & (truncated < _INT32_HIGH)
    converted = np.where(in_range, truncated, F32(0)).astype(np.int32)
    return np.where(in_range, converted, _INT32_MIN)


def c_float_to_int8(values: np.ndarray) -> np.ndarray:
    """``(int8_t)f`` and, viewed as uint8, ``(uint8_t)f``, as x86-64 computes them.

    gcc converts to a 32-bit int first (``c_float_to_int``) and keeps its low
    byte; when every value truncates into int8's range that is a direct cast.
    Returns int8.
    """
    if values.size and _INT8_LOW < values.min() and values.max() < _INT8_HIGH:
        return values.astype(np.int8)  # all in range (a NaN fails the test)
    return wrap_int8(c_float_to_int(values)).astype(np.int8)


def wrap_int8(values: np.ndarray) -> np.ndarray:
    """Store an int into C's ``int8_t`` (two's-complement wrap); returns int32."""
    return ((values.astype(np.int32) + 128) & 0xFF) - 128


def roundf(values: np.ndarray) -> np.ndarray:
    """C's ``roundf``: round half away from zero (float32 in, float32 out).

    ``values - trunc(values)`` is exact in float32 and so is doubling it;
    truncating the double gives -1, 0 or +1 exactly when the fraction's
    magnitude reaches one half. Unlike ``floor(x + 0.5)`` there is no double
    rounding (0.49999997 + 0.5 rounds up to 1.0 in float32), and unlike a
    np.where on the fraction there is no data-dependent branch (several times
    slower on random data).
    """
    truncated = np.trunc(values)
    fraction = values - truncated
    fraction += fraction
    result = truncated + np.trunc(fraction, out=fraction)
    # Integral values (+-0 and +-inf among them) round to themselves; the
    # arithmetic above would lose the sign of -0.0 and turn inf into NaN.
    np.copyto(result, values, where=truncated == values)
    return result


def fp16_bits(values: np.ndarray) -> np.ndarray:
    """ggml's fp32 -> fp16 conversion (round to nearest even, overflow to inf).

    numpy's float16 cast rounds the same way and also keeps the sign of a NaN
    with a quiet payload (0x7E00 / 0xFE00), like ggml. Returns little-endian
    float16, ready to be viewed as the two stored bytes.
    """
    return values.astype("<f2")


def sequential_sum(terms: np.ndarray) -> np.ndarray:
    """``float s = 0; for (i...) s += terms[i];`` along axis 0, left to right.

    ggml's loops add one term at a time into a float32 accumulator that
    starts at +0.0 (which also fixes the sign of an all-negative-zero sum).
    ``np.sum`` promises no order (it sums pairwise along contiguous axes), so
    the order is spelled out here. Returns float32 of shape terms.shape[1:].
    """
    total = np.zeros(terms.shape[1:], dtype=F32)
    for term in terms:
        np.add(total, term, out=total)
    return total


def running_min_max(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``min = max = x[0]; for i >= 1: if (x[i] < min) ...; if (x[i] > max) ...``.

    Along axis 0. Emulated step by step (rather than np.min) so that among
    equal values, e.g. -0.0 and +0.0, the one C keeps is the one returned.
    """
    low = values[0].copy()
    high = values[0].copy()
    for value in values[1:]:
        np.copyto(low, value, where=value < low)
        np.copyto(high, value, where=value > high)
    return low, high


def running_abs_max(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``amax = 0, max = 0; if (fabsf(x) > amax) { amax = fabsf(x); max = x; }``.

    Along axis 0. Returns (amax, max): the largest magnitude and the signed
    value of its FIRST occurrence (+0.0 for an all-zero column), exactly as
    ggml's strict comparison picks it.
    """
    amax = np.zeros(values.shape[1:], dtype=F32)
    signed = np.zeros(values.shape[1:], dtype=F32)
    for value in values:
        magnitude = np.abs(value)
        larger = magnitude > amax
        np.copyto(amax, magnitude, where=larger)
        np.copyto(signed, value, where=larger)
    return amax, signed


def running_max_from_zero(values: np.ndarray) -> np.ndarray:
    """``m = 0; if (v > m) m = v;`` along axis 0 (NaN never wins, unlike np.max)."""
    best = np.zeros(values.shape[1:], dtype=F32)
    for value in values:
        np.copyto(best, value, where=value > best)
    return best
