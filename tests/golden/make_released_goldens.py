"""Make the golden files of the released-checkpoint methods that the model zoo's script does not cover
(tests/golden/golden_released_<method>.npz / .json) by running the original inference code.

Targets:
  rcgrad    hohsiangwu/rethinking-visual-sound-localization  models.py RCGrad.pred_audio  (--rcgrad CHECKOUT)
  sslalign  kaistmm/SSLalignment  test.py's model (model_lvs.py AVENet) and datasets_lvs.py's audio
            (--sslalign CHECKOUT)

For each: the original model is built by the original code, its state dict filled by the seeded recipe
of tests/zoo_recipe.py (the model zoo's, one draw per entry in sorted key order), saved in the released
file's format and loaded by the original loading code; the inputs are drawn from the same generator
after the weights; the original inference runs on the CPU (float32, one thread, deterministic
algorithms). The .npz holds the outputs; the inputs (uint8 images, 16 kHz waveforms) are drawn by tests/released_golden.py; the .json the state-dict keys and shapes (the recipe's order), fingerprints, versions and
commits. Weights are not stored: the tests rebuild them from the recipe, write the original-format
file and load it with `sslsan.methods.checkpoint.load_model`.

RCGrad: RCGrad.__init__ downloads rc_grad.pt with torch.hub.load_state_dict_from_url; here that call
returns the seeded file's contents (the original then strips the prefixes and loads each tower
strictly, as it does the release). pred_audio runs as is: CLIP preprocess, GradCAM on layer4[-1] with
pytorch-grad-cam 1.3.7's ActivationsAndGradients and scale_cam_image, clean_pred. Its imports of
clip, wav2clip and its transformer_mm_clip (used only by CLIPTran) are stubbed. Stored: the raw CAM (GradCAM's
`get_cam_image` of the recorded activations and gradients, ReLU'd: before any normalisation), the
pooled embeddings, and pred_audio's output.

SSL-Align: model_lvs.AVENet's forward builds a (B, B) mask with `.cuda()`; on the CPU that call is
made a no-op for the forward (the mask only enters the training logits). The checkpoint is loaded as
test.py does it for `ours_*` files ({'model_state_dict'} without `module.`: prefixed, strict=False into a
DataParallel model); the golden checks that this loads every key. The audio is datasets_lvs.py's
__getitem__ from `sf.read` on: tile to 10 s, samples [int(16000*3.5), int(16000*6.5)), clip to [-1, 1],
scipy.signal.spectrogram(nperseg=512, noverlap=353), log(S + 1e-7), ToTensor + Normalize(0, 12)
(transcribed: the class needs its authors' data folders); the image transform is ToTensor, Resize
bicubic, CenterCrop, ImageNet Normalize.

Needs torchvision, torchaudio, scipy, opencv, pytorch-grad-cam and ttach, which sslsan does not depend
on. Make a throwaway venv:

  python3 -m venv /tmp/released-orig-venv
  /tmp/released-orig-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 scipy numpy pillow \\
      opencv-python-headless scikit-learn soundfile tqdm matplotlib
  /tmp/released-orig-venv/bin/pip install --no-deps torchaudio==2.11.0 grad-cam==1.3.7 ttach==0.0.3
  git clone https://github.com/hohsiangwu/rethinking-visual-sound-localization /tmp/rc
  git clone https://github.com/kaistmm/SSLalignment /tmp/al
  /tmp/released-orig-venv/bin/python tests/golden/make_released_goldens.py --rcgrad /tmp/rc --sslalign /tmp/al

(torchaudio 2.11 beside torch 2.14: only its pure-Python Spectrogram is used.) The commits the committed
files were made from are in each .json ("source").
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/zoo_recipe.py
sys.path.insert(0, str(HERE))  # make_zoo_goldens.py: its helpers
from make_zoo_goldens import load_module, run_targets, seeded_model, source, t2n  # noqa: E402
from make_zoo_goldens import write as zoo_write  # noqa: E402
from released_golden import IMAGE_SIZE, SR, draw_media  # noqa: E402
from zoo_recipe import fingerprint  # noqa: E402

SEED = {"rcgrad": 2041, "sslalign": 2042}


def versions() -> dict:
    import scipy
    import torchvision

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__}
    for mod in ("torchaudio", "cv2", "pytorch_grad_cam"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    return out


def write(name: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    zoo_write(name, arrays, meta, prefix="golden_released", versions=versions)


def recipe_meta(name: str, what: str, checkout: Path, repo: str, keys: list, weights_fp: dict, images, waves,
                **extra) -> dict:
    return {"what": what, "source": source(checkout, repo), "seed": SEED[name], "keys": keys,
            "weights_fingerprint": weights_fp,
            "inputs": {"images": list(images.shape), "waves": list(waves.shape), "sample_rate": SR,
                       "fingerprint": fingerprint({"images": images, "waves": waves})},
            "tolerance_abs": 1e-5, **extra}


# ---------------------------------------------------------------------------------------------- RCGrad


def stub_modules(*names: str) -> None:
    """Empty modules for imports the used code path never calls (RCGrad: CLIPTran's clip and wav2clip)."""
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))


