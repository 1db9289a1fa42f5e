"""Make the model zoo's golden files (tests/golden/golden_zoo_*.npz / .json) from the original code.

Targets:
  log_linear  scipy.signal.spectrogram as LVS / EZ-VSL / SLAVC / FNAC call it (their `load_spectrogram`)
  ezvsl       stoneMo/EZ-VSL        model.py  EZVSL        (--ezvsl CHECKOUT)
  slavc       stoneMo/SLAVC         model.py  SLAVC        (--slavc CHECKOUT)
  fnac        OpenNLPLab/FNAC_AVL   model.py  FNAC         (--fnac CHECKOUT)
  lvs         hche11/Localizing-Visual-Sounds-the-Hard-Way  model.py  AVENet  (--lvs CHECKOUT)

For each model: the original module is imported from its checkout, its state dict is filled by the
seeded recipe below (`recipe_state_dict`, the one of golden_model_shared.md), the inputs are drawn
from the same generator after the weights, and the original forward pass runs on the CPU in eval mode
(float32, one thread, deterministic algorithms). The .npz holds its outputs (features, embeddings,
maps, loss terms); the .json the state-dict keys and shapes (the recipe's order), a fingerprint of the
weights and of the inputs, versions and commits. Neither weights nor inputs are stored: the tests
rebuild them from the recipe, write an original-format checkpoint and load it with sslsan's reader.

This script needs torchvision and scipy, which sslsan does not depend on: run it in a throwaway venv,

  python3 -m venv /tmp/zoo-orig-venv
  /tmp/zoo-orig-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 scipy numpy
  git clone https://github.com/stoneMo/EZ-VSL /tmp/EZ-VSL   (and SLAVC, FNAC_AVL, Localizing-Visual-Sounds-the-Hard-Way)
  /tmp/zoo-orig-venv/bin/python tests/golden/make_zoo_goldens.py --ezvsl /tmp/EZ-VSL --slavc /tmp/SLAVC \\
      --fnac /tmp/FNAC_AVL --lvs /tmp/Localizing-Visual-Sounds-the-Hard-Way [--only ezvsl ...]

The commits the committed files were made from are in each .json ("source").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/zoo_recipe.py: the recipe the tests rebuild the weights with
from zoo_recipe import draw_inputs, fingerprint, recipe_state_dict  # noqa: E402

SEED = {"ezvsl": 2031, "slavc": 2032, "fnac": 2033, "lvs": 2034}
FRAMES_3S, FRAMES_10S = 200, 671  # log_linear frames of 3 s / 10 s at 16 kHz (hop 238, no padding)


# --------------------------------------------------------------------------------------------- helpers


def load_module(checkout: Path, name: str, filename: str = "model.py"):
    """Import `filename` of an original checkout as module `name` (its directory first on sys.path)."""
    sys.path.insert(0, str(checkout))
    for clash in [m for m in sys.modules if m in ("utils", "models", "datasets") or m.startswith("models.")]:
        del sys.modules[clash]  # the repos' own helper modules share these names
    try:
        spec = importlib.util.spec_from_file_location(name, checkout / filename)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(checkout))


def source(checkout: Path, repo: str) -> dict:
    try:
        sha = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown (not a git checkout)"
    return {"repo": repo, "commit": sha}


def versions() -> dict:
    import scipy
    import torchvision
    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


def seeded_model(model: torch.nn.Module, seed: int) -> tuple[dict, np.random.Generator, dict]:
    """Fill `model` with the recipe's weights -> (key list, generator after the weights, fingerprint)."""
    sd = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    weights, rng = recipe_state_dict(shapes, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    keys = [{"key": k, "shape": list(shapes[k]), "dtype": str(sd[k].dtype).replace("torch.", "")} for k in sorted(shapes)]
    return keys, rng, fingerprint(weights)


def write(name: str, arrays: dict[str, np.ndarray], meta: dict, prefix: str = "golden_zoo", versions=None) -> None:
    """tests/golden/<prefix>_<name>.npz / .json; `versions`: the function recording the packages used."""
    npz, js = HERE / f"{prefix}_{name}.npz", HERE / f"{prefix}_{name}.json"
    np.savez_compressed(npz, **{k: np.asarray(v) for k, v in arrays.items()})
    meta = {**meta, "arrays": {k: list(np.shape(v)) for k, v in arrays.items()}, "versions": (versions or globals()["versions"])()}
    js.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {npz.name} ({npz.stat().st_size / 1024:.0f} KiB) and {js.name}")


def t2n(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def without_imagenet_download(mod) -> None:
    """The original builds its image tower with torchvision's resnet18(pretrained=True), an ImageNet download;
    the recipe overwrites every weight, so the tower is built without it (same architecture)."""
    import torchvision

    mod.resnet18 = lambda pretrained=False, **kw: torchvision.models.resnet18(weights=None, **kw)


def spy(obj, name: str) -> list:
    """Record (args, result) of every call of the method `name` of `obj` (the original's own code still runs)."""
    calls, original = [], getattr(obj, name)

    def recorded(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args, out))
        return out

    setattr(obj, name, recorded)
    return calls


def model_meta(name: str, what: str, checkout: Path, repo: str, keys: list, weights_fp: dict, images: np.ndarray,
               specs: np.ndarray, **extra) -> dict:
    return {"what": what, "source": source(checkout, repo), "seed": SEED[name], "keys": keys,
            "weights_fingerprint": weights_fp, "inputs": {"images": list(images.shape), "specs": list(specs.shape),
                                                          "fingerprint": fingerprint({"images": images, "specs": specs})},
            "tolerance_abs": 1e-5, **extra}


# ----------------------------------------------------------------------------------------- log_linear

# (name, sample rate, clip seconds, window seconds): the clip is tiled to the window as the repos do
LOG_LINEAR_CLIPS = (("noise", 16000, 3.0, 3.0), ("tones_dc", 16000, 3.0, 3.0), ("short_22k", 22050, 1.1, 3.0))


def log_linear_wave(kind: str, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    if kind == "noise":
        w = 0.1 * rng.normal(size=n)
    elif kind == "tones_dc":  # a chirp, a harmonic tone and a DC offset (the per-segment detrend removes it)
        w = 0.3 * np.sin(2 * np.pi * (200 * t + 600 * t**2)) + 0.2 * np.sin(2 * np.pi * 440 * t) + 0.25
    else:
        w = 0.5 * np.sin(2 * np.pi * 1000 * t) * np.exp(-t) + 0.01 * rng.normal(size=n)
    return np.clip(w, -1.0, 1.0).astype(np.float32)


def make_log_linear(args) -> None:
    """The repos' `load_spectrogram` after decoding: tile to the window (n = int(sr * dur / len) + 1 copies, then
    cut), scipy.signal.spectrogram(x, sr, nperseg=512, noverlap=274), log(S + 1e-7), ToTensor + Normalize(0, 12)."""
    from scipy import signal

    rng = np.random.default_rng(2030)
    arrays, recipe = {}, []
    for name, sr, clip, window in LOG_LINEAR_CLIPS:
        wave = log_linear_wave(name, sr, clip, rng)
        x = wave.astype(np.float64)
        want = int(sr * window)
        if x.shape[0] < sr * window:
            x = np.tile(x, int(sr * window / x.shape[0]) + 1)
        x = x[:want]
        _, _, spec = signal.spectrogram(x, sr, nperseg=512, noverlap=274)
        spec = (np.log(spec + 1e-7) - 0.0) / 12.0
        arrays[f"wave_{name}"] = wave
        arrays[f"spec_{name}"] = spec.astype(np.float32)[None]
        recipe.append({"name": name, "sample_rate": sr, "clip_seconds": clip, "window_seconds": window,
                       "spec_shape": list(spec.shape)})
    write("log_linear", arrays, {
        "what": "scipy.signal.spectrogram(x, fs, nperseg=512, noverlap=274) with its defaults (periodic Tukey(0.25) "
                "window, constant detrend, density scaling, one-sided), log(S + 1e-7), Normalize(0, 12), of "
                "waveforms tiled to the window as EZ-VSL / SLAVC / FNAC / LVS load_spectrogram do; computed in "
                "float64 (their numpy path), stored as float32",
        "source": "stoneMo/EZ-VSL datasets.py load_spectrogram; hche11/Localizing-Visual-Sounds-the-Hard-Way "
                  "datasets/dataloader.py",
        "clips": recipe})


# ----------------------------------------------------------------------------------------- models


def make_ezvsl(args) -> None:
    """EZVSL(tau=0.03, dim=512) in eval mode: forward(image, audio) -> (loss, Savl), and the inputs of its
    max_xmil_loss (the normalised image features and audio embeddings) and its Slogits."""
    mod = load_module(args.ezvsl, "ezvsl_model")
    without_imagenet_download(mod)
    model = mod.EZVSL(0.03, 512).eval()
    keys, rng, weights_fp = seeded_model(model, SEED["ezvsl"])
    images, specs = draw_inputs(rng, FRAMES_3S)
    calls = spy(model, "max_xmil_loss")
    with torch.no_grad():
        loss, savl = model(torch.from_numpy(images), torch.from_numpy(specs))
    (img, aud), (_, slogits) = calls[0]
    write("ezvsl", {"image_features": t2n(img), "audio_embedding": t2n(aud), "cross_logits": t2n(slogits),
                    "savl": t2n(savl), "loss": t2n(loss)},
          model_meta("ezvsl", "stoneMo/EZ-VSL model.py EZVSL(tau=0.03, dim=512), eval mode, torch.no_grad: "
                     "image_features/audio_embedding = the arguments of max_xmil_loss (img (B,512,7,7), aud (B,512)), "
                     "cross_logits = its Slogits einsum('nchw,mc->nmhw')/tau, savl = forward's Savl (diagonal), "
                     "loss = forward's loss (CE image->audio + CE audio->image of the spatial-max logits)",
                     args.ezvsl, "stoneMo/EZ-VSL", keys, weights_fp, images, specs,
                     note="resnet18(pretrained=True) built without the ImageNet download (the recipe sets every weight)"))


# momentum parameters stored after SLAVC's EMA update (a few small ones: image and audio side, tower and heads)
SLAVC_EMA_KEYS = ("momentum_img_proj1.bias", "momentum_img_proj2.bias", "momentum_imgnet.conv1.weight",
                  "momentum_aud_proj1.bias", "momentum_aud_proj2.bias", "momentum_audnet.layer4.1.bn2.weight")


def make_slavc(args) -> None:
    """SLAVC(tau=0.03, dim=512, dropout_img=0.9, dropout_aud=0, m_img=m_aud=0.9, use_mom_eval) in eval mode.

    1. forward(mode='test'): no EMA update; the outputs of forward_img_features / forward_aud_features (online,
       then momentum), Savl with use_mom_eval False and True, the loss;
    2. forward(mode='train') (still in eval mode, so BatchNorm and dropout stay deterministic): the EMA update
       with m = 0.9 happens first; the loss after it and some momentum parameters after it.
    """
    mod = load_module(args.slavc, "slavc_model")
    without_imagenet_download(mod)
    model = mod.SLAVC(0.03, 512, 0.9, 0.0, 0.9, 0.9, False).eval()
    keys, rng, weights_fp = seeded_model(model, SEED["slavc"])
    images, specs = draw_inputs(rng, FRAMES_3S)
    x, a = torch.from_numpy(images), torch.from_numpy(specs)
    img_calls, aud_calls = spy(model, "forward_img_features"), spy(model, "forward_aud_features")
    with torch.no_grad():
        loss, savl = model(x, a, mode="test")
        model.use_mom_eval = True
        _, savl_mom = model(x, a, mode="test")
        model.use_mom_eval = False
        loss_ema, _ = model(x, a, mode="train")
    (_, (img1, img2)) = img_calls[0]
    (_, (aud1, aud2)), (_, (aud1_trg, aud2_trg)) = aud_calls[:2]
    sd = model.state_dict()
    # the momentum image features are checked through savl_mom and the loss (kept out: 400 KB)
    arrays = {"img1": t2n(img1), "img2": t2n(img2), "aud1": t2n(aud1), "aud2": t2n(aud2),
              "aud1_trg": t2n(aud1_trg), "aud2_trg": t2n(aud2_trg), "savl": t2n(savl),
              "savl_mom": t2n(savl_mom), "loss": t2n(loss), "loss_after_ema": t2n(loss_ema),
              **{f"ema/{k}": t2n(sd[k]) for k in SLAVC_EMA_KEYS}}
    write("slavc", arrays, model_meta(
        "slavc", "stoneMo/SLAVC model.py SLAVC(tau=0.03, dim=512, dropout_img=0.9, dropout_aud=0, momentum_img=0.9, "
        "momentum_aud=0.9, use_mom_eval=False) in eval mode, torch.no_grad: img1/img2/aud1/aud2 = the online "
        "forward_img_features / forward_aud_features outputs, aud*_trg the momentum audio ones; savl = Savl of "
        "forward(mode='test'), savl_mom the same with use_mom_eval=True; loss = its loss; then forward(mode='train') "
        "(EMA update with m=0.9 before the momentum targets): loss_after_ema and ema/<key> = those momentum "
        "parameters after the update", args.slavc, "stoneMo/SLAVC", keys, weights_fp, images, specs,
        momentum=0.9, note="resnet18(pretrained=True) built without the ImageNet download (the recipe sets every weight)"))


def make_fnac(args) -> None:
    """FNAC(tau=0.03, dim=512, dropout_img=0.9, dropout_aud=0) in eval mode: forward(image, audio) -> (losses,
    Savl), and the inputs of its calculate_loss (normalised image features, audio embeddings) and its Slogits."""
    mod = load_module(args.fnac, "fnac_model")
    without_imagenet_download(mod)
    model = mod.FNAC(0.03, 512, 0.9, 0.0).eval()
    keys, rng, weights_fp = seeded_model(model, SEED["fnac"])
    images, specs = draw_inputs(rng, FRAMES_3S)
    calls = spy(model, "calculate_loss")
    with torch.no_grad():
        (loss, fns1, tns, fns2), savl = model(torch.from_numpy(images), torch.from_numpy(specs))
    (img, aud), (_, slogits) = calls[0]
    write("fnac", {"image_features": t2n(img), "audio_embedding": t2n(aud), "cross_logits": t2n(slogits),
                   "savl": t2n(savl), "loss": t2n(loss), "loss_fns1": t2n(fns1), "loss_tns": t2n(tns),
                   "loss_fns2": t2n(fns2)},
          model_meta("fnac", "OpenNLPLab/FNAC_AVL model.py FNAC(tau=0.03, dim=512, dropout_img=0.9, dropout_aud=0), "
                     "eval mode, torch.no_grad: image_features/audio_embedding = the arguments of calculate_loss, "
                     "cross_logits = its Slogits, savl = forward's Savl, loss / loss_fns1 / loss_tns / loss_fns2 = "
                     "its four losses [MIL contrastive, FNS-1, TNS, FNS-2] (train.py weighs the last three by 100 "
                     "after the warm-up epochs)", args.fnac, "OpenNLPLab/FNAC_AVL", keys, weights_fp, images, specs,
                     note="resnet18(pretrained=True) built without the ImageNet download (the recipe sets every weight)"))


def make_lvs(args) -> None:
    """AVENet(epsilon=0.65, epsilon2=0.4, tri_map, Neg) in eval mode: forward(image, audio, args) -> (A, logits,
    Pos, Neg), the two L2-normalised tensors it computes (image features, pooled audio), and the cross-entropy
    of its logits with target 0. Its forward builds the B x B mask with `.cuda()`: `Tensor.cuda` is the
    identity during the call, so it runs on the CPU with unchanged math."""
    mod = load_module(args.lvs, "lvs_model")
    model = mod.AVENet(types.SimpleNamespace(epsilon=0.65, epsilon2=0.4, tri_map=True, Neg=True,
                                             random_threshold=None)).eval()
    keys, rng, weights_fp = seeded_model(model, SEED["lvs"])
    images, specs = draw_inputs(rng, FRAMES_10S)
    normalised, normalize, cuda = [], torch.nn.functional.normalize, torch.Tensor.cuda

    def recorded(x, *a, **k):
        out = normalize(x, *a, **k)
        normalised.append(out)
        return out

    torch.nn.functional.normalize, torch.Tensor.cuda = recorded, lambda self, *a, **k: self
    try:
        with torch.no_grad():
            sim, logits, pos, neg = model(torch.from_numpy(images), torch.from_numpy(specs), None)
    finally:
        torch.nn.functional.normalize, torch.Tensor.cuda = normalize, cuda
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
    write("lvs", {"image_features": t2n(normalised[0]), "audio_embedding": t2n(normalised[1]), "sim_map": t2n(sim),
                  "logits": t2n(logits), "pos_mask": t2n(pos), "neg_mask": t2n(neg), "loss": t2n(loss)},
          model_meta("lvs", "hche11/Localizing-Visual-Sounds-the-Hard-Way model.py AVENet(epsilon=0.65, epsilon2=0.4, "
                     "tri_map=True, Neg=True) in eval mode, torch.no_grad: image_features / audio_embedding = the "
                     "two F.normalize results of forward (layer4 map; max-pooled audio), sim_map/logits/pos_mask/"
                     "neg_mask = forward's A, logits, Pos, Neg; loss = cross_entropy(logits, 0) (LVS's training "
                     "code is not released; this is the loss its logits are built for)", args.lvs,
                     "hche11/Localizing-Visual-Sounds-the-Hard-Way", keys, weights_fp, images, specs,
                     note="Tensor.cuda made the identity during forward (its B x B mask), nothing else changed",
                     tolerance_logits="1e-4 + 1e-5 |ref| (entries near -750: the masked diagonal)"))


TARGETS = {"log_linear": make_log_linear, "ezvsl": make_ezvsl, "slavc": make_slavc, "fnac": make_fnac,
           "lvs": make_lvs}


def run_targets(doc: str, targets: dict, checkouts: tuple[str, ...], argv: list[str] | None) -> int:
    """The command line of a golden maker: one --<name> CHECKOUT per repository in `checkouts`, --only; every
    target named by a checkout needs it. Runs the targets single-threaded and deterministic."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in checkouts:
        p.add_argument(f"--{name}", type=Path, help=f"checkout of the {name} repository")
    p.add_argument("--only", nargs="+", choices=list(targets), help="make only these targets")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in args.only or list(targets):
        if name in checkouts and getattr(args, name) is None:
            p.error(f"target {name} needs --{name} CHECKOUT")
        targets[name](args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_targets(__doc__, TARGETS, ("ezvsl", "slavc", "fnac", "lvs"), argv)


if __name__ == "__main__":
    raise SystemExit(main())
