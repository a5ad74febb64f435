"""The one INT8 policy for SparseInst, applied by every format module.

- Weighted Conv/MatMul/Gemm (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED in TFLite) run in INT8.
- MatMuls of two activations (IAM pooling, the mask product, PPM pooling), sigmoid/softmax, the
  IAM normalisation (Divide), the score's Multiply/Sqrt and resizes stay float.
- The first ``FLOAT_LEADING_LAYERS`` weighted layers (the stem conv and the first depthwise conv of
  the backbone) stay float: they see raw pixel statistics, and on the quickstart model INT8 there
  alone cost ~1 AP point on every runtime, while they are a few percent of the compute.
"""

FLOAT_LEADING_LAYERS = 2


def int8_layers(weighted_in_order: list[str], exclude: list[str] | None = None) -> list[str]:
    """The weighted layers to quantize: all but the leading ones and ``exclude`` (fallbacks)."""
    skip = set(exclude or [])
    return [n for n in weighted_in_order[FLOAT_LEADING_LAYERS:] if n not in skip]


def leading_float_layers(weighted_in_order: list[str]) -> list[str]:
    return weighted_in_order[:FLOAT_LEADING_LAYERS]


def next_fallback(quantized_in_order: list[str], already: list[str]) -> list[str]:
    """The next layers an accuracy-gated export keeps in float: from the input side, where the
    quickstart model measured most sensitive, doubling the float set each round."""
    remaining = [n for n in quantized_in_order if n not in set(already)]
    return remaining[: max(4, len(already))]
