"""The training loop: single process or torchrun/DDP (gloo on CPU, nccl on GPU).

Resuming is exact: the data stream is a pure function of (seed, step) (see ``TrainStream``),
and ``last.pt`` stores model, optimizer, scheduler, grad scaler, step and RNG states.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from bisect import bisect_right
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from edgeseg.config import Recipe
from edgeseg.data.coco import CocoDataset
from edgeseg.engine.checkpoint import init_from_checkpoint, read_checkpoint, save_checkpoint
from edgeseg.engine.data import StepBatchSampler, TrainStream, check_supervision, collate, training_dataset
from edgeseg.engine.ema import WeightAverage
from edgeseg.engine.predictor import TorchPredictor
from edgeseg.errors import EdgesegError
from edgeseg.evaluation.dataset_eval import evaluate_dataset
from edgeseg.models.registry import create_model
from edgeseg.postprocess import METRIC_NAMES


def setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode not in ("auto", "bf16", "fp16", "off"):
        raise EdgesegError(f"solver.amp: unknown mode '{mode}'; valid: auto, bf16, fp16, off")
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.float16
    # bf16 autocast only pays off on CPUs with native bf16 matmuls (AMX / AVX512-BF16).
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def build_optimizer(model, cfg) -> torch.optim.Optimizer:
    norm_types = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    groups: dict[tuple, list] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            lr = cfg.base_lr * (cfg.backbone_multiplier if module_name.startswith("backbone") else 1.0)
            decay = 0.0 if isinstance(module, norm_types) else cfg.weight_decay
            groups.setdefault((lr, decay), []).append(param)
    params = [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.base_lr, amsgrad=cfg.amsgrad)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.base_lr, momentum=0.9)
    raise EdgesegError(f"solver.optimizer: unknown optimizer '{cfg.optimizer}'; valid: adamw, sgd")


def lr_factor(step: float, cfg) -> float:
    """detectron2's WarmupMultiStepLR (linear warm-up, then x gamma at each milestone), or with
    ``lr_schedule: cosine`` a half cosine from 1 to gamma over ``max_iter`` after the same warm-up."""
    if cfg.lr_schedule == "cosine":
        t = min(max(step / cfg.max_iter, 0.0), 1.0)
        factor = cfg.gamma + (1 - cfg.gamma) * 0.5 * (1 + math.cos(math.pi * t))
    else:
        factor = cfg.gamma ** bisect_right(sorted(cfg.steps), step)
    if step < cfg.warmup_iters:
        alpha = step / cfg.warmup_iters
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return factor


def ramp_losses(losses: dict, cfg, step: int, first: bool = False) -> dict:
    """``losses`` with those named in ``cfg.ramp_losses`` weighted ``step / cfg.ramp_iters`` until
    that reaches 1. A name the run's ``first`` step does not return is a recipe error (a typo);
    later steps ramp the names they return (a batch without objects may return fewer terms)."""
    unknown = [name for name in cfg.ramp_losses if name not in losses] if first else []
    if unknown:
        raise EdgesegError(f"solver.ramp_losses: {', '.join(unknown)} not among this model's losses "
                           f"({', '.join(losses)})")
    if step >= cfg.ramp_iters:
        return losses
    weight = step / cfg.ramp_iters
    return {k: v * weight if k in cfg.ramp_losses else v for k, v in losses.items()}


class LRSchedule:
    """The LR factor and the end of training as functions of progress through the schedule.

    Without a time budget (``solver.max_minutes`` 0) this is detectron2's WarmupMultiStepLR over
    iterations: step ``s`` trains at ``lr_factor(s)`` and training ends at ``max_iter``.

    With a budget, progress is ``max(step / max_iter, elapsed / budget)``: the warm-up and the
    milestones, written in iterations, act at the fractions ``warmup_iters / max_iter`` and
    ``steps[i] / max_iter`` of progress, and training ends when progress reaches 1. The whole
    schedule then fits inside the cap on a slow CPU (fewer steps), and a fast CPU still ends at
    ``max_iter`` with the iteration schedule.

    ``elapsed`` is seconds of training (evaluation excluded), kept across resumes through
    ``state_dict`` (plain floats). ``clock`` is injectable for tests; ``sync`` (DDP) makes every
    rank use rank 0's elapsed time so that all agree on the LR and on the last step.
    """

    def __init__(self, cfg, clock=time.monotonic, sync=None):
        self.cfg, self.clock, self.sync = cfg, clock, sync
        self.budget = cfg.max_minutes * 60.0
        self.elapsed = 0.0
        self._mark = None

    def start(self) -> None:
        """(Re)start the clock; time since the last tick, e.g. an evaluation, is not counted."""
        self._mark = self.clock()

    def tick(self) -> None:
        """Count the time since the previous tick (or start) as training; call once per step."""
        now = self.clock()
        self.elapsed += now - self._mark
        self._mark = now
        if self.sync is not None and self.budget > 0:
            self.elapsed = self.sync(self.elapsed)

    def progress(self, step: int) -> float:
        p = step / self.cfg.max_iter
        if self.budget > 0:
            p = max(p, self.elapsed / self.budget)
        return min(p, 1.0)

    def factor(self, step: int) -> float:
        if self.budget <= 0:
            return lr_factor(step, self.cfg)
        return lr_factor(self.progress(step) * self.cfg.max_iter, self.cfg)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def out_of_time(self) -> bool:
        return self.budget > 0 and self.elapsed >= self.budget

    def state_dict(self) -> dict:
        return {"elapsed_s": float(self.elapsed)}

    def load_state_dict(self, state: dict) -> None:
        # Checkpoints from before the time-driven schedule hold a LambdaLR state: no elapsed time.
        self.elapsed = float(state.get("elapsed_s", 0.0))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's LR for ``step``; returns the factor."""
        factor = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        return factor


