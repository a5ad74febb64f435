"""The INT8 policy, applied by every format module; each method states its numbers in its
``Int8Policy`` (edgeseg/models/registry.py), e.g. how many leading layers stay float.

SparseInst's:

- Weighted Conv/MatMul/Gemm (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED in TFLite) run in INT8.
- MatMuls of two activations (IAM pooling, the mask product, PPM pooling), sigmoid/softmax, the
  IAM normalisation (Divide), the score's Multiply/Sqrt and resizes stay float.
- The first ``float_leading_layers`` weighted layers (the stem conv and the first depthwise conv of
  the backbone) stay float: they see raw pixel statistics, and on the quickstart model INT8 there
  alone cost ~1 AP point on every runtime, while they are a few percent of the compute.
"""

def int8_layers(weighted_in_order: list[str], leading: int, exclude: list[str] | None = None) -> list[str]:
    """The weighted layers to quantize: all but the leading ones and ``exclude`` (fallbacks)."""
    skip = set(exclude or [])
    return [n for n in weighted_in_order[leading:] if n not in skip]


def leading_float_layers(weighted_in_order: list[str], leading: int) -> list[str]:
    return weighted_in_order[:leading]


def next_fallback(quantized_in_order: list[str], already: list[str]) -> list[str]:
    """The next layers an accuracy-gated export keeps in float: from the input side, where the
    quickstart model measured most sensitive, doubling the float set each round."""
    remaining = [n for n in quantized_in_order if n not in set(already)]
    return remaining[: max(4, len(already))]
