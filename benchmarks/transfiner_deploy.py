"""Mask Transfiner on the device, from one trained checkpoint:

    python benchmarks/transfiner_deploy.py runs/transfiner_bench/<run>/best.pt --data data/thin_shapes/val

1. FP32 and INT8 bundles for every target (onnx, openvino, tflite, jetson), each export measuring
   its mask AP beside PyTorch's (`--data`), so INT8 drops are stated per bundle;
2. FP32 parity of every FP32 bundle against PyTorch over the whole val split (benchmarks/parity.py),
   and of an ONNX bundle of the same weights with the hard cut (`refine.fade=0`) against its own
   PyTorch model;
3. the graphs hold no NonZero and no Loop;
4. one interleaved `edgeseg bench --boundary` of PyTorch and every bundle, plus the refinement's
   share of the latency (the same weights without the refinement: AdaMixer with the Transfiner's
   detector and 28x28 head, ONNX FP32) and peak memory at other node budgets (the refinement is
   per node, so the trained weights run at any budget; ONNX FP32).

Writes the bench report under --out and table.md; bundles are reused with --reuse.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import write_table

from edgeseg.bench import run_bench, write_report
from edgeseg.config import recipe_from_dict, recipe_to_dict
from edgeseg.engine.checkpoint import load_model, save_checkpoint
from edgeseg.export import export_bundle
from edgeseg.models.registry import create_model

TARGETS = ("onnx", "openvino", "tflite", "jetson")
BUDGET_SCALES = (0.5, 2.0, 4.0)  # node budgets beside the trained one, for the memory column


def coarse_twin(checkpoint: Path, out: Path) -> Path:
    """AdaMixer with the Transfiner's detector and 28x28 mask head weights: the network without
    its refinement (the Transfiner keeps AdaMixer's parameter names)."""
    model, recipe, classes = load_model(checkpoint)
    data = recipe_to_dict(recipe)
    section = data["model"].pop("transfiner")
    section.pop("refine")
    data["model"].update(name="adamixer", adamixer=section)
    twin_recipe = recipe_from_dict(data, source=checkpoint)
    twin = create_model(twin_recipe.model)
    own = twin.state_dict().keys()
    twin.load_state_dict({k: v for k, v in model.state_dict().items() if k in own}, strict=True)
    save_checkpoint(out, twin, twin_recipe, classes)
    return out


def with_hard_cut(checkpoint: Path, out: Path) -> Path:
    """The same weights with the paper's hard cut: nodes and detections refined fully or not at all."""
    model, recipe, classes = load_model(checkpoint)
    recipe.model.method.refine.fade = 0.0
    save_checkpoint(out, model, recipe, classes)
    return out


def with_budget(checkpoint: Path, scale: float, out: Path) -> Path:
    """The same weights refining ``scale`` times as many nodes per level."""
    model, recipe, classes = load_model(checkpoint)
    refine = recipe.model.method.refine
    refine.cells = [max(1, min(784, round(c * scale))) for c in refine.cells]
    save_checkpoint(out, model, recipe, classes)
    return out


def graph_ops(bundle: Path) -> set[str]:
    import onnx

    ops = set()
    for path in bundle.glob("*.onnx"):
        ops |= {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    return ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", default=None, help="calibration set (default: the export's, 200 training images)")
    ap.add_argument("--imgsz", default="256")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/transfiner_deploy"))
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    ap.add_argument("--parity-only", action="store_true", help="FP32 bundles and parity only (steps 1-3 without INT8)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    exported = {}
    for target in TARGETS:
        for precision in ("fp32",) if args.parity_only else ("fp32", "int8"):
            out = args.out / f"{target}_{precision}"
            lines = []
            if not (args.reuse and (out / "bundle.json").is_file()):
                export_bundle(args.checkpoint, target, out, precision=precision, imgsz=args.imgsz, calib=args.calib,
                              data=args.data, log=lines.append)
                (out.parent / f"{out.name}.export.log").write_text("\n".join(map(str, lines)) + "\n")
            exported[(target, precision)] = out
    for out in exported.values():
        ops = graph_ops(out)
        print(f"{out.name}: NonZero/Loop in graph: {sorted(ops & {'NonZero', 'Loop'}) or 'none'}")

    fp32 = [str(p) for (t, precision), p in exported.items() if precision == "fp32"]
    parity = [sys.executable, str(Path(__file__).with_name("parity.py"))]
    subprocess.run(parity + [str(args.checkpoint), *fp32, "--data", args.data], check=True)
    hard = with_hard_cut(args.checkpoint, args.out / "hard_cut.pt")
    hard_bundle = args.out / "onnx_fp32_hard_cut"
    if not (args.reuse and (hard_bundle / "bundle.json").is_file()):
        export_bundle(hard, "onnx", hard_bundle, precision="fp32", imgsz=args.imgsz, log=lambda *_: None)
    print("the same weights with the hard cut (refine.fade=0):")
    subprocess.run(parity + [str(hard), str(hard_bundle), "--data", args.data], check=True)
    if args.parity_only:
        return

    extra = {"coarse": coarse_twin(args.checkpoint, args.out / "coarse_twin.pt")}
    for scale in BUDGET_SCALES:
        extra[f"cells x{scale:g}"] = with_budget(args.checkpoint, scale, args.out / f"cells_x{scale:g}.pt")
    for name, checkpoint in extra.items():
        out = args.out / f"onnx_fp32_{name.replace(' ', '_')}"
        if not (args.reuse and (out / "bundle.json").is_file()):
            export_bundle(checkpoint, "onnx", out, precision="fp32", imgsz=args.imgsz, log=lambda *_: None)
        exported[(name, "fp32")] = out

    # Jetson bundles run on the device once their engine is built; their export measured their AP here
    models = [str(args.checkpoint)] + [str(p) for (t, _), p in exported.items() if t != "jetson"]
    result = run_bench(models, data=args.data, frames=args.frames, threads=args.threads, boundary=True)
    write_report(args.out / "bench", result)
    rows = {Path(r["model"]).name: r for r in result["results"]}
    infer = {k: r["latency_ms"]["infer"]["median"] for k, r in rows.items()}
    refined, coarse = infer["onnx_fp32"], infer["onnx_fp32_coarse"]
    lines = ["| model | mask AP | boundary AP | infer ms | post ms | peak MiB |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['ap']:.2f} | {r['boundary_ap']:.2f} | {infer[name]:.2f} | "
                     f"{r['latency_ms']['post']['median']:.2f} | {r['peak_memory_mib']:.0f} |")
    lines += ["", f"Refinement's share of ONNX Runtime FP32 inference: {(refined - coarse) / refined:.0%} "
              f"({refined:.2f} ms against {coarse:.2f} ms without it)."]
    write_table(args.out, lines)
    (args.out / "summary.json").write_text(json.dumps({"refined_ms": refined, "coarse_ms": coarse}, indent=1))


if __name__ == "__main__":
    main()