def _rng_state() -> dict:
    """RNG states as tensors and plain data, so that ``last.pt`` loads with ``weights_only``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)}}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])


class JsonlLog:
    def __init__(self, path: Path, enabled: bool, append: bool):
        self.path, self.enabled = path, enabled
        if enabled and not append:
            path.unlink(missing_ok=True)

    def write(self, **record) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    progress.add_task("train", total=total, completed=start, loss="")
    return progress


def prepare_data(recipe: Recipe, rank: int) -> tuple[CocoDataset, CocoDataset | None]:
    from edgeseg.data.generate import ensure_dataset

    if rank == 0:
        ensure_dataset(recipe.data)
    if dist.is_initialized():
        dist.barrier()
    train = training_dataset(recipe.data.train, recipe.model)
    val = CocoDataset(recipe.data.val) if recipe.data.val else None
    if val is not None and val.class_names != train.class_names:
        raise EdgesegError(f"{val.json_path}: class names differ from the training set's")
    return train, val


def _sync_from_rank0(world: int, device: torch.device):
    if world <= 1:
        return None

    def sync(value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(t, 0)
        return t.item()

    return sync


def train(recipe: Recipe, resume: bool = False, show_progress: bool = True, log=print,
          clock=time.monotonic) -> dict:
    """Train ``recipe``; returns a summary with the output folder, the final/best mask AP and how
    much of the recipe's steps and LR schedule ran (see ``LRSchedule``). ``clock`` times the
    ``solver.max_minutes`` budget (injectable for tests)."""
    rank, world, device = setup_distributed()
    solver, tcfg = recipe.solver, recipe.train
    if solver.ims_per_batch % world:
        raise EdgesegError(f"solver.ims_per_batch={solver.ims_per_batch} is not divisible by {world} processes")
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    out = Path(tcfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_set, val_set = prepare_data(recipe, rank)
    recipe.model.num_classes = len(train_set.class_names)

    torch.manual_seed(tcfg.seed)
    np.random.seed(tcfg.seed)
    random.seed(tcfg.seed)
    model = create_model(recipe.model)
    if tcfg.init and not resume:
        loaded, kept, init_names = init_from_checkpoint(model, tcfg.init)
        log(f"init from {tcfg.init}: {len(loaded)} weights loaded, {len(kept)} kept their initialisation"
            + (f" ({', '.join(kept[:4])}{' ...' if len(kept) > 4 else ''})" if kept else ""))
        if init_names is not None and list(init_names) != list(train_set.class_names):
            log(f"warning: {tcfg.init} was trained on classes {init_names}, this data has {train_set.class_names}")
    model = model.to(device)
    if solver.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, solver)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    # Named ``scheduler`` (state key "scheduler" in last.pt) as the LambdaLR it replaces.
    scheduler = LRSchedule(solver, clock=clock, sync=_sync_from_rank0(world, device))
    dtype = amp_dtype(solver.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    # The average (solver.ema_decay) is what is evaluated and saved as "model"; last.pt then keeps
    # the live weights for resuming under train.live_model.
    ema = WeightAverage(model, solver.ema_decay) if solver.ema_decay > 0 else None
    start, best_ap = 0, -1.0
    last_path = out / "last.pt"
    if resume:
        if not last_path.is_file():
            raise EdgesegError(f"{last_path}: nothing to resume from")
        state = read_checkpoint(last_path)
        ts = state["train"]
        model.load_state_dict(ts.get("live_model", state["model"]))
        if ema is not None:
            ema.load(state["model"], ts["step"])
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        scaler.load_state_dict(ts["scaler"])
        start, best_ap = ts["step"], ts.get("best_ap", -1.0)
        _set_rng_state(ts["rng"])
        log(f"resumed from {last_path} at step {start}")

    net = DistributedDataParallel(model) if world > 1 else model
    stream = TrainStream(train_set, recipe.data, tcfg.seed)
    loader = DataLoader(stream, batch_sampler=StepBatchSampler(solver.ims_per_batch, start, solver.max_iter, rank, world),
                        collate_fn=collate, num_workers=recipe.data.num_workers,
                        persistent_workers=False, prefetch_factor=4 if recipe.data.num_workers else None)
    jsonl = JsonlLog(out / "log.jsonl", rank == 0, append=resume)
    progress = _progress(show_progress and rank == 0, solver.max_iter, start)

    saved = ema.module if ema is not None else model

    def checkpoint(step: int, path: Path) -> None:
        if rank == 0:
            train_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                           "scaler": scaler.state_dict(), "step": step, "best_ap": best_ap, "rng": _rng_state()}
            if ema is not None:
                train_state["live_model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            save_checkpoint(path, saved, recipe, train_set.class_names, train_state)

    def run_eval(step: int) -> float:
        nonlocal best_ap
        if val_set is None or rank != 0:
            return -1.0
        model.eval()
        report = evaluate_dataset(TorchPredictor(saved, recipe, train_set.class_names, dtype), val_set)
        model.train()
        ap = report["metrics"]["AP"] * 100
        others = {METRIC_NAMES[t]: r["metrics"]["AP"] * 100 for t, r in report["by_type"].items()
                  if t != report["iou_type"]}
        jsonl.write(step=step, metric=report["metric"], eval=report["metrics"], **{"also": others} if others else {})
        also = "".join(f"  {name} {value:.2f}" for name, value in others.items())
        log(f"step {step}: {report['metric']} {ap:.2f}  AP50 {report['metrics']['AP50'] * 100:.2f}{also}")
        if ap > best_ap:
            best_ap = ap
            save_checkpoint(out / "best.pt", saved, recipe, train_set.class_names, extra={"step": step, "ap": ap, "metric": report["metric"]})
        return ap

    step = start
    model.train()
    scheduler.start()
    with progress or nullcontext():
        for images, targets in loader:
            scheduler.apply(optimizer, step)
            images = images.to(device, non_blocking=True)
            if solver.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                outputs = net(images)
            losses = ramp_losses(model.losses(outputs, targets), solver, step, first=step == start)
            loss = sum(losses.values())
            if not math.isfinite(loss.item()):
                raise EdgesegError(f"step {step}: loss is {loss.item()} ({ {k: round(v.item(), 4) for k, v in losses.items()} })")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if solver.clip_grad_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), solver.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            step += 1
            scheduler.tick()
            if progress:
                progress.update(progress.task_ids[0], completed=step, loss=f"loss {loss.item():.3f}")
            if step % tcfg.log_period == 0 or step == solver.max_iter:
                jsonl.write(step=step, lr=optimizer.param_groups[0]["lr"], time=round(scheduler.elapsed, 2),
                            progress=round(scheduler.progress(step), 4),
                            loss=loss.item(), **{k: round(v.item(), 5) for k, v in losses.items()})
            # Every rank sees rank 0's elapsed time (``sync``), so all stop at the same step.
            done = step >= solver.max_iter or scheduler.done(step)
            if step % tcfg.checkpoint_period == 0 or done:
                checkpoint(step, last_path)
            if (tcfg.eval_period and step % tcfg.eval_period == 0) or done:
                run_eval(step)
                scheduler.start()  # evaluation time is not training time
            if done:
                break
    completed = scheduler.progress(step)
    time_capped = step < solver.max_iter and scheduler.out_of_time()
    summary = {"output_dir": str(out), "step": step, "max_iter": solver.max_iter,
               "train_minutes": round(scheduler.elapsed / 60, 2), "best_ap": best_ap,
               "schedule_completed": round(completed, 4), "time_capped": time_capped,
               "expected_ap": tcfg.expected_ap, "supervision": check_supervision(train_set, recipe.model)}
    if time_capped:
        log(f"solver.max_minutes={solver.max_minutes:g} reached at step {step}/{solver.max_iter}: "
            f"the LR schedule ran {completed:.0%} of its course, compressed into "
            f"{step / solver.max_iter:.0%} of the recipe's steps")
    else:
        log(f"trained {step}/{solver.max_iter} steps: {completed:.0%} of the LR schedule")
    log(f"trained from {summary['supervision']} ({train_set.source}, {len(train_set)} images)")
    jsonl.write(done=True, **summary)
    if dist.is_initialized():
        dist.barrier()
    return summary
