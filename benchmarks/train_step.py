"""Training-step throughput: a literal original SSL-SaN step against ours, on one device.

(a) original: fp32; the model called as the original AVENet is (image + audio tower per call):
    once on (image, spec), once on (T(image), spec) — the audio tower twice on the same input — and
    once per negative type on (image, B silence copies) and (image, noise), recomputing the image tower.
(b) ours: `SilenceNoiseObjective` around `SSLTIEObjective`: audio tower once, both views in one image batch when s = 1, 1 silence +
    B noise in one audio batch; on CUDA also bf16 autocast, channels_last and fused Adam.
(c) ours_compiled (optional): (b) with `torch.compile` on the model, as `train.compile=true` does.
All optimise the same SSL-SaN loss (all four switches on) with Adam(lr 1e-4, wd 1e-4), on the same
synthetic inputs and TE draws. Each measurement runs in a fresh process so peak memory is its own
(CUDA: max_memory_allocated; CPU: peak RSS growth over the warm-up and timed steps).

    python benchmarks/train_step.py                              # paper sizes, batch 32 and 128
    python benchmarks/train_step.py --width 0.25 --image-size 112 --spec-frames 160 --batch-sizes 8 16 --steps 3
    python benchmarks/train_step.py --variants ours ours_compiled --warmup 5    # does torch.compile pay?
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sslsan.losses import (
    ContrastiveLoss,
    SilenceNoiseConfig,
    SilenceNoiseLoss,
    SilenceNoiseObjective,
    SSLTIEObjective,
    TIEObjectiveConfig,
)
from sslsan.models import Localizer, ModelConfig

# ours_fp32: our step structure without the CUDA extras; ours_compiled: ours with torch.compile(model)
VARIANTS = ("original", "ours", "ours_fp32", "ours_compiled")


def original_step(model, objective, images, specs, silence_b, noise, generator):
    """The original call pattern, written out (negatives as extra logits on the original view)."""
    def avenet(img, spec):
        v, a = model.image_features(img), model.audio_embedding(spec)
        return model.pair_map(v, a), model.cross_map(v, a)

    cfg, transform = objective.base.cfg, objective.base.transform
    contrastive, san = ContrastiveLoss(cfg.epsilon, cfg.epsilon2, cfg.tau, cfg.temperature), SilenceNoiseLoss()
    params = transform.draw(images.shape[0], generator, device=images.device)
    sim, cross = avenet(images, specs)
    s_sil, _ = avenet(images, silence_b)
    s_noise, _ = avenet(images, noise)
    extra = torch.cat([s_sil.mean(dim=(2, 3)), s_noise.mean(dim=(2, 3))], dim=1)
    loss_cl, _ = contrastive(sim, cross, extra)
    sim_t, cross_t = avenet(transform(images, params), specs)
    loss_cl_t, _ = contrastive(sim_t, cross_t)
    loss_te = F.mse_loss(sim_t, transform(sim, params))
    return 0.5 * (loss_cl + loss_cl_t) + loss_te + san(s_sil) + san(s_noise)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def measure(variant: str, batch: int, args: argparse.Namespace, device_name: str) -> dict:
    """Time `args.steps` optimisation steps after `args.warmup` untimed ones."""
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    ours = variant.startswith("ours")
    fast = variant in ("ours", "ours_compiled") and cuda
    model = Localizer(ModelConfig(width=args.width)).to(device).train()
    fmt = torch.channels_last if fast and args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    adam = dict(lr=1e-4, weight_decay=1e-4)
    if fast:
        adam["fused"] = True
    elif not ours:
        adam["foreach"] = False  # the original's torch-1.x per-parameter loop
    opt = torch.optim.Adam(model.parameters(), **adam)
    step_model = torch.compile(model) if variant == "ours_compiled" else model
    # D14 logits on the original view only, as `original_step` writes it: both compute one loss
    objective = SilenceNoiseObjective(SSLTIEObjective(TIEObjectiveConfig(image_size=args.image_size)),
                                      SilenceNoiseConfig(negatives_in_te_view=False).resolved(True)).to(device)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, args.image_size, args.image_size, generator=g).to(device, memory_format=fmt)
    spec_shape = (1, args.spec_bins, args.spec_frames)
    specs = (torch.randn(batch, *spec_shape, generator=g) * 20 - 40).to(device, memory_format=fmt)
    noise = (torch.randn(batch, *spec_shape, generator=g) * 5).to(device, memory_format=fmt)
    silence = torch.full((1, *spec_shape), -100.0, device=device).contiguous(memory_format=fmt)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast and args.amp) if cuda else torch.autocast(
        "cpu", enabled=False)

    def step(i: int) -> float:
        te_gen = torch.Generator().manual_seed(1000 + i)  # same TE draws for both variants
        opt.zero_grad(set_to_none=True)
        with amp:
            if ours:
                loss, _ = objective(step_model, images, specs, silence, noise, generator=te_gen)
            else:
                loss = original_step(model, objective, images, specs, silence.expand(batch, -1, -1, -1),
                                     noise, te_gen)
        loss.backward()
        opt.step()
        return loss.detach()

    rss0 = _rss_mb()
    for i in range(args.warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(args.warmup + i)
    float(loss)  # waits for the device
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak = max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0)
    return {"variant": variant, "batch": batch, "samples_per_s": batch * args.steps / elapsed,
            "step_s": elapsed / args.steps, "peak_mem_mb": peak, "final_loss": float(loss)}


def _child(queue, variant, batch, args, device):
    try:
        torch.set_num_threads(args.threads) if args.threads else None
        queue.put(measure(variant, batch, args, device))
    except Exception as exc:  # report, e.g. out of memory, instead of hanging the parent
        queue.put({"variant": variant, "batch": batch, "error": f"{type(exc).__name__}: {exc}"})


def run_isolated(variant: str, batch: int, args, device: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, variant, batch, args, device))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["original", "ours"],
                   help="steps to measure; ratios are against 'original' (ours_fp32 = ours without bf16, "
                        "channels_last and fused Adam, to separate structure from precision; ours_compiled = ours "
                        "with torch.compile(model))")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128], help="batch sizes to measure")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of both ResNet-18 towers")
    p.add_argument("--image-size", type=int, default=224, help="training image side in pixels")
    p.add_argument("--spec-bins", type=int, default=257, help="mel bins of the spectrogram (height)")
    p.add_argument("--spec-frames", type=int, default=670, help="spectrogram frames (width); 670 = 10 s")
    p.add_argument("--steps", type=int, default=20, help="timed optimisation steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (cuDNN autotuning)")
    p.add_argument("--device", default="auto", help="'auto' (cuda if available, else cpu), 'cpu', 'cuda:0', ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per measurement (0 = torch default)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="ours without bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="ours without channels_last on CUDA")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs for both variants")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    print(f"device {device} ({name}); width {args.width:g}, image {args.image_size}, spec "
          f"{args.spec_bins}x{args.spec_frames}, {args.steps} timed steps after {args.warmup} warm-up")
    results, ratios = [], {}
    header = f"{'batch':>5}  {'variant':<9} {'samples/s':>10} {'step s':>8} {'peak MB':>9}"
    print(header + "\n" + "-" * len(header))
    for batch in args.batch_sizes:
        row = {}
        for variant in args.variants:
            res = run_isolated(variant, batch, args, device)
            results.append(res)
            row[variant] = res
            if "error" in res:
                print(f"{batch:>5}  {variant:<9} failed: {res['error']}")
            else:
                print(f"{batch:>5}  {variant:<9} {res['samples_per_s']:>10.2f} {res['step_s']:>8.3f} "
                      f"{res['peak_mem_mb']:>9.0f}", flush=True)
        o = row.get("original")
        for variant, u in row.items():
            if variant == "original" or o is None or "error" in o or "error" in u:
                continue
            mem = u["peak_mem_mb"] / o["peak_mem_mb"] if o["peak_mem_mb"] else None
            ratios.setdefault(str(batch), {})[variant] = {"speedup": u["samples_per_s"] / o["samples_per_s"],
                                                          "peak_mem_ratio": mem}
            print(f"{batch:>5}  {variant}/original: {u['samples_per_s'] / o['samples_per_s']:.2f}x samples/s, "
                  f"{'n/a' if mem is None else f'{mem:.2f}x'} peak memory")
    if args.json:
        from sslsan.utils.io import atomic_write_text

        report = {"device": device, "device_name": name, "torch": torch.__version__,
                  "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "results": results, "ratios": ratios}
        atomic_write_text(args.json, json.dumps(report, indent=1) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
