"""Replays Eidetic's U-Net forward + backward on the PyTorch reference model and compares.

Input: a check file written by ``eidetic bench unet --export-check FILE --preset NAME``
(Sources/eidetic/UNetCheck.swift): every parameter under its PyTorch state_dict name
(``param.down.0.blocks.0.conv1.weight`` ...), the inputs ``input.x``, ``input.t``,
``input.temb_features`` (Eidetic's sinusoidal features, computed in Double) and
``input.target``, and Eidetic's float32 results ``output.eps``, ``output.loss``,
``grad.param.<name>`` and ``grad.input.x``.

The script builds ``models_torch.make_unet(preset)``, loads the weights with
``load_state_dict(strict=True)``, feeds the exported timestep features in place of its own
float32 ones (sin(t f) at t ~ 1000 in float32 is off by more than the gate), and computes

    eps = model(x, t);  loss = mean((eps - target)^2);  loss.backward()

twice: in float64 (the reference) and in float32 (PyTorch's own rounding, for context).
For every tensor it prints max|diff| / max|reference| ("scaled") for Eidetic against the
float64 reference and for PyTorch float32 against the same reference. Exit status 1 if any
Eidetic ``scaled`` difference exceeds 1e-5 (issue 14's gate), 2 if the file does not match.

``--sabotage gn-eps`` runs the reference with GroupNorm eps 1e-5 instead of 1e-6, and
``--sabotage attn-scale`` scales attention logits by C^-0.5 * 1.001: the check must then
fail, which shows the gate sees such differences.

    bench/.venv/bin/python bench/check_unet_torch.py /tmp/unet-s.h5
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models_torch as M  # noqa: E402

GATE = 1e-5
# Gradients that are zero in exact arithmetic: a key bias adds q_i . b to every logit of row i,
# which softmax ignores. Both sides hold rounding noise there; it is gated against the scale of
# the same layer's weight gradient instead of its own (zero) magnitude.
ZERO = {"grad.param.mid_attn.k.bias": "grad.param.mid_attn.k.weight"}


def run(f: h5py.File, preset: str, dtype: torch.dtype, sabotage: str | None):
    model = M.make_unet(preset)
    ours = {k[len("param."):]: torch.from_numpy(f[k][()]) for k in f.keys() if k.startswith("param.")}
    theirs = model.state_dict()
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    if missing or extra:
        raise SystemExit(f"check_unet_torch: names differ; missing in file {missing}, not in the model {extra}")
    for k, t in theirs.items():
        if tuple(ours[k].shape) != tuple(t.shape):
            raise SystemExit(f"check_unet_torch: {k}: shape {tuple(ours[k].shape)} in file, {tuple(t.shape)} in the model")
    model.load_state_dict(ours, strict=True)
    model = model.to(dtype).train()
    for m in model.modules():
        if isinstance(m, nn.GroupNorm) and sabotage == "gn-eps":
            m.eps = 1e-5
    features = torch.from_numpy(f["input.temb_features"][()]).to(dtype)
    M.timestep_embedding = lambda t, dim: features  # Eidetic's own features (see the docstring)
    if sabotage == "attn-scale":
        attn = model.mid_attn
        original = attn.forward

        def scaled(x):
            b, c, hh, ww = x.shape
            h = attn.norm(x)
            q = attn.q(h).reshape(b, c, hh * ww) * 1.001
            k = attn.k(h).reshape(b, c, hh * ww)
            v = attn.v(h).reshape(b, c, hh * ww)
            w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c ** -0.5), dim=2)
            return x + attn.proj(torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww))
        attn.forward = scaled
        del original
    x = torch.from_numpy(f["input.x"][()]).to(dtype).requires_grad_(True)
    t = torch.from_numpy(f["input.t"][()]).to(dtype)
    target = torch.from_numpy(f["input.target"][()]).to(dtype)
    eps = model(x, t)
    loss = ((eps - target) ** 2).mean()
    loss.backward()
    out = {"output.eps": eps.detach(), "output.loss": loss.detach().reshape(1), "grad.input.x": x.grad}
    for name, p in model.named_parameters():
        out["grad.param." + name] = p.grad
    return out


def scaled(a: np.ndarray, ref: np.ndarray) -> float:
    a, ref = np.asarray(a, np.float64).reshape(-1), np.asarray(ref, np.float64).reshape(-1)
    if a.shape != ref.shape:
        return float("inf")
    s = float(np.abs(ref).max()) if ref.size else 0.0
    d = float(np.abs(a - ref).max()) if ref.size else 0.0
    return d / s if s > 0 else d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", help="check file from `eidetic bench unet --export-check`")
    ap.add_argument("--sabotage", choices=["gn-eps", "attn-scale"], help="change one detail of the reference (the check must fail)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with h5py.File(a.file, "r") as f:
        if f.attrs.get("check") not in ("eidetic-unet-check/1", b"eidetic-unet-check/1"):
            print(f"check_unet_torch: {a.file} is not an eidetic-unet-check/1 file", file=sys.stderr)
            return 2
        preset = f.attrs["preset"]
        preset = preset.decode() if isinstance(preset, bytes) else str(preset)
        ref = run(f, preset, torch.float64, a.sabotage)
        f32 = run(f, preset, torch.float32, a.sabotage)
        rows = []
        for name, r in ref.items():
            if name not in f:
                print(f"check_unet_torch: {name} is not in the file", file=sys.stderr)
                return 2
            if name in ZERO:
                # zero in exact arithmetic: measured against its layer's weight gradient
                s = float(np.abs(ref[ZERO[name]].numpy()).max())
                rows.append((name + " (exactly 0)", float(np.abs(f[name][()]).max()) / s, float(np.abs(f32[name].numpy()).max()) / s))
                continue
            rows.append((name, scaled(f[name][()], r.numpy()), scaled(f32[name].numpy(), r.numpy())))
    worst = max(rows, key=lambda r: r[1])
    print(f"{'tensor':52s} {'Eidetic f32':>12s} {'PyTorch f32':>12s}   (max|diff| / max|float64 reference|)")
    for name, ours, torch32 in sorted(rows, key=lambda r: -r[1])[:12]:
        print(f"{name:52s} {ours:12.3e} {torch32:12.3e}")
    print(f"... {len(rows)} tensors; worst Eidetic {worst[1]:.3e} ({worst[0]}), worst PyTorch float32 "
          f"{max(r[2] for r in rows):.3e}; gate {GATE:g}")
    ok = worst[1] <= GATE
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
