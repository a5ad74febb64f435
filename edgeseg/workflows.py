"""The jobs behind the CLI commands, usable from Python."""

from __future__ import annotations

import time
from pathlib import Path

from edgeseg.data.coco import CocoDataset, read_image_rgb
from edgeseg.errors import fail
from edgeseg.evaluation.coco_eval import masks_to_results, save_results


def load_predictor(model_path, device: str | None = None, threads: int | None = None):
    """A predictor for an exported bundle (torch-free) or an edgeseg checkpoint (PyTorch)."""
    if Path(model_path).is_dir():
        from edgeseg.runtime import Predictor

        return Predictor(model_path, device=device, threads=threads)
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.engine.predictor import TorchPredictor

    if threads:
        import torch

        torch.set_num_threads(threads)
    model, recipe, class_names = load_model(model_path)
    return TorchPredictor(model, recipe, class_names)


def evaluate_model(model_path, data, out=None, device=None, threads=None) -> dict:
    from edgeseg.evaluation.dataset_eval import evaluate_dataset

    dataset = CocoDataset(data)
    predictor = load_predictor(model_path, device, threads)
    if predictor.class_names != dataset.class_names:
        raise fail(dataset.json_path, f"classes {dataset.class_names} differ from the model's {predictor.class_names}")
    report = evaluate_dataset(predictor, dataset)
    model_path = Path(model_path)
    default = model_path / "results.json" if model_path.is_dir() else model_path.with_suffix(".results.json")
    out = Path(out) if out else default
    save_results(out, report.pop("results"))
    report["results_path"] = str(out)
    return report


def predict_images(model_path, images, out, score_threshold: float = 0.3, device=None, threads=None) -> list[Path]:
    from edgeseg.vis import draw_detections, save_image

    predictor = load_predictor(model_path, device, threads)
    out = Path(out)
    results, written = [], []
    for image_id, path in enumerate(images, start=1):
        image = read_image_rgb(Path(path))
        dets = predictor(image, name=str(path))
        # COCO results have no category ids of their own here: use 1..K in class order.
        results += masks_to_results(image_id, dets.masks, dets.scores, dets.labels,
                                    list(range(1, len(predictor.class_names) + 1)))
        for r in results[len(results) - len(dets):]:
            r["file_name"] = str(path)
        overlay = draw_detections(image, dets, predictor.class_names, score_threshold)
        target = out / f"{Path(path).stem}_overlay.png"
        save_image(target, overlay)
        written.append(target)
    save_results(out / "results.json", results)
    return written


QUICKSTART_BUNDLES = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
                      ("tflite", "fp32"), ("tflite", "int8")]


def ship(checkpoint, out, val: str, imgsz: str = "256", calib: str = "shapes", progress: bool = True,
         log=print) -> dict:
    """Export -> bench -> demo clip: the device half of the quickstart. Targets whose export tools
    are not installed are skipped with a note."""
    from edgeseg.bench import print_table, run_bench, write_report
    from edgeseg.demo import run_demo
    from edgeseg.export import TARGETS, export_bundle, format_module

    out = Path(out)
    bundles = []
    for target, precision in QUICKSTART_BUNDLES:
        module = format_module(TARGETS[target].format)
        if not module.is_available():
            log(f"skipping {target}: {module.INSTALL_HINT}")
            continue
        folder = out / "bundles" / f"{target}_{precision}"
        log(f"export {target} {precision} -> {folder}")
        export_bundle(checkpoint, target, folder, precision, imgsz, calib=calib, log=lambda *_: None)
        bundles.append(folder)
    result = run_bench([checkpoint, *bundles], data=val, frames=100, warmup=10, progress=progress, log=log)
    print_table(result)
    report = write_report(out / "bench", result)
    fastest = max(result["results"], key=lambda r: r["fps_model_only"])
    clip = out / "demo.mp4"
    demo = run_demo(fastest["model"], "synthetic:300", show=False, save=str(clip), log=log)
    log(f"demo: {fastest['name']} on 300 synthetic frames, {demo['fps_end_to_end']:.1f} FPS end-to-end -> {clip}")
    return {"bundles": [str(b) for b in bundles], "report": str(report), "demo": demo, "fastest": fastest["name"]}


def run_quickstart(out, recipe_name: str = "quickstart", progress: bool = True, ship_it: bool = True,
                   log=print) -> dict:
    """Data -> train -> eval -> predict on the embedded synthetic dataset, then (``ship_it``)
    export every target, benchmark the bundles and write a demo clip."""
    from edgeseg.config import load_recipe
    from edgeseg.engine.train import train

    out = Path(out)
    recipe = load_recipe(recipe_name, [f"train.output_dir={out / 'train'}"])
    t0 = time.time()
    summary = train(recipe, show_progress=progress, log=log)
    best = out / "train" / "best.pt"
    report = evaluate_model(best, recipe.data.val, out / "val_results.json")
    val = CocoDataset(recipe.data.val)
    samples = [val.records[i]["file_name"] for i in range(min(4, len(val)))]
    predict_images(best, samples, out / "predict")
    m = report["metrics"]
    log(report["summary"].rstrip())
    log(f"quickstart: trained {summary['train_minutes']:.1f} min ({summary['step']} steps); "
        f"val mask AP {m['AP'] * 100:.1f}, AP50 {m['AP50'] * 100:.1f}; total {(time.time() - t0) / 60:.1f} min")
    log(f"checkpoint: {best}\noverlays: {out / 'predict'}")
    shipped = ship(best, out, recipe.data.val, progress=progress, log=log) if ship_it else None
    if shipped:
        log(f"bundles: {out / 'bundles'}\ndemo clip: {out / 'demo.mp4'}\nreport: {shipped['report']}/report.md")
    return {"train": summary, "metrics": m, "ship": shipped}
