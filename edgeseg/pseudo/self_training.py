"""A self-training round (FreeSOLO): a model trained on pseudo-labels predicts on the training
images, and its confident masks become the next round's pseudo-labels."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.postprocess import check_score
from edgeseg.predictor import load_predictor
from edgeseg.pseudo.labels import PseudoLabels


def write_model_masks(model_path, source, out, score: float = 0.5, device=None, threads=None, progress=None) -> dict:
    """The masks a checkpoint or bundle finds in every image of ``source`` with a score of at least
    ``score``, as a pseudo-label file ``out`` (class "object", whatever the model's classes)."""
    check_score(score)
    labels = PseudoLabels(source, out, "pseudo-labels")
    predictor = load_predictor(model_path, device, threads, score=score)
    if not predictor.kind.masks:
        raise fail(model_path, f"predicts {predictor.kind.name} without masks; pseudo-labels are masks")
    for k, (rec, image) in enumerate(labels):
        dets = predictor(image, score=score)
        labels.add(rec, image.shape[:2], dets.masks, dets.scores)
        if progress:
            progress(k + 1, len(labels.dataset.records))
    return labels.write("pseudo-labels written by edgeseg", {"method": "self-training", "model": str(model_path),
                                                             "score": score, "source": str(source)})