def make_rcgrad(args) -> None:
    """RCGrad(): the released file's loading, then pred_audio(PIL image, 16 kHz waveform) per clip."""
    from PIL import Image

    # CLIPTran's imports: clip, wav2clip, and the package's transformer_mm_clip (which no longer imports under torch 2)
    stub_modules("clip", "wav2clip", "rethinking_visual_sound_localization.modules.transformer_mm_clip")
    sys.path.insert(0, str(args.rcgrad))
    from rethinking_visual_sound_localization import models as rc_models
    from rethinking_visual_sound_localization.modules.resnet import BasicBlock, ResNetSpec, resnet18

    # the file: a flat state dict of the Lightning module (both towers with their prefixes, and the loss's scale)
    image_encoder, audio_encoder = resnet18(modal="vision", pretrained=False), ResNetSpec(BasicBlock, [2, 2, 2, 2])
    full = torch.nn.ModuleDict({"image_encoder": image_encoder, "audio_encoder": audio_encoder})
    full.register_parameter("logit_scale", torch.nn.Parameter(torch.ones([]) * np.log(1 / 0.07)))
    keys, rng, weights_fp = seeded_model(full, SEED["rcgrad"])
    audio_encoder.spectrogram.window.copy_(torch.hann_window(512))  # a buffer torchaudio computes: kept, not seeded
    released = {k: v for k, v in full.state_dict().items() if k != "logit_scale"}
    released["loss_fn.logit_scale"] = full.logit_scale.detach().clone()
    buf = io.BytesIO()
    torch.save(released, buf)

    def hub_load(url, map_location=None, progress=True):
        assert url == rc_models.MODEL_URL
        return torch.load(io.BytesIO(buf.getvalue()), map_location=map_location)

    images, waves = draw_media(rng, seconds=10.0)
    rc_models.torch.hub.load_state_dict_from_url = hub_load
    rc = rc_models.RCGrad()  # its audio encoder stays in training mode (BatchNorm on each clip's own statistics)
    raw, pred, img_emb, aud_emb = [], [], [], []
    for img, wave in zip(images, waves):
        out = rc.pred_audio(Image.fromarray(img), wave)  # the original path, post-processing included
        ag = rc.cam.activations_and_grads
        a, g = ag.activations[0].numpy(), ag.gradients[0].numpy()
        raw.append(np.maximum(rc.cam.get_cam_image(None, None, None, a, g), 0)[0])
        pred.append(out)
        with torch.no_grad():
            x = rc_models.preprocess(Image.fromarray(img)).unsqueeze(0)
            img_emb.append(t2n(rc.cam.model(x))[0])
            aud_emb.append(t2n(rc.audio_encoder(torch.from_numpy(wave).unsqueeze(0)))[0])
    write("rcgrad", {"raw_cam": np.stack(raw).astype(np.float32), "pred_audio": np.stack(pred).astype(np.float32),
                     "image_embedding": np.stack(img_emb), "audio_embedding": np.stack(aud_emb)},
          recipe_meta("rcgrad", "rethinking_visual_sound_localization models.py RCGrad (eval): raw_cam = GradCAM.get_cam_image "
                      "of the activations/gradients pytorch-grad-cam recorded on image_encoder.layer4[-1] in pred_audio, "
                      "ReLU'd (no normalisation, 14x14); pred_audio = pred_audio's output (scale_cam_image to 224, "
                      "min-max, clean_pred); image_embedding = image_encoder(preprocess(img)); "
                      "audio_embedding = audio_encoder(waveform)", args.rcgrad,
                      "hohsiangwu/rethinking-visual-sound-localization", keys, weights_fp, images, waves,
                      released_keys=sorted(released),
                      note="the recipe's entry 'logit_scale' is saved as loss_fn.logit_scale; audio_encoder.spectrogram.window "
                           "is reset to torch.hann_window(512) after the recipe (torchaudio's buffer); RCGrad() never calls "
                           "eval() on its audio encoder, so pred_audio normalises each clip by its own BatchNorm statistics"))


