"""Torch data pipeline: deterministic per-sample augmentation, batches padded to 32, and the
check that a training set's supervision is one the model can use."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeseg.config import DataConfig
from edgeseg.data.coco import CocoDataset
from edgeseg.data.image_folder import ImageFolder, open_dataset
from edgeseg.data.transforms import augment_instances, copy_paste, neighbour_negatives, subsample_points
from edgeseg.errors import fail
from edgeseg.models.registry import get_method
from edgeseg.preprocess import SIZE_DIVISOR, normalize, padded_size


def training_dataset(spec, model) -> CocoDataset | ImageFolder:
    """Open a training set, refusing one whose supervision the model cannot train with.
    ``model``: the ModelConfig (or a method name: its default settings)."""
    dataset = open_dataset(spec)
    check_supervision(dataset, model)
    return dataset


def check_supervision(dataset: CocoDataset | ImageFolder, model) -> str:
    """The supervision the model trains with from ``dataset``: the strongest kind the dataset gives
    (its own, then the weaker ones: masks -> boxes, points -> boxes, any -> none) that the model
    can use; a one-line error when there is none."""
    method = get_method(model if isinstance(model, str) else model.name)
    section = method.config() if isinstance(model, str) else model.method
    kinds = method.supervision_for(section)
    usable = [k for k in dataset.gives if k in kinds]
    if usable:
        return usable[0]
    has = "no annotations" if dataset.supervision == "none" else f"{dataset.supervision} annotations"
    note = f" ({dataset.supervision_note})" if dataset.supervision_note else ""
    raise fail(dataset.source, f"has {has}{note}, but {method.name} trains with {' or '.join(kinds)}")


class TrainStream(Dataset):
    """Index ``k`` is the k-th sample of an endless stream of epochs.

    Epoch ``e`` visits the images in the order ``permutation(seed, e)``; sample ``k`` is
    augmented with ``rng(seed, k)``. A run resumed at step ``s`` therefore sees exactly the
    samples an uninterrupted run would.
    """

    def __init__(self, dataset: CocoDataset | ImageFolder, cfg: DataConfig, seed: int):
        self.dataset = dataset
        self.cfg = cfg
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}
        self._cache: dict[int, tuple] = {}

    def __len__(self) -> int:  # only used by DataLoader for sanity; the stream is endless
        return 2**62

    def record_index(self, k: int) -> int:
        n = len(self.dataset)
        epoch, pos = divmod(k, n)
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(n)}
        return int(self._orders[epoch][pos])

    def load(self, i: int):
        if i in self._cache:
            return self._cache[i]
        item = (self.dataset.load_image(i), self.dataset.load_instances(i))
        if self.cfg.cache_images:
            self._cache[i] = item
        return item

    def __getitem__(self, k: int):
        image, instances = self.load(self.record_index(k))
        # its own stream: the augmentation draws stay those of the same sample without points
        instances = subsample_points(instances, self.cfg.sample_points, np.random.default_rng([self.seed, 2, k]))
        if self.cfg.copy_paste > 0:  # its own stream too: other samples' draws do not move
            paste = np.random.default_rng([self.seed, 3, k])
            if paste.random() < self.cfg.copy_paste:
                donor = self.load(int(paste.integers(len(self.dataset))))
                image, instances = copy_paste(image, instances, *donor, paste)
        rng = np.random.default_rng([self.seed, 1, k])
        crop = self.cfg.crop_size if self.cfg.crop else None
        image, instances = augment_instances(image, instances, rng, min_sizes=self.cfg.min_size_train,
                                             max_size=self.cfg.max_size_train, flip=self.cfg.flip,
                                             crop_size=crop)
        if self.cfg.point_neighbour_negatives:
            instances = neighbour_negatives(instances)
        return normalize(image), instances


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for each step from ``start_step``, this rank's slice of the global batch."""

    def __init__(self, batch_size: int, start_step: int, max_steps: int, rank: int = 0, world: int = 1):
        self.local = batch_size // world
        self.batch_size, self.start, self.max, self.rank = batch_size, start_step, max_steps, rank

    def __iter__(self):
        for step in range(self.start, self.max):
            first = step * self.batch_size + self.rank * self.local
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return max(0, self.max - self.start)


def collate(samples):
    """Pad images and masks to a common size, a multiple of 32 (bottom/right, zeros), and every
    image's points to the batch's most per instance (label -1: ignored); every other field (labels,
    boxes) becomes a tensor as it is: padding moves no pixel."""
    hs, ws = zip(*(s[0].shape[:2] for s in samples))
    ph, pw = padded_size(max(hs), max(ws), SIZE_DIVISOR)
    images = torch.zeros(len(samples), 3, ph, pw)
    targets = []
    for i, (image, instances) in enumerate(samples):
        h, w = image.shape[:2]
        images[i, :, :h, :w] = torch.from_numpy(image).permute(2, 0, 1)
        target = {k: torch.from_numpy(v) for k, v in instances.items()}
        target["labels"] = target["labels"].long()
        if "masks" in target:
            target["masks"] = torch.zeros(len(target["masks"]), ph, pw, dtype=torch.uint8)
            target["masks"][:, :h, :w] = torch.from_numpy(instances["masks"])
        targets.append(target)
    if "point_labels" in targets[0]:
        width = max(t["point_labels"].shape[1] for t in targets)
        for t in targets:
            extra = width - t["point_labels"].shape[1]
            t["points"] = torch.nn.functional.pad(t["points"], (0, 0, 0, extra))
            t["point_labels"] = torch.nn.functional.pad(t["point_labels"], (0, extra), value=-1)
    return images, targets
