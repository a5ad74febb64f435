"""A self-training round (FreeSOLO): a model trained on pseudo-labels predicts on the training
images, and its confident masks become the next round's pseudo-labels."""

from __future__ import annotations

import numpy as np

from edgeseg.errors import EdgesegError, fail
from edgeseg.postprocess import check_score
from edgeseg.predictor import load_predictor
from edgeseg.pseudo.labels import PseudoLabels

# With --per-image the model predicts down to this score and the kept score is fitted above it.
FITTED_FLOOR = 0.02


def check_per_image(per_image: float) -> float:
    if not per_image > 0:
        raise EdgesegError(f"--per-image must be > 0, got {per_image}")
    return per_image


def fitted_score(scores, per_image: float, images: int) -> float:
    """The score that keeps the ``per_image * images`` most confident masks of all images.

    A model trained on noisy pseudo-labels is rarely confident: on the textured shapes FreeSOLO's
    first model scored 0.07 masks per image at 0.5 against 6.3 free masks it trained on, so a fixed
    score starves the next round. Fitting the score to a label density keeps the ranking the model
    learnt and the number of objects the previous round believed in."""
    check_per_image(per_image)
    ranked = np.sort(np.asarray(scores, np.float64))[::-1]
    wanted = max(1, round(per_image * images))
    if not len(ranked):
        return 1.0
    return float(ranked[min(wanted, len(ranked)) - 1])


def write_model_masks(model_path, source, out, score: float = 0.5, per_image: float | None = None, device=None,
                      threads=None, progress=None) -> dict:
    """The masks a checkpoint or bundle finds in every image of ``source`` with a score of at least
    ``score`` (or, with ``per_image``, the most confident ones, that many per image on average), as a
    pseudo-label file ``out`` (class "object", whatever the model's classes)."""
    # checked before minutes of prediction, not after
    floor = FITTED_FLOOR if per_image is not None and check_per_image(per_image) else check_score(score)
    labels = PseudoLabels(source, out, "pseudo-labels")
    predictor = load_predictor(model_path, device, threads, score=floor)
    if not predictor.kind.masks:
        raise fail(model_path, f"predicts {predictor.kind.name} without masks; pseudo-labels are masks")
    for k, (rec, image) in enumerate(labels):
        dets = predictor(image, score=floor)
        labels.add(rec, image.shape[:2], dets.masks, dets.scores)
        if progress:
            progress(k + 1, len(labels.dataset.records))
    settings = {"method": "self-training", "model": str(model_path), "score": floor, "source": str(source)}
    if per_image is not None:
        settings["score"] = fitted_score([a["score"] for a in labels.annotations], per_image, len(labels.images))
        settings["per_image"] = per_image
        labels.keep_scored(settings["score"])
    return {**labels.write("pseudo-labels written by edgeseg", settings), "score": settings["score"]}