# ------------------------------------------------------------------------------------------- SSL-Align

SSLALIGN_WINDOW = (10, 3.5, 6.5)  # datasets_lvs.py: audio_length, st, fi (VGG-SS / IS3)


def sslalign_spectrogram(wave: np.ndarray, samplerate: int = SR) -> np.ndarray:
    """datasets_lvs.py GetAudioVideoDataset.__getitem__, from `samples, samplerate = sf.read(...)` to aid_transform."""
    from scipy import signal

    audio_length, st, fi = SSLALIGN_WINDOW
    samples = wave.astype(np.float64)
    if samples.shape[0] < samplerate * audio_length:
        n = int(samplerate * audio_length / samples.shape[0]) + 1
        samples = np.tile(samples, n)
    resamples = samples[:samplerate * audio_length]
    resamples = resamples[int(16000 * st):int(16000 * fi)]
    resamples[resamples > 1.] = 1.
    resamples[resamples < -1.] = -1.
    _, _, spectrogram = signal.spectrogram(resamples, samplerate, nperseg=512, noverlap=353)
    spectrogram = np.log(spectrogram + 1e-7)
    return ((torch.from_numpy(spectrogram)[None] - 0.0) / 12.0).numpy()  # ToTensor + Normalize(0, 12): float64


def make_sslalign(args) -> None:
    """test.py for `ours_*.pth.tar`: AVENet(lvs_args), weights from {'model_state_dict'} (module.-prefixed, strict=False
    into DataParallel); forward(image, spec, args) -> heatmap A (B, 1, 14, 14)."""
    import torchvision.transforms as T
    from PIL import Image

    sys.path.insert(0, str(args.sslalign))
    mod = load_module(args.sslalign, "sslalign_model_lvs", "model_lvs.py")
    lvs_args = types.SimpleNamespace(epsilon=0.65, epsilon2=0.4, tri_map=True, Neg=True)
    with contextlib.redirect_stdout(io.StringIO()):
        net = mod.AVENet(lvs_args)
    keys, rng, weights_fp = seeded_model(net, SEED["sslalign"])
    images, waves = draw_media(rng, seconds=10.0)
    # test.py, 'ours' branch: DataParallel, module.-prefixed update, strict=False (checked here to load every key)
    ckpt = {"model_state_dict": {k: v.clone() for k, v in net.state_dict().items()}}
    model = torch.nn.DataParallel(mod.AVENet(lvs_args))
    model_dict = model.state_dict()
    pretrained = {"module." + x: ckpt["model_state_dict"][x] for x in ckpt["model_state_dict"]}
    assert set(pretrained) == set(model_dict), "the released layout is not the AVENet's"
    model_dict.update(pretrained)
    result = model.load_state_dict(model_dict, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()
    transform = T.Compose([T.ToTensor(), T.Resize((IMAGE_SIZE, IMAGE_SIZE), T.InterpolationMode.BICUBIC),
                           T.CenterCrop(IMAGE_SIZE), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    frames = torch.stack([transform(Image.fromarray(img)) for img in images])
    specs = torch.from_numpy(np.stack([sslalign_spectrogram(w) for w in waves]))
    real_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # the forward's mask; CPU only here
    try:
        with torch.no_grad():
            heatmap, *_ = model(frames.float(), specs.float(), lvs_args)
    finally:
        torch.Tensor.cuda = real_cuda
    write("sslalign", {"specs": specs.numpy().astype(np.float32),
                       "heatmap": t2n(heatmap)},
          recipe_meta("sslalign", "kaistmm/SSLalignment test.py 'ours' path: model_lvs.AVENet in eval mode, checkpoint "
                      "{'model_state_dict'} without prefix loaded as test.py does; specs = datasets_lvs.py __getitem__'s "
                      "audio (10 s tiled, 3.5-6.5 s, scipy spectrogram noverlap 353, log, /12); heatmap = forward's A "
                      "(cosine map, B x 1 x 14 x 14)", args.sslalign,
                      "kaistmm/SSLalignment", keys, weights_fp, images, waves))


TARGETS = {"rcgrad": make_rcgrad, "sslalign": make_sslalign}


def main(argv: list[str] | None = None) -> int:
    return run_targets(__doc__, TARGETS, tuple(TARGETS), argv)


if __name__ == "__main__":
    raise SystemExit(main())
