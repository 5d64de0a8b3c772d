"""PyTorch CPU reference benchmark for Eidetic (the bar that `eidetic bench` is compared with).

What it measures
----------------
For each configuration it builds the reference model from ``models_torch.py`` (layer for layer
what ``reference-models.md`` specifies), runs ``--warmup`` untimed steps, then times
``--steps`` steps with ``time.perf_counter`` and reports the *median* step time. One step is:

* ``unet-{s,m}-train-bN`` - one DDPM training step at batch N: ``t ~ U{0..999}``,
  ``eps ~ N(0, I)``, ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (linear betas 1e-4..0.02,
  T = 1000), ``loss = mse(model(x_t, t), eps)``, ``backward``, ``Adam(lr 2e-4)`` step with
  ``zero_grad(set_to_none=True)``. ``x0`` is a fixed random batch in [-1, 1] (3x32x32) made
  once, like the Swift benchmark (data loading is not part of the step); ``t`` and ``eps`` are
  drawn inside the timed step.
* ``unet-{s,m}-sample-bN`` - one forward pass at batch N under ``torch.no_grad()`` (one
  sampling step; ``t = 500`` for every image, as in the Swift benchmark).
* ``dcgan-train-bN`` / ``dcgan-nobn-train-bN`` - one DCGAN step in the PyTorch DCGAN example's
  order (see reference-models.md): ``fake = G(z)`` once; D step on real (label 1) and
  ``fake.detach()`` (label 0) with BCE-with-logits, separate forward calls; then the
  non-saturating G step through the updated D. Adam(2e-4, betas (0.5, 0.999)) for both.

Output
------
One JSON object per configuration on stdout, one per line, with the keys the Swift side
reads: ``name``, ``batch``, ``threads``, ``seconds_per_step`` (median), ``images_per_second``
(= batch / seconds_per_step) and ``gflops`` (achieved GFLOP/s). A few extra keys are added
for the record (``flops_per_image``, ``steps``, ``warmup``, ``min_seconds_per_step``,
``malloc``, ``torch``). Diagnostics (torch version, oneDNN availability, thread counts) go to stderr.

FLOPs convention (identical on the Swift side): forward FLOPs per image = 2 x MACs of conv,
linear and bmm as counted by ``torch.utils.flop_counter.FlopCounterMode`` (unet-s 490,274,816;
unet-m 1,951,490,048). A training step counts 3 x forward per image, a sampling step 1 x.
For DCGAN a step counts 3 x (G + 3 x D) forward FLOPs per real image (G once, D three times:
real, detached fake, fake for the G step; each with a backward taken as 2 x forward).

Memory allocator
----------------
With glibc's default settings every block of 32 MiB or more (e.g. a 64x32x32 activation at
batch 128 or more) is a fresh ``mmap``, so PyTorch page-faults its large activations in again
on every step: at batch 256 this cost ~40% of a sampling step here (sys time 6.6 s vs 0.6 s).
The Swift side reuses its buffers, so by default (``--malloc tuned``) the script re-executes
itself once with ``MALLOC_MMAP_THRESHOLD_=4 GiB`` and ``MALLOC_TRIM_THRESHOLD_=16 GiB`` so that
glibc reuses heap memory. This makes the PyTorch bar stronger, not weaker. ``--malloc default``
measures stock PyTorch; each JSON line records which one was used under ``malloc``.

How Eidetic compares
--------------------
``eidetic bench`` runs ``bench/.venv/bin/python bench/bench_torch.py --threads N --only ...``
in the same run, on the same machine and thread count, reads these JSON lines and reports
Eidetic's images/s divided by PyTorch's for the same configuration name. ``--threads N`` sets
``torch.set_num_threads(N)`` (intra-op: oneDNN/MKL/OpenMP) and
``torch.set_num_interop_threads(1)``. Use the same N for both sides, and run on an otherwise
idle machine: on 2 cores any competing process skews both numbers.

Usage::

    bench/.venv/bin/python bench/bench_torch.py --threads 2
    bench/.venv/bin/python bench/bench_torch.py --threads 2 --only unet-s-train-b64,unet-s-sample-b256
    bench/.venv/bin/python bench/bench_torch.py --list
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

# glibc malloc tuning (see "Memory allocator" in the docstring). glibc reads these variables
# only at process start, so the script re-executes itself once with them set, before torch
# is imported. ``--malloc default`` keeps the stock allocator behaviour.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(4 << 30),   # serve large blocks from the heap, not fresh mmaps
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),  # and keep freed memory instead of returning it
}


def _malloc_mode(argv) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--malloc", choices=["tuned", "default"], default="tuned")
    known, _ = pre.parse_known_args(argv)
    return known.malloc


def _reexec_with_malloc_env_if_needed() -> None:
    if __name__ != "__main__" or _malloc_mode(sys.argv[1:]) != "tuned":
        return
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = dict(os.environ, **MALLOC_ENV)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


_reexec_with_malloc_env_if_needed()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import models_torch as M  # noqa: E402

DEFAULT_CONFIGS = [
    "unet-s-train-b64",
    "unet-s-train-b128",
    "unet-m-train-b64",
    "unet-m-train-b128",
    "unet-s-sample-b256",
    "unet-m-sample-b256",
    "dcgan-train-b64",
    "dcgan-sample-b256",
]

CONFIG_RE = re.compile(r"^(unet-s|unet-m)-(train|sample)-b(\d+)$|^(dcgan|dcgan-nobn)-train-b(\d+)$|^dcgan-sample-b(\d+)$")


class ConfigError(ValueError):
    pass


def parse_config(name: str):
    m = CONFIG_RE.match(name)
    if not m:
        raise ConfigError(
            f"unknown configuration {name!r}: expected unet-s|unet-m -train|-sample -bN, "
            f"or dcgan|dcgan-nobn -train-bN, or dcgan-sample-bN (e.g. {', '.join(DEFAULT_CONFIGS)})")
    if m.group(6):
        batch = int(m.group(6))
        kind = "dcgan-sample"
        model = "dcgan"
    elif m.group(1):
        batch = int(m.group(3))
        kind = "unet-" + m.group(2)
        model = m.group(1)
    else:
        batch = int(m.group(5))
        kind = "dcgan-train"
        model = m.group(4)
    if batch < 1:
        raise ConfigError(f"{name}: batch must be >= 1")
    return kind, model, batch


# --------------------------------------------------------------------------------------
# Steps. Each builder returns (step_fn, flops_per_image_per_step).
# --------------------------------------------------------------------------------------

def linear_schedule_sqrt_abar(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    abar = torch.cumprod(1.0 - betas, dim=0)
    return abar.sqrt().float(), (1.0 - abar).sqrt().float()


def build_unet_train(preset: str, batch: int, gen: torch.Generator):
    model = M.make_unet(preset)
    fwd = M.unet_forward_flops(model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
    sqrt_abar, sqrt_1m_abar = linear_schedule_sqrt_abar()
    T = sqrt_abar.shape[0]
    x0 = torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1

    def step():
        t = torch.randint(0, T, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x_t = sqrt_abar[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_abar[t].view(-1, 1, 1, 1) * eps
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x_t, t), eps)
        loss.backward()
        opt.step()
        return loss

    return step, 3 * fwd


def build_unet_sample(preset: str, batch: int, gen: torch.Generator):
    model = M.make_unet(preset)
    fwd = M.unet_forward_flops(model)
    model.eval()
    x = torch.randn(batch, 3, 32, 32, generator=gen)
    t = torch.full((batch,), 500, dtype=torch.long)

    def step():
        with torch.no_grad():
            return model(x, t)

    return step, fwd


def build_dcgan_train(variant: str, batch: int, gen: torch.Generator, nz: int = 128):
    g = M.DCGANGenerator(nz)
    d = M.DCGANDiscriminator(batch_norm=(variant == "dcgan"))
    g_fwd = M.forward_flops_per_image(g, torch.zeros(2, nz))
    d_fwd = M.forward_flops_per_image(d, torch.zeros(2, 3, 32, 32))
    g.train()
    d.train()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1
    ones = torch.ones(batch)
    zeros = torch.zeros(batch)
    bce = F.binary_cross_entropy_with_logits

    def step():
        z = torch.randn(batch, nz, generator=gen)
        fake = g(z)
        # D step: real -> 1, fake (detached) -> 0, separate forward calls (separate BN stats).
        d.zero_grad(set_to_none=True)
        loss_d = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        # G step (non-saturating) through the updated D; D's grads accumulate and are discarded.
        g.zero_grad(set_to_none=True)
        loss_g = bce(d(fake), ones)
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    return step, 3 * (g_fwd + 3 * d_fwd)


def build_dcgan_sample(batch: int, gen: torch.Generator, nz: int = 128):
    """A generator sampling pass: z ~ N(0, I), G in eval mode (BN running statistics)."""
    g = M.DCGANGenerator(nz)
    g_fwd = M.forward_flops_per_image(g, torch.zeros(2, nz))
    g.eval()

    def step():
        with torch.no_grad():
            return g(torch.randn(batch, nz, generator=gen))

    return step, g_fwd


def build(name: str, gen: torch.Generator):
    kind, model, batch = parse_config(name)
    if kind == "unet-train":
        step, flops = build_unet_train(model, batch, gen)
    elif kind == "unet-sample":
        step, flops = build_unet_sample(model, batch, gen)
    elif kind == "dcgan-sample":
        step, flops = build_dcgan_sample(batch, gen)
    else:
        step, flops = build_dcgan_train(model, batch, gen)
    return step, flops, batch


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------

def run_config(name: str, threads: int, warmup: int, steps: int, seconds: float | None,
               seed: int, malloc: str = "default", autocast: str = "none") -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    step, flops_per_image, batch = build(name, gen)
    if autocast == "bf16":
        # CPU automatic mixed precision: convolutions and matmuls in bfloat16 (oneDNN's
        # AVX-512 BF16 kernels where the CPU has them), fp32 master weights and optimizer
        inner = step

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return inner()

    for _ in range(warmup):
        step()

    times = []
    total = 0.0
    while len(times) < steps:
        t0 = time.perf_counter()
        out = step()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
        if isinstance(out, torch.Tensor) and out.dim() == 0 and not math.isfinite(out.item()):
            raise RuntimeError(f"{name}: non-finite loss {out.item()}")
        if seconds is not None and total >= seconds:
            break

    sps = statistics.median(times)
    return {
        "name": name,
        "batch": batch,
        "threads": threads,
        "seconds_per_step": round(sps, 6),
        "images_per_second": round(batch / sps, 2),
        "gflops": round(flops_per_image * batch / sps / 1e9, 2),
        "flops_per_image": flops_per_image,
        "steps": len(times),
        "warmup": warmup,
        "min_seconds_per_step": round(min(times), 6),
        "malloc": malloc,
        "autocast": autocast,
        "torch": torch.__version__,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="PyTorch CPU reference benchmark: one JSON line per configuration on stdout.")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="intra-op threads (torch.set_num_threads); inter-op is set to 1 (default: all cores)")
    ap.add_argument("--only", type=str, default=",".join(DEFAULT_CONFIGS),
                    help="comma-separated configurations (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration (default: 2)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default: 5)")
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="stop timing a configuration early once its timed steps add up to this many "
                         "seconds (at least one timed step); 0 = no limit (default: 20)")
    ap.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                    help="tuned: re-run under glibc MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ so "
                         "large activations are reused instead of page-faulted in every step; "
                         "default: stock glibc behaviour (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: run each step under torch.autocast('cpu', dtype=torch.bfloat16) (default: none, fp32)")
    ap.add_argument("--list", action="store_true", help="print the default configurations and exit")
    args = ap.parse_args(argv)

    if args.list:
        print("\n".join(DEFAULT_CONFIGS))
        return 0
    if args.threads < 1 or args.warmup < 0 or args.steps < 1:
        ap.error("need --threads >= 1, --warmup >= 0, --steps >= 1")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        for n in names:
            parse_config(n)
    except ConfigError as e:
        ap.error(str(e))

    # Inter-op threads must be set before any inter-op parallel work starts.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; mkldnn available: {torch.backends.mkldnn.is_available()}; "
          f"threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op; "
          f"malloc: {args.malloc}; autocast: {args.autocast}; configs: {','.join(names)}", file=sys.stderr, flush=True)

    seconds = args.seconds if args.seconds > 0 else None
    for n in names:
        result = run_config(n, args.threads, args.warmup, args.steps, seconds, args.seed, args.malloc, args.autocast)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
