"""edgeseg/models/bilinear.py: the MatMul form of bilinear sampling (traced for TFLite) reads what
``grid_sample`` reads, inside the map, across its border and outside it."""

import pytest
import torch
import torch.nn.functional as F

from edgeseg.models.bilinear import grid_sample, matmul_sampling, sample_product_grid
from edgeseg.models.point_sample import sample_features
from edgeseg.models.roi_align import roi_align


def test_matmul_form_equals_grid_sample_everywhere():
    torch.manual_seed(0)
    features = torch.randn(2, 5, 7, 9)
    grid = torch.rand(2, 4, 6, 2) * 2.6 - 1.3  # a third of the points outside the map or across its border
    grid[0, 0, :3] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])  # corners and centre exactly
    expected = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.equal(grid_sample(features, grid), expected)
    with matmul_sampling():
        got = grid_sample(features, grid)
    assert got.shape == expected.shape and (expected == 0).any()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_product_grid_and_the_samplers_built_on_it():
    torch.manual_seed(1)
    features = torch.randn(2, 4, 8, 10)
    gx, gy = torch.rand(2, 3, 5) * 2.4 - 1.2, torch.rand(2, 3, 6) * 2.4 - 1.2
    boxes = torch.tensor([[[2.0, 3.0, 30.0, 20.0], [-8.0, 1.0, 12.0, 40.0]], [[0.0, 0.0, 40.0, 32.0], [5.5, 6.5, 9.0, 9.5]]])
    coords = torch.rand(2, 11, 2) * 1.2 - 0.1
    plain = (sample_product_grid(features, gx, gy), roi_align(features, boxes, 7, 4.0), sample_features(features, coords))
    with matmul_sampling():
        matmul = (sample_product_grid(features, gx, gy), roi_align(features, boxes, 7, 4.0),
                  sample_features(features, coords))
    assert plain[0].shape == (2, 3, 4, 6, 5) and plain[1].shape == (4, 4, 7, 7)
    for a, b in zip(plain, matmul):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # the product grid is the grid it spans
    i, j = 2, 3
    point = torch.stack([gx[1, 1, j], gy[1, 1, i]]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(plain[0][1, 1, :, i, j], grid_sample(features[1:], point)[0, :, 0, 0])


def test_the_mode_is_scoped():
    with matmul_sampling():
        with pytest.raises(RuntimeError):
            with matmul_sampling(False):
                raise RuntimeError
        from edgeseg.models import bilinear
        assert bilinear._MATMUL
    assert not bilinear._MATMUL


def test_bf16_features_are_sampled_in_float32():
    """Under bf16 autocast the features arrive in bf16, often channels-last; torch's bf16 CPU
    grid_sample returns garbage on those (1e34 here, torch 2.13), and bf16 coordinates are off by
    up to a cell. Sampling is done in float32."""
    torch.manual_seed(2)
    features = torch.randn(2, 16, 32, 32).bfloat16().contiguous(memory_format=torch.channels_last)
    grid = torch.rand(2, 50, 40, 2) * 2 - 1
    expected = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    for coords in (grid, grid.bfloat16()):
        got = grid_sample(features, coords)
        assert got.dtype == torch.float32
        assert (got - expected).abs().max() < (1.0 if coords.dtype == torch.bfloat16 else 1e-6)  # not 1e34
    assert sample_features(features, torch.rand(2, 30, 2)).dtype == torch.float32
