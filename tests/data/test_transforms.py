"""Training augmentations move the masks with the image.

The test image encodes each pixel's own coordinates (R = row, G = column), so after any crop,
flip or resize every output pixel says where in the original it came from, and its masks must be
the original masks at that place.
"""

import cv2
import numpy as np
import pytest

from edgeseg.data.transforms import augment, hflip, random_crop, resize

H, W = 150, 230  # < 256: a coordinate fits in a uint8


def coordinate_image():
    ys, xs = np.mgrid[0:H, 0:W]
    return np.stack([ys, xs, np.full_like(ys, 77)], -1).astype(np.uint8)


def instances():
    """Four instances with distinct labels: two boxes, a disc, and one in the top-left corner."""
    ys, xs = np.mgrid[0:H, 0:W]
    masks = np.zeros((4, H, W), np.uint8)
    masks[0, 20:70, 30:110] = 1
    masks[1, 90:140, 150:220] = 1
    masks[2] = (ys - 75) ** 2 + (xs - 120) ** 2 < 30**2
    masks[3, 0:12, 0:15] = 1
    return masks, np.array([3, 1, 0, 2], np.int64)


def source_of(image):
    """Where each output pixel came from in the original (rounded, clipped)."""
    return (np.clip(np.rint(image[..., 0].astype(float)), 0, H - 1).astype(int),
            np.clip(np.rint(image[..., 1].astype(float)), 0, W - 1).astype(int))


