"""FreeSOLO end to end, with no annotation: free masks of the images, a SOLO model trained on
them, then self-training rounds (the model's confident masks on the same images become the next
round's labels; by default as many per image as the round trained on, the most confident ones).
Every round is an ordinary ``edgeseg train`` on a pseudo-label file, so each
step can also be run (or rerun) by hand; finished steps are reused."""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.pseudo.freemask import FreeMaskConfig, write_free_masks
from edgeseg.pseudo.self_training import write_model_masks


def _trained(folder: Path) -> bool:
    log = folder / "log.jsonl"
    return (folder / "last.pt").is_file() and log.is_file() and '"done": true' in log.read_text()


def keep_setting(keep) -> float | None:
    """``--keep``: a score in [0, 1], or "auto" (None: fitted to the previous round's label density)."""
    if keep is None or str(keep).strip().lower() == "auto":
        return None
    try:
        value = float(keep)
    except ValueError:
        raise EdgesegError(f"--keep {keep!r}: expected a score in [0, 1] or 'auto'") from None
    if not 0.0 <= value <= 1.0:
        raise EdgesegError(f"--keep {keep!r}: expected a score in [0, 1] or 'auto'")
    return value


def labels_per_image(labels: Path) -> float:
    data = json.loads(Path(labels).read_text())
    return len(data["annotations"]) / max(1, len(data["images"]))


def run_freesolo(images, out, recipe: str = "freesolo_textured", rounds: int = 1, keep="auto",
                 overrides: list[str] | None = None, freemask: FreeMaskConfig | None = None,
                 weights: str = "imagenet", log=print) -> list[Path]:
    """Write ``out/free_masks.json``, ``out/round0`` (SOLO on the free masks) and, per
    self-training round k, ``out/round{k}_labels.json`` and ``out/round{k}``. Returns the
    checkpoints, one per round (round 0 first)."""
    from edgeseg.config import load_recipe
    from edgeseg.engine.train import train

    if rounds < 0:
        raise EdgesegError(f"--rounds {rounds}: must be 0 or more")
    score = keep_setting(keep)
    out = Path(out)
    labels = out / "free_masks.json"
    if not labels.is_file():
        counts = write_free_masks(images, labels, freemask or FreeMaskConfig(), weights=weights)
        log(f"free masks: {counts['masks']} in {counts['images']} images -> {labels}")
    checkpoints = []
    for k in range(rounds + 1):
        folder = out / f"round{k}"
        if not _trained(folder):
            cfg = load_recipe(recipe, [*(overrides or []), f"data.train={labels}", f"train.output_dir={folder}",
                                       "data.val="])
            log(f"round {k}: training on {labels}")
            train(cfg, show_progress=False, log=log)
        checkpoints.append(folder / "last.pt")
        if k < rounds:
            trained_on, labels = labels, out / f"round{k + 1}_labels.json"
            if not labels.is_file():
                kept = {"per_image": labels_per_image(trained_on)} if score is None else {"score": score}
                counts = write_model_masks(folder / "last.pt", images, labels, **kept)
                log(f"round {k + 1} labels: {counts['masks']} masks scored >= {counts['score']:.3f} -> {labels}")
    return checkpoints
