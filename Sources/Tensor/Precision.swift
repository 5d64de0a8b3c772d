import CKernels

/// The arithmetic of the convolutions: `fp32` (the default and the reference) or `bf16`,
/// mixed precision as PyTorch's CPU autocast runs convolutions: inputs and weights rounded
/// to bfloat16 for each product, every sum kept in Float, master weights, gradients and
/// everything else Float (`conv_bf16.c`). It covers the 3×3 stride-1 convolutions of the
/// U-Net (`DirectConvBF16`: forward, input and weight gradients), which carry nearly all of
/// its operations; other layers run in Float. The arithmetic is that of AVX512-BF16's
/// VDPBF16PS on every CPU (emulated without it, same bits, slower), so results stay
/// independent of the machine, the batch and the thread count, as in fp32.
///
/// Chosen for a scope (`ComputePrecision.$current.withValue(.bf16) { … }`): a convolution
/// records the precision it ran in, and its backward uses the same one.
public enum ComputePrecision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16

    @TaskLocal public static var current: ComputePrecision = .fp32

    /// Whether this CPU runs bf16 products in hardware (AVX512-BF16: Zen 4 and later,
    /// Sapphire Rapids and later); without it `bf16` gives the same bits more slowly.
    public static var bf16Native: Bool { ek_bf16_native() != 0 }
}