def assert_masks_follow(image, masks, labels, min_agreement=1.0):
    """Each output mask is the original mask of the same label, sampled where the pixels came from."""
    orig_masks, orig_labels = instances()
    ys, xs = source_of(image)
    assert masks.shape[1:] == image.shape[:2] and len(masks) == len(labels)
    for mask, label in zip(masks, labels):
        (k,) = np.flatnonzero(orig_labels == label)
        expected = orig_masks[k][ys, xs]
        assert mask.any()
        agreement = (mask == expected).mean()
        assert agreement >= min_agreement, (label, agreement)
        # and no pixel of the mask comes from outside the instance, give or take an edge pixel
        step = max((xs.max() - xs.min() + 1) / image.shape[1], (ys.max() - ys.min() + 1) / image.shape[0])
        r = 1 + int(np.ceil(step))
        near = cv2.dilate(orig_masks[k], np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        assert near[ys, xs][mask.astype(bool)].all(), label


def test_hflip_mirrors_image_and_masks_together():
    masks, labels = instances()
    image, flipped = hflip(coordinate_image(), masks)
    assert image[0, 0, 1] == W - 1 and image[0, -1, 1] == 0
    assert_masks_follow(image, flipped, labels)
    assert flipped[3, 0, -1] and not flipped[3, 0, 0]  # the corner instance went to the right


@pytest.mark.parametrize("hw", [(75, 115), (96, 147), (300, 460), (200, 150)])
def test_resize_scales_masks_with_the_image(hw):
    masks, labels = instances()
    image, resized = resize(coordinate_image(), masks, hw)
    assert image.shape == (*hw, 3) and resized.shape == (4, *hw) and resized.dtype == np.uint8
    # nearest-neighbour masks against a bilinear / area image: they agree except on edge pixels
    assert_masks_follow(image, resized, labels, min_agreement=0.97)
    # the scale is right: each instance keeps its share of the image
    for before, after in zip(masks[:3], resized):  # the large ones: edge pixels are a small share
        assert after.mean() == pytest.approx(before.mean(), rel=0.05)


def test_resize_without_instances_keeps_an_empty_stack():
    image, masks = resize(coordinate_image(), np.zeros((0, H, W), np.uint8), (64, 96))
    assert image.shape == (64, 96, 3) and masks.shape == (0, 64, 96)


def test_resize_of_many_instances():
    """More instances than OpenCV resizes in one call (its channel limit) still come out right."""
    rng = np.random.default_rng(0)
    n, h, w = 300, 40, 60
    y0, x0 = rng.integers(0, h - 8, n), rng.integers(0, w - 8, n)
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        masks[i, y0[i] : y0[i] + 8, x0[i] : x0[i] + 8] = 1
    _, resized = resize(np.zeros((h, w, 3), np.uint8), masks, (h * 2, w * 2))  # exact: every pixel doubled
    np.testing.assert_array_equal(resized, masks.repeat(2, 1).repeat(2, 2))


def test_random_crop_cuts_masks_at_the_same_place_and_drops_emptied_instances():
    masks, labels = instances()
    seen_drop = False
    for seed in range(40):
        image, cropped, kept = random_crop(coordinate_image(), masks, labels, (40, 120), np.random.default_rng(seed))
        y0, x0 = int(image[0, 0, 0]), int(image[0, 0, 1])
        ch, cw = image.shape[:2]
        assert 40 <= ch <= 120 and 40 <= cw <= 120
        np.testing.assert_array_equal(image, coordinate_image()[y0 : y0 + ch, x0 : x0 + cw])
        window = masks[:, y0 : y0 + ch, x0 : x0 + cw]
        present = window.reshape(4, -1).any(1)
        np.testing.assert_array_equal(kept, labels[present])  # labels stay with their masks
        np.testing.assert_array_equal(cropped, window[present])
        seen_drop |= not present.all()
    assert seen_drop


def test_augment_is_deterministic_and_masks_follow_the_image():
    masks, labels = instances()
    kinds = set()
    for seed in range(30):
        args = dict(min_sizes=[64, 96, 128], max_size=200, flip=True, crop_size=(60, 140))
        image, out_masks, out_labels = augment(coordinate_image(), masks, labels, np.random.default_rng(seed), **args)
        again = augment(coordinate_image(), masks, labels, np.random.default_rng(seed), **args)
        np.testing.assert_array_equal(image, again[0])
        np.testing.assert_array_equal(out_masks, again[1])
        assert min(image.shape[:2]) in (64, 96, 128) or max(image.shape[:2]) == 200
        assert out_masks.dtype == np.uint8 and len(out_masks) == len(out_labels)
        if len(out_labels):
            assert_masks_follow(image, out_masks, out_labels, min_agreement=0.95)
        flipped = int(image[0, 0, 1]) > int(image[0, -1, 1])
        cropped = image.shape[0] / image.shape[1] != pytest.approx(H / W, rel=0.03)
        kinds.add((flipped, cropped))
    assert len(kinds) == 4  # every combination of flip and crop happened


def test_copy_paste_occludes_what_lies_below_and_adds_the_pasted_instances():
    from edgeseg.data.transforms import copy_paste

    image = np.zeros((20, 20, 3), np.uint8)
    below = np.zeros((2, 20, 20), np.uint8)
    below[0, 0:10, 0:10] = 1  # will be half covered: kept
    below[1, 12:16, 12:16] = 1  # will be fully covered: dropped
    donor = np.full((40, 40, 3), 200, np.uint8)  # twice the size: resized to 20x20
    pasted = np.zeros((1, 40, 40), np.uint8)
    pasted[0, 0:40, 10:40] = 1  # columns 5-19 once resized
    instances = {"labels": np.array([0, 1]), "masks": below, "boxes": np.zeros((2, 4), np.float32)}
    donor_instances = {"labels": np.array([3]), "masks": pasted, "boxes": np.array([[10, 0, 40, 40]], np.float32)}
    out, got = copy_paste(image, instances, donor, donor_instances, np.random.default_rng(0))
    assert got["labels"].tolist() == [0, 3]
    assert got["masks"][0, :10, :5].all() and not got["masks"][0, :, 5:].any()  # what stays visible
    assert got["boxes"].tolist() == [[0, 0, 5, 10], [5, 0, 20, 20]]
    assert (out[:, 5:] == 200).all() and (out[:, :5] == 0).all()
