"""PyTorch reference versions of Eidetic's benchmark models.

The models here follow `reference-models.md` (shared docs) layer for layer, so that
"Eidetic images/s ÷ PyTorch images/s" on the same machine and thread count compares
the same work:

* ``UNet`` with the presets ``unet-s`` (base 32 channels) and ``unet-m`` (base 64): the
  DDPM epsilon-prediction U-Net (Ho et al. layout) at 3x32x32 with ``num_res_blocks = 1``,
  channel multipliers (1, 2, 2) at 32/16/8, one single-head attention block in the middle
  at 8x8, GroupNorm(8, eps 1e-6), SiLU, sinusoidal time embedding of width 32 followed by
  Linear(32, 128) -> SiLU -> Linear(128, 128) in *both* presets (as reference-models.md and
  the Swift ``UNetConfig`` say: ``timeFeatures = 32``, ``embeddingDim = 128``). Note: scaling
  the embedding with the base width (ch -> 4ch) would give unet-m 4,238,787 parameters instead
  of the reference 4,021,443; the fixed 32/128 gives exactly the reference counts and FLOPs.
* ``DCGANGenerator`` / ``DCGANDiscriminator``: DCGAN-32 (z = 128), classic BN variant, plus
  the "noBN" discriminator variant.

All layers use PyTorch's default initialisation (the benchmark measures speed, not quality).

Forward FLOPs per image are defined as 2 x MACs of convolutions, linears (mm/addmm) and
batched matmuls (bmm), exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts;
norms, activations, softmax, upsampling and adds are not counted. ``manual_unet_flops``
counts the same thing by hand from the layer table, as an independent check. The Swift
side's ``UNet.forwardFLOPs`` must give the same numbers.

Self-check (parameter counts and FLOPs against the reference table)::

    bench/.venv/bin/python bench/models_torch.py --check
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings

# The CPU benchmark does not use NumPy; keep torch's "Failed to initialize NumPy" notice quiet.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# --------------------------------------------------------------------------------------
# Reference numbers (reference-models.md). The self-check asserts these.
# --------------------------------------------------------------------------------------

UNET_PRESETS = {"unet-s": 32, "unet-m": 64}  # preset -> base channels
EXPECTED_PARAMS = {
    "unet-s": 1_063_651,
    "unet-m": 4_021_443,
    "dcgan-g": 1_218_339,
    "dcgan-d": 663_361,
    "dcgan-d-nobn": 662_977,
}
EXPECTED_FORWARD_FLOPS = {  # per image, 2 x MACs of conv + linear + bmm
    "unet-s": 490_274_816,
    "unet-m": 1_951_490_048,
}


# --------------------------------------------------------------------------------------
# DDPM U-Net
# --------------------------------------------------------------------------------------

def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """DDPM's sinusoidal embedding: [sin(t f_i), cos(t f_i)], f_i = 10000^(-i/(half-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device)
                      * -(math.log(10000.0) / (half - 1)))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, channels, eps=1e-6)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3x3, + Linear(temb_dim, out)(SiLU(temb)), GN -> SiLU -> conv3x3, + skip."""

    def __init__(self, cin: int, cout: int, temb_dim: int):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over H*W positions (DDPM's AttnBlock), with residual."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = group_norm(ch)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.bmm(q.transpose(1, 2), k) * (c ** -0.5)  # (b, HW, HW): w[i, j] = q_i . k_j
        w = torch.softmax(w, dim=2)
        out = torch.bmm(v, w.transpose(1, 2))  # (b, C, HW): out[:, i] = sum_j w[i, j] v_j
        return x + self.proj(out.reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """DDPM U-Net, num_res_blocks = 1, multipliers (1, 2, 2), attention only in the middle."""

    def __init__(self, ch: int = 32, ch_mult=(1, 2, 2), num_res_blocks: int = 1,
                 in_channels: int = 3, out_channels: int = 3,
                 time_features: int = 32, temb_dim: int = 128):
        super().__init__()
        self.time_features = time_features
        self.temb_dense0 = nn.Linear(time_features, temb_dim)
        self.temb_dense1 = nn.Linear(temb_dim, temb_dim)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        # Down path; track the channels of every tensor pushed onto the skip stack.
        skip_ch = [ch]
        cur = ch
        self.down = nn.ModuleList()
        for level, mult in enumerate(ch_mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(cur, ch * mult, temb_dim))
                cur = ch * mult
                skip_ch.append(cur)
            stage = nn.Module()
            stage.blocks = blocks
            if level != len(ch_mult) - 1:
                stage.downsample = Downsample(cur)
                skip_ch.append(cur)
            self.down.append(stage)

        self.mid_block1 = ResBlock(cur, cur, temb_dim)
        self.mid_attn = AttnBlock(cur)
        self.mid_block2 = ResBlock(cur, cur, temb_dim)

        # Up path: num_res_blocks + 1 blocks per level, each popping one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(cur + skip_ch.pop(), ch * mult, temb_dim))
                cur = ch * mult
            stage = nn.Module()
            stage.blocks = blocks
            if level != 0:
                stage.upsample = Upsample(cur)
            self.up.append(stage)
        assert not skip_ch

        self.norm_out = group_norm(cur)
        self.conv_out = nn.Conv2d(cur, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = timestep_embedding(t, self.time_features)
        temb = self.temb_dense1(F.silu(self.temb_dense0(temb)))

        hs = [self.conv_in(x)]
        for stage in self.down:
            for block in stage.blocks:
                hs.append(block(hs[-1], temb))
            if hasattr(stage, "downsample"):
                hs.append(stage.downsample(hs[-1]))

        h = hs[-1]
        h = self.mid_block1(h, temb)
        h = self.mid_attn(h)
        h = self.mid_block2(h, temb)

        for stage in self.up:
            for block in stage.blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        assert not hs
        return self.conv_out(F.silu(self.norm_out(h)))


def make_unet(preset: str) -> UNet:
    if preset == "unet-xs":  # the sweep preset: 268,915 parameters, 123,717,632 FLOPs at 3x32x32
        return UNet(ch=16, temb_dim=64)
    if preset not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset {preset!r}; expected one of {sorted(UNET_PRESETS)}")
    return UNet(ch=UNET_PRESETS[preset])


def manual_unet_flops(ch: int, ch_mult=(1, 2, 2), num_res_blocks: int = 1, size: int = 32,
                      in_channels: int = 3, out_channels: int = 3,
                      time_features: int = 32, temb_dim: int = 128) -> int:
    """Forward FLOPs per image (2 x MACs of conv, linear, bmm), counted from the layer table."""
    macs = 0

    def conv(cin, cout, k, hw_out):
        nonlocal macs
        macs += cin * cout * k * k * hw_out * hw_out

    temb = temb_dim
    macs += time_features * temb + temb * temb  # time MLP

    def res(cin, cout, hw):
        nonlocal macs
        conv(cin, cout, 3, hw)
        macs += temb * cout
        conv(cout, cout, 3, hw)
        if cin != cout:
            conv(cin, cout, 1, hw)

    hw = size
    conv(in_channels, ch, 3, hw)
    skips = [ch]
    cur = ch
    for level, mult in enumerate(ch_mult):
        for _ in range(num_res_blocks):
            res(cur, ch * mult, hw)
            cur = ch * mult
            skips.append(cur)
        if level != len(ch_mult) - 1:
            hw //= 2
            conv(cur, cur, 3, hw)
            skips.append(cur)
    res(cur, cur, hw)
    n = hw * hw  # attention: q, k, v, proj 1x1 convs and two (n x n x C) matmuls
    for _ in range(4):
        conv(cur, cur, 1, hw)
    macs += 2 * n * n * cur
    res(cur, cur, hw)
    for level, mult in reversed(list(enumerate(ch_mult))):
        for _ in range(num_res_blocks + 1):
            res(cur + skips.pop(), ch * mult, hw)
            cur = ch * mult
        if level != 0:
            hw *= 2
            conv(cur, cur, 3, hw)
    conv(cur, out_channels, 3, hw)
    return 2 * macs


# --------------------------------------------------------------------------------------
# DCGAN-32
# --------------------------------------------------------------------------------------

class DCGANGenerator(nn.Module):
    """z (128) -> Linear(128, 4096) -> 256x4x4 -> BN -> ReLU -> 3 x [ConvT 4x4 s2 p1 -> BN -> ReLU]
    to 128x8x8, 64x16x16, 32x32x32 -> Conv3x3 32->3 -> tanh."""

    def __init__(self, nz: int = 128):
        super().__init__()
        self.fc = nn.Linear(nz, 256 * 4 * 4)
        self.bn0 = nn.BatchNorm2d(256)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),
            nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),
            nn.Conv2d(32, 3, 3, 1, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], 256, 4, 4)
        return self.net(F.relu(self.bn0(h)))


class DCGANDiscriminator(nn.Module):
    """Conv 4x4 s2 p1 3->64 (bias) -> LReLU(0.2) -> Conv 64->128 -> [BN] -> LReLU -> Conv 128->256
    -> [BN] -> LReLU -> flatten (C,H,W) -> Linear(4096, 1). With batch_norm=False the middle
    convs carry a bias instead (the "D noBN" variant)."""

    def __init__(self, batch_norm: bool = True):
        super().__init__()
        bn = batch_norm
        self.net = nn.Sequential(
            nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=not bn), nn.BatchNorm2d(128) if bn else nn.Identity(),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(128, 256, 4, 2, 1, bias=not bn), nn.BatchNorm2d(256) if bn else nn.Identity(),
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),
            nn.Linear(256 * 4 * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


# --------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------

def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops_per_image(model: nn.Module, *inputs_for_batch) -> int:
    """FlopCounterMode's total for one forward pass, divided by the batch size.

    ``inputs_for_batch`` are the forward's inputs; the first one's leading dimension is the batch.
    """
    from torch.utils.flop_counter import FlopCounterMode

    batch = inputs_for_batch[0].shape[0]
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs_for_batch)
    model.train(was_training)
    total = counter.get_total_flops()
    assert total % batch == 0, (total, batch)
    return total // batch


def unet_forward_flops(model: UNet, batch: int = 2) -> int:
    x = torch.zeros(batch, 3, 32, 32)
    t = torch.zeros(batch, dtype=torch.long)
    return forward_flops_per_image(model, x, t)


def dcgan_forward_flops() -> dict:
    g, d = DCGANGenerator(), DCGANDiscriminator()
    return {
        "dcgan-g": forward_flops_per_image(g, torch.zeros(2, 128)),
        "dcgan-d": forward_flops_per_image(d, torch.zeros(2, 3, 32, 32)),
    }


# --------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------

def check(verbose: bool = True) -> None:
    torch.manual_seed(0)
    rows = []
    for preset, ch in UNET_PRESETS.items():
        m = make_unet(preset)
        params = count_params(m)
        flops = unet_forward_flops(m)
        manual = manual_unet_flops(ch)
        rows.append((preset, params, flops, manual))
        assert params == EXPECTED_PARAMS[preset], f"{preset}: {params} params, expected {EXPECTED_PARAMS[preset]}"
        assert flops == EXPECTED_FORWARD_FLOPS[preset], f"{preset}: {flops} FLOPs, expected {EXPECTED_FORWARD_FLOPS[preset]}"
        assert manual == flops, f"{preset}: manual count {manual} != FlopCounterMode {flops}"
        # Shape and a backward pass on a tiny batch.
        x = torch.randn(2, 3, 32, 32, requires_grad=True)
        y = m(x, torch.tensor([0, 999]))
        assert y.shape == (2, 3, 32, 32), y.shape
        y.square().mean().backward()
        assert all(p.grad is not None for p in m.parameters()), f"{preset}: a parameter got no gradient"

    dflops = dcgan_forward_flops()
    for name, model in [("dcgan-g", DCGANGenerator()), ("dcgan-d", DCGANDiscriminator()),
                        ("dcgan-d-nobn", DCGANDiscriminator(batch_norm=False))]:
        params = count_params(model)
        rows.append((name, params, dflops.get(name), None))
        assert params == EXPECTED_PARAMS[name], f"{name}: {params} params, expected {EXPECTED_PARAMS[name]}"
    g, d = DCGANGenerator(), DCGANDiscriminator()
    img = g(torch.randn(4, 128))
    assert img.shape == (4, 3, 32, 32), img.shape
    assert d(img).shape == (4,)
    # Reference: G 53.15 MFLOP/image, D 35.14 MFLOP/image.
    assert round(dflops["dcgan-g"] / 1e4) == 5315, dflops["dcgan-g"]
    assert round(dflops["dcgan-d"] / 1e4) == 3514, dflops["dcgan-d"]

    if verbose:
        print(f"torch {torch.__version__}")
        print(f"{'model':<14}{'params':>12}{'fwd FLOPs/img':>16}{'manual':>16}")
        for name, params, flops, manual in rows:
            f = f"{flops:,}" if flops is not None else "-"
            mm = f"{manual:,}" if manual is not None else "-"
            print(f"{name:<14}{params:>12,}{f:>16}{mm:>16}")
        print("check passed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="assert parameter counts and forward FLOPs against reference-models.md")
    args = ap.parse_args(argv)
    if args.check:
        torch.set_num_threads(1)
        check()
        return 0
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
