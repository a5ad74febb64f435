"""The jobs behind the CLI commands, usable from Python."""

from __future__ import annotations

import time
from pathlib import Path

from edgeseg.data.coco import CocoDataset
from edgeseg.data.images import read_image_rgb
from edgeseg.errors import fail
from edgeseg.evaluation.coco_eval import detections_to_results, save_results
from edgeseg.io import atomic_path, check_output
from edgeseg.predictor import load_predictor

def evaluate_model(model_path, data, out=None, device=None, threads=None, class_agnostic: bool = False,
                   boundary: bool = False) -> dict:
    from edgeseg.evaluation.dataset_eval import evaluate_dataset

    model_path = Path(model_path)
    default = model_path / "results.json" if model_path.is_dir() else model_path.with_suffix(".results.json")
    out = check_output(out or default, "results file")
    dataset = CocoDataset(data)
    predictor = load_predictor(model_path, device, threads)
    if not class_agnostic and predictor.class_names != dataset.class_names:
        raise fail(dataset.json_path, f"classes {dataset.class_names} differ from the model's {predictor.class_names}"
                                      " (--class-agnostic scores masks whatever their class)")
    report = evaluate_dataset(predictor, dataset, class_agnostic=class_agnostic, boundary=boundary)
    save_results(out, report.pop("results"))
    report["results_path"] = str(out)
    return report


def is_predict_output(folder: Path) -> bool:
    """A folder that `edgeseg predict` wrote: results.json and overlays, nothing else."""
    names = [p.name for p in folder.iterdir()]
    return "results.json" in names and all(n == "results.json" or n.endswith("_overlay.png") for n in names)


def overlay_names(images) -> list[str]:
    """``<stem>_overlay.png`` per image; a stem seen before gets -2, -3, ... so no overlay replaces another."""
    names, used = [], set()
    for image in images:
        stem, n = Path(image).stem, 1
        while (name := f"{stem}{f'-{n}' if n > 1 else ''}_overlay.png").lower() in used:  # case-insensitive disks
            n += 1
        used.add(name.lower())
        names.append(name)
    return names


def predict_images(model_path, images, out, score: float | None = None, device=None, threads=None) -> list[Path]:
    """Overlays and a results.json, written as one folder: a failure half-way leaves the previous one as it was."""
    from edgeseg.vis import draw_detections, save_image

    out = check_output(out, "predict output", is_predict_output)
    predictor = load_predictor(model_path, device, threads, score)  # score None: the model's deploy threshold
    names = overlay_names(images)
    results = []
    with atomic_path(out, is_predict_output, "predict output") as tmp:
        tmp.mkdir()
        for image_id, (path, name) in enumerate(zip(images, names), start=1):
            image = read_image_rgb(Path(path))
            dets = predictor(image, name=str(path))
            # COCO results have no category ids of their own here: use 1..K in class order.
            results += detections_to_results(image_id, dets, list(range(1, len(predictor.class_names) + 1)))
            for r in results[len(results) - len(dets):]:
                r["file_name"] = str(path)
            save_image(tmp / name, draw_detections(image, dets, predictor.class_names))
        save_results(tmp / "results.json", results)
    return [out / name for name in names]


def import_official(path, config: str, out) -> None:
    """An official checkpoint as an edgeseg checkpoint: the method owning ``config`` reads its
    format into our names, then the recipe's model loads it strictly."""
    from edgeseg.config import load_recipe
    from edgeseg.engine.checkpoint import save_checkpoint
    from edgeseg.models.registry import create_model, official_importer
    from edgeseg.models.weights import load_state_strict

    importer = official_importer(config)
    weights = importer.read_official(Path(path))
    recipe = load_recipe(importer.OFFICIAL_RECIPES[config])
    model = create_model(recipe.model)
    load_state_strict(model, weights, Path(path))
    save_checkpoint(out, model, recipe, list(importer.CLASS_NAMES), extra={"imported_from": Path(path).name})


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
                   log=print, overrides: list[str] | None = None) -> dict:
    """Data -> train -> eval -> predict on the embedded synthetic dataset, then (``ship_it``)
    export every target, benchmark the bundles and write a demo clip."""
    from edgeseg.config import load_recipe
    from edgeseg.engine.train import train

    out = Path(out)
    recipe = load_recipe(recipe_name, [f"train.output_dir={out / 'train'}", *(overrides or [])])
    t0 = time.time()
    summary = train(recipe, show_progress=progress, log=log)
    best = out / "train" / "best.pt"
    report = evaluate_model(best, recipe.data.val, out / "val_results.json")
    val = CocoDataset(recipe.data.val)
    samples = [val.records[i]["file_name"] for i in range(min(4, len(val)))]
    predict_images(best, samples, out / "predict")
    m = report["metrics"]
    log(report["summary"].rstrip())
    log(f"quickstart: trained {summary['train_minutes']:.1f} min ({summary['step']}/{summary['max_iter']} steps, "
        f"{summary['schedule_completed']:.0%} of the LR schedule); "
        f"val {report['metric']} {m['AP'] * 100:.1f}, AP50 {m['AP50'] * 100:.1f}; total {(time.time() - t0) / 60:.1f} min")
    if summary["time_capped"] and summary["expected_ap"] and m["AP"] * 100 < summary["expected_ap"]:
        log(f"note: the {recipe.solver.max_minutes:g}-minute cap (solver.max_minutes) fitted the schedule into "
            f"{summary['step']} of {summary['max_iter']} steps on this CPU, so its AP is below the "
            f"{summary['expected_ap']:.1f} the recipe reaches on a faster CPU that runs them all (train.expected_ap)")
    elif summary["time_capped"] and not summary["expected_ap"]:
        log(f"note: the {recipe.solver.max_minutes:g}-minute cap (solver.max_minutes) fitted the schedule into "
            f"{summary['step']} of {summary['max_iter']} steps on this CPU; a faster CPU runs them all and "
            "should reach a higher AP")
    log(f"checkpoint: {best}\noverlays: {out / 'predict'}")
    shipped = ship(best, out, recipe.data.val, progress=progress, log=log) if ship_it else None
    if shipped:
        log(f"bundles: {out / 'bundles'}\ndemo clip: {out / 'demo.mp4'}\nreport: {shipped['report']}/report.md")
    return {"train": summary, "metrics": m, "ship": shipped}
