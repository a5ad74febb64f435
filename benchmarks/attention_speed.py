"""One refinement attention's forward and backward on the CPU, written out (matmul, softmax,
matmul) against fused (`scaled_dot_product_attention`), at Mask Transfiner's training shape
(30 RoIs x 4 heads x (196 context + 240 node) tokens x 16 channels, a bias per key):

    python benchmarks/attention_speed.py
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=4, default=[30, 4, 436, 16], metavar=("ROIS", "HEADS", "TOKENS", "CH"))
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    k, h, t, c = args.shape
    torch.manual_seed(0)
    q, key, v = (torch.randn(k, h, t, c, requires_grad=True) for _ in range(3))
    bias = torch.randn(k, 1, 1, t)

    def written_out():
        return torch.softmax(q @ key.transpose(-1, -2) * c ** -0.5 + bias, -1) @ v

    def fused():
        return F.scaled_dot_product_attention(q, key, v, attn_mask=bias)

    print(f"max |difference|: {(written_out() - fused()).abs().max().item():.1e}")
    for _ in range(2):  # interleaved, twice
        for fn in (written_out, fused):
            for _ in range(3):
                fn().sum().backward()
            start = time.perf_counter()
            for _ in range(args.repeats):
                fn().sum().backward()
            print(f"{fn.__name__}: {(time.perf_counter() - start) / args.repeats * 1000:.1f} ms forward + backward")


if __name__ == "__main__":
    main()
