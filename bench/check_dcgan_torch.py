"""Replays Eidetic's DCGAN forward + backward on the PyTorch reference models and compares.

Input: a check file written by ``eidetic bench dcgan --export-check FILE --preset NAME``
(Sources/eidetic/DCGANCheck.swift): the generator's and discriminator's parameters and
buffers under their PyTorch state_dict names (``G.fc.weight``, ``D.net.0.weight_orig`` ...),
the inputs ``input.z`` and ``input.real``, and Eidetic's results: ``output.fake``,
``output.logits_real``, ``output.logits_fake``, ``output.loss``, ``grad.<G|D>.<name>``,
``grad.input.z``, ``grad.input.real`` and the buffers after the pass, ``after.<G|D>.<name>``.

This script builds the matching models from ``models_torch.py``, loads the weights with
``load_state_dict(strict=True)``, and runs the same computation in the same dtype, in train
mode and in the same order::

    fake = G(z); logits_real = D(real); logits_fake = D(fake)
    loss = D loss(logits_real, logits_fake) + w * G loss(logits_fake)   (fake not detached, w = 1/2)
    loss.backward()

nonsaturating: BCE(real, 1) + BCE(fake, 0) + w BCE(fake, 1), each a batch mean
(``F.binary_cross_entropy_with_logits``); hinge: mean(relu(1 - real)) + mean(relu(1 + fake))
- w mean(fake). w (the file's ``generator_loss_weight``) is 1/2 so that the two terms'
gradients on logits_fake do not cancel (with w = 1 they do, exactly for hinge at |logit| < 1).

Discriminators per preset:

* ``dcgan-32``: ``DCGANDiscriminator(batch_norm=True)``; ``dcgan-32-nobn``: ``batch_norm=False``.
* ``dcgan-32-gn``: not in ``models_torch.py``; built here from ``DCGANDiscriminator(batch_norm=True)``
  with its two ``BatchNorm2d`` replaced by ``nn.GroupNorm(8, C)`` (eps 1e-5, affine), which is
  what Eidetic's ``discriminatorNorm = "group"`` claims to be.
* ``sngan-32``: not in ``models_torch.py``; built here from ``DCGANDiscriminator(batch_norm=False)``
  with ``torch.nn.utils.spectral_norm`` (1 power iteration, eps 1e-12) on its three convs and the
  linear layer. In train mode that hook runs one power iteration per forward, so u and v are
  advanced twice (D(real), then D(fake)); both sides start from the exported u, v.

For every compared tensor it prints the max absolute difference, the max difference relative
to the reference tensor's largest magnitude (``scaled``: the gate) and the largest elementwise
relative difference among elements with |ref| > 1e-3 max|ref| (information). Exit status 1
if any ``scaled`` difference exceeds the tolerance (float64: 1e-10, float32: 1e-4; see
``TOLERANCE``), 2 if the file does not match a reference model.

``--sabotage WHAT`` changes one semantic detail on the PyTorch side (BatchNorm eps or momentum,
LeakyReLU slope, GroupNorm eps, an extra power iteration) to show that the tolerance catches
such a difference: the check must then fail.

    bench/.venv/bin/python bench/check_dcgan_torch.py /tmp/dcgan-32.h5
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models_torch import DCGANDiscriminator, DCGANGenerator  # noqa: E402

# Gate on max|ours - torch| / max|torch| per tensor. float64: unit roundoff 1.1e-16; the longest
# sums here have a few thousand terms (the 4096-feature linear layer, conv weight gradients
# summed over batch x positions) and BatchNorm's backward subtracts means, so differences of
# summation order leave ~1e-14..1e-13; 1e-10 keeps a 1000x margin, while any semantic difference
# (eps 1e-5 vs 1e-6, momentum, biased vs unbiased variance, a slope, one more power iteration,
# a transposed kernel) moves results by 1e-6 or far more (see --sabotage). float32: roundoff
# 6e-8, so ~1e-6 expected; 1e-4 keeps the same kind of margin.
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
REFERENCE_SHAPE = dict(latentDim=128, imageChannels=3, imageSize=32, stages=3,
                       generatorChannels=256, discriminatorChannels=64, classes=0)
SABOTAGE = ["bn-eps", "bn-momentum", "lrelu-slope", "gn-eps", "sn-iterations"]


def build_models(preset: str, config: dict, dtype: torch.dtype, sabotage: str | None):
    for k, v in REFERENCE_SHAPE.items():
        if config.get(k) != v:
            raise SystemExit(f"check_dcgan_torch: {k} = {config.get(k)}; the PyTorch reference "
                             f"(models_torch.py) only has {k} = {v}")
    g = DCGANGenerator(nz=config["latentDim"])
    norm, spectral = config["discriminatorNorm"], config["spectralNorm"]
    if norm == "batch" and not spectral:
        d = DCGANDiscriminator(batch_norm=True)
    elif norm == "none":
        d = DCGANDiscriminator(batch_norm=False)
    elif norm == "group" and not spectral:
        # Not in models_torch.py: the BN discriminator with GroupNorm in place of BatchNorm.
        d = DCGANDiscriminator(batch_norm=True)
        groups = config["groups"]
        d.net[3] = nn.GroupNorm(groups, 128, eps=1e-6 if sabotage == "gn-eps" else 1e-5)
        d.net[6] = nn.GroupNorm(groups, 256, eps=1e-6 if sabotage == "gn-eps" else 1e-5)
    else:
        raise SystemExit(f"check_dcgan_torch: preset {preset!r} (norm {norm}, spectral {spectral}) "
                         "has no PyTorch counterpart here")
    g, d = g.to(dtype), d.to(dtype)
    if spectral:
        # Not in models_torch.py: torch.nn.utils.spectral_norm on every conv and the linear layer.
        iters = config["powerIterations"] + (1 if sabotage == "sn-iterations" else 0)
        for i in (0, 2, 5, 9):
            d.net[i] = torch.nn.utils.spectral_norm(d.net[i], n_power_iterations=iters, eps=1e-12)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, nn.BatchNorm2d):
            if sabotage == "bn-eps":
                m.eps = 1e-6
            if sabotage == "bn-momentum":
                m.momentum = 0.2
        if isinstance(m, nn.LeakyReLU) and sabotage == "lrelu-slope":
            m.negative_slope = 0.01
    return g, d


def load_strict(model: nn.Module, prefix: str, f: h5py.File) -> list[str]:
    """Loads `prefix.*` from the file into `model` with strict=True; returns keys not in the file."""
    ours = {k[len(prefix) + 1:]: torch.from_numpy(f[k][()]) for k in f.keys() if k.startswith(prefix + ".")}
    theirs = model.state_dict()
    # num_batches_tracked has no Eidetic counterpart; with momentum set it does not affect anything.
    filled = [k for k in theirs if k not in ours and k.endswith("num_batches_tracked")]
    for k in filled:
        ours[k] = theirs[k].clone()
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    if missing or extra:
        raise SystemExit(f"check_dcgan_torch: {prefix}: names differ; missing in file {missing}, not in the "
                         f"PyTorch model {extra}")
    for k, t in theirs.items():
        if tuple(ours[k].shape) != tuple(t.shape):
            raise SystemExit(f"check_dcgan_torch: {prefix}.{k}: shape {tuple(ours[k].shape)} in file, "
                             f"{tuple(t.shape)} in the PyTorch model")
    model.load_state_dict(ours, strict=True)
    return filled


def compare(name: str, ours: np.ndarray, ref: torch.Tensor, rows: list) -> None:
    r = ref.detach().cpu().double().numpy().reshape(-1)
    o = np.asarray(ours, dtype=np.float64).reshape(-1)
    if o.shape != r.shape:
        rows.append((name, float("inf"), float("inf"), float("inf"), 0.0))
        return
    diff = np.abs(o - r)
    scale = float(np.abs(r).max()) if r.size else 0.0
    max_abs = float(diff.max()) if r.size else 0.0
    scaled = max_abs / scale if scale > 0 else max_abs
    big = np.abs(r) > 1e-3 * scale
    elem = float((diff[big] / np.abs(r[big])).max()) if big.any() else 0.0
    rows.append((name, max_abs, scaled, elem, scale))


def loss_fn(kind: str, real: torch.Tensor, fake: torch.Tensor, w: float) -> torch.Tensor:
    if kind == "nonsaturating":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)) * w)
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean() + (-fake.mean()) * w
    raise SystemExit(f"check_dcgan_torch: unknown loss {kind!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="check file from `eidetic bench dcgan --export-check`")
    ap.add_argument("--tolerance", type=float, help="gate on max|diff| / max|ref| (default: 1e-10 float64, 1e-4 float32)")
    ap.add_argument("--sabotage", choices=SABOTAGE, help="change one detail on the PyTorch side (the check must fail)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--all", action="store_true", help="print every tensor, not only the worst per group")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    with h5py.File(args.file, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if attrs.get("check") != "eidetic-dcgan-check/1":
            print(f"check_dcgan_torch: {args.file} is not an Eidetic DCGAN check file", file=sys.stderr)
            return 2
        preset, dtype_name, loss_kind = attrs["preset"], attrs["dtype"], attrs["loss"]
        config = json.loads(attrs["config"])
        dtype = {"float64": torch.float64, "float32": torch.float32}[dtype_name]
        tol = args.tolerance if args.tolerance is not None else TOLERANCE[dtype_name]

        g, d = build_models(preset, config, dtype, args.sabotage)
        filled = load_strict(g, "G", f) + load_strict(d, "D", f)
        g.train(); d.train()
        data = {k: f[k][()] for k in f.keys() if not k.startswith(("G.", "D."))}

    for k in ("input.z", "input.real"):
        if data[k].dtype != {"float64": np.float64, "float32": np.float32}[dtype_name]:
            raise SystemExit(f"check_dcgan_torch: {k} is {data[k].dtype}, file says {dtype_name}")
    z = torch.from_numpy(data["input.z"]).requires_grad_(True)
    real = torch.from_numpy(data["input.real"]).requires_grad_(True)

    # Pre-activations of every ReLU / LeakyReLU this close to 0 (relative to their tensor's
    # largest magnitude) are within rounding of the kink: there the two sides may see opposite
    # signs and use derivatives 1 vs 0.2 (or 0), a legitimate difference that moves gradients
    # far more than rounding does (one such element moved float32 gradients by ~1e-2 here).
    kink_rel = {"float64": 1e-12, "float32": 1e-5}[dtype_name]
    kinks: list = []
    calls: dict = {}

    def watch(name):
        def hook(_module, inputs, output=None):
            x = (output if output is not None else inputs[0]).detach()
            calls[name] = calls.get(name, 0) + 1
            near = x.abs() < kink_rel * x.abs().max()
            if near.any():
                call = {"D": [" (D(real))", " (D(fake))"]}.get(name[0], [""] * 2)[min(calls[name], 2) - 1]
                kinks.append((name + call, int(near.sum()), float(x.abs()[near].max())))
        return hook

    g.bn0.register_forward_hook(watch("G.bn0 (-> relu)"))  # G's first ReLU is functional
    for prefix, model in (("G", g), ("D", d)):
        for name, m in model.named_modules():
            if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
                m.register_forward_pre_hook(watch(f"{prefix}.{name}"))

    fake = g(z)
    logits_real = d(real)
    logits_fake = d(fake)
    loss = loss_fn(loss_kind, logits_real, logits_fake, float(attrs["generator_loss_weight"]))
    loss.backward()

    rows: list = []
    compare("output.fake", data["output.fake"], fake, rows)
    compare("output.logits_real", data["output.logits_real"], logits_real, rows)
    compare("output.logits_fake", data["output.logits_fake"], logits_fake, rows)
    compare("output.loss", data["output.loss"], loss.reshape(1), rows)
    compare("grad.input.z", data["grad.input.z"], z.grad, rows)
    compare("grad.input.real", data["grad.input.real"], real.grad, rows)
    missing = []
    for prefix, model in (("G", g), ("D", d)):
        for name, p in model.named_parameters():
            key = f"grad.{prefix}.{name}"
            if key not in data:
                missing.append(key)
                continue
            compare(key, data[key], p.grad if p.grad is not None else torch.zeros_like(p), rows)
        for name, b in model.named_buffers():
            if name.endswith("num_batches_tracked"):
                continue
            key = f"after.{prefix}.{name}"
            if key not in data:
                missing.append(key)
                continue
            compare(key, data[key], b, rows)
    expected = {f"grad.{p}.{n}" for p, m in (("G", g), ("D", d)) for n, _ in m.named_parameters()}
    extra = sorted(k for k in data if k.startswith("grad.") and not k.startswith("grad.input.") and k not in expected)

    print(f"{args.file}: preset {preset}, {dtype_name}, batch {attrs['batch']}, {loss_kind} loss "
          f"(G term x {float(attrs['generator_loss_weight']):g}), torch {torch.__version__}"
          + (f", SABOTAGE {args.sabotage}" if args.sabotage else ""))
    print(f"loss: Eidetic {float(data['output.loss'][0]):.17g}, PyTorch {loss.item():.17g}")
    if filled:
        print(f"(not in the file, kept at PyTorch's value and not compared: {', '.join(filled)})")
    print(f"{'tensor':<46}{'max |diff|':>12}{'scaled':>12}{'elem rel':>12}{'max |ref|':>12}")
    groups: dict[str, list] = {}
    for row in rows:
        name = row[0]
        group = name if name.startswith(("output.", "grad.input.")) else ".".join(name.split(".")[:2])
        groups.setdefault(group, []).append(row)
    for row in rows if args.all else []:
        print(f"{row[0]:<46}{row[1]:12.2e}{row[2]:12.2e}{row[3]:12.2e}{row[4]:12.2e}")
    if not args.all:
        for group, rs in groups.items():
            w = max(rs, key=lambda r: r[2])
            label = group if len(rs) == 1 else f"{group}.* ({len(rs)}; worst {w[0][len(group) + 1:]})"
            print(f"{label:<46}{w[1]:12.2e}{w[2]:12.2e}{w[3]:12.2e}{w[4]:12.2e}")
    worst = max(rows, key=lambda r: r[2])
    failed = [r for r in rows if not (r[2] <= tol)]
    print(f"worst scaled difference {worst[2]:.2e} ({worst[0]}); tolerance {tol:g}; {len(rows)} tensors compared")
    if missing or extra:
        print(f"FAIL: missing in the file: {missing}; gradients with no PyTorch parameter: {extra}")
        return 1
    if kinks:
        print(f"pre-activations within {kink_rel:g} x max of a ReLU kink: "
              + ", ".join(f"{n}: {k} (|x| <= {m:.1e})" for n, k, m in kinks))
    if failed:
        print(f"FAIL: {len(failed)} tensors above tolerance: " + ", ".join(r[0] for r in failed[:12])
              + (" …" if len(failed) > 12 else ""))
        if kinks:
            print("note: with pre-activations this close to a kink, one sign tie flips a derivative and moves gradients "
                  "far beyond rounding; that is not a semantic difference. Check in float64 (the default export) "
                  "or with another --check-seed.")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
