"""DP-SGD step references for `eidetic bench dp` (issue 12): on the same U-Net as
bench_torch.py (models_torch.make_unet), batch B, the ordinary step (mean MSE, backward,
Adam), the Opacus step (GradSampleModule hooks + DPOptimizer: per-sample gradients, flat
clipping at C = 1, noise σ = 1, Adam) and a torch.func step (vmap(grad) per-sample gradients,
clipping and noise by hand, Adam). Prints one JSON line with the median seconds per step of
each and the ratios. Usage: bench_dp_torch.py --preset unet-s --batch 32 --threads 2 --steps 5
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import models_torch as M
from bench_torch import linear_schedule_sqrt_abar


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="unet-s")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    sqrt_abar, sqrt_1m_abar = linear_schedule_sqrt_abar()
    T = sqrt_abar.shape[0]
    x0 = torch.rand(a.batch, 3, 32, 32, generator=gen) * 2 - 1

    def batch_inputs():
        t = torch.randint(0, T, (a.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x_t = sqrt_abar[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_abar[t].view(-1, 1, 1, 1) * eps
        return x_t, t, eps

    def timed(step):
        step()
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
        return statistics.median(times)

    # ordinary
    model = M.make_unet(a.preset).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def ordinary():
        x_t, t, eps = batch_inputs()
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x_t, t), eps).backward()
        opt.step()
    result = {"name": f"{a.preset}-train-b{a.batch}", "threads": a.threads, "ordinary_seconds_per_step": timed(ordinary)}

    # Opacus
    try:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer
        om = GradSampleModule(M.make_unet(a.preset).train())
        oopt = DPOptimizer(torch.optim.Adam(om.parameters(), lr=1e-5), noise_multiplier=1.0, max_grad_norm=1.0,
                           expected_batch_size=a.batch)

        def opacus_step():
            x_t, t, eps = batch_inputs()
            oopt.zero_grad(set_to_none=True)
            # per-example losses summed then divided by B, as Opacus's loss_reduction="mean"
            ((om(x_t, t) - eps) ** 2).mean(dim=(1, 2, 3)).mean().backward()
            oopt.step()
        result["opacus_seconds_per_step"] = timed(opacus_step)
    except Exception as e:  # noqa: BLE001 - report, keep the other figures
        result["opacus_error"] = f"{type(e).__name__}: {e}"

    # torch.func vmap(grad)
    try:
        from torch.func import functional_call, grad, vmap
        vm = M.make_unet(a.preset).train()
        params = {k: v.detach() for k, v in vm.named_parameters()}
        vopt = torch.optim.Adam(vm.parameters(), lr=1e-5)

        def one_loss(p, x, t, e):
            out = functional_call(vm, p, (x.unsqueeze(0), t.unsqueeze(0)))
            return ((out - e.unsqueeze(0)) ** 2).mean()
        per_sample = vmap(grad(one_loss), in_dims=(None, 0, 0, 0))

        def vmap_step():
            x_t, t, eps = batch_inputs()
            g = per_sample(params, x_t, t, eps)
            norms = torch.sqrt(sum((v.reshape(a.batch, -1) ** 2).sum(1) for v in g.values()))
            factor = (1.0 / (norms + 1e-6)).clamp(max=1.0)
            for k, p in vm.named_parameters():
                s = torch.einsum("b,b...->...", factor, g[k])
                p.grad = (s + torch.randn_like(s)) / a.batch
            vopt.step()
            for k, p in vm.named_parameters():
                params[k] = p.detach()
        result["vmap_seconds_per_step"] = timed(vmap_step)
    except Exception as e:  # noqa: BLE001
        result["vmap_error"] = f"{type(e).__name__}: {e}"

    for k in ("opacus", "vmap"):
        if f"{k}_seconds_per_step" in result:
            result[f"{k}_over_ordinary"] = result[f"{k}_seconds_per_step"] / result["ordinary_seconds_per_step"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
