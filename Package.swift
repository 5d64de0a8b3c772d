// swift-tools-version:6.0
// Eidetic: a from-scratch Swift autodiff + trainer for measuring memorization in small
// diffusion models and GANs (Carlini et al., 2023, "Extracting Training Data from Diffusion Models").
//
// Modules import only downward:
//   CBLAS, CHDF5, CKernels  ->  Tensor (kernels + RNG + tape)  ->  NN  ->  Optim (+ CKernels: Adam's loop)
//   Privacy (RDP accountant, one-run audit bound; imports nothing of ours)
//   CHDF5 + Tensor -> HDF5 (named tensor trees on disk)
//   HDF5 + CZlib + CPNG -> Data (readers, dataset store, plans, batching, PNG, exact kNN)
//   Models -> Diffusion -> Training (configs, runs, trainer, sampling; + Privacy) -> Evaluation
//   (extraction, cliques, membership inference, privacy audit, inpainting, outliers, quality)
//   -> Experiments (experiment pipeline, sweeps, sweep database via GRDB, tables) -> eidetic (CLI)
import PackageDescription

/// C kernels (transcendentals, fused activations) are compiled at -O3; x86-64 gets AVX2/FMA clones
/// chosen at run time (see Sources/CKernels/ckernels.c), so the package builds on any CPU.
let cKernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno", "-fno-trapping-math"])]

let package = Package(
    name: "Eidetic",
    products: [
        .executable(name: "eidetic", targets: ["eidetic"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Optim", targets: ["Optim"]),
        .library(name: "HDF5", targets: ["HDF5"]),
        .library(name: "Data", targets: ["Data"]),
        // For the fuzz package (fuzz/Package.swift depends on this one by path).
        .library(name: "TOML", targets: ["TOML"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The sweep database (SQLite, transactions shared by many workers).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CKernels", cSettings: cKernelFlags, linkerSettings: [.linkedLibrary("m")]),
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "NN", dependencies: ["Tensor"]),
        .target(name: "Optim", dependencies: ["Tensor", "NN", "CKernels"]),
        .target(name: "HDF5", dependencies: ["CHDF5", "CZlib", "Tensor"]),
        .target(name: "Data", dependencies: ["Tensor", "CKernels", "HDF5", "CHDF5", "CZlib", "CPNG"]),
        .target(name: "TOML"),
        .target(name: "Privacy"),
        .target(name: "Models", dependencies: ["Tensor", "NN"]),
        .target(name: "Diffusion", dependencies: ["Tensor", "NN", "Models"]),
        .target(name: "Training", dependencies: ["Tensor", "NN", "Optim", "HDF5", "Data", "Models", "Diffusion", "TOML", "Privacy"]),
        .target(name: "Evaluation", dependencies: ["Tensor", "CKernels", "NN", "Optim", "Data", "HDF5", "Models", "Diffusion", "Training", "Privacy"]),
        .target(name: "Examples", dependencies: ["Tensor", "NN", "Optim"]),
        // Whole experiments (train → sample → evaluate → summary) and sweeps of them.
        .target(name: "Experiments", dependencies: ["Tensor", "Data", "HDF5", "TOML", "Training", "Evaluation",
                                                    .product(name: "GRDB", package: "GRDB.swift")]),
        .executableTarget(name: "eidetic", dependencies: [
            "Tensor", "NN", "Optim", "HDF5", "Data", "Models", "Diffusion", "Training", "TOML", "Examples", "Evaluation", "Privacy", "Experiments",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"]),
        .testTarget(name: "PrivacyTests", dependencies: ["Privacy"], exclude: ["opacus-grid.csv"]),
        .testTarget(name: "NNTests", dependencies: ["Tensor", "NN", "Optim", "Examples"]),
        .testTarget(name: "DataTests", dependencies: ["Tensor", "HDF5", "Data", "CZlib"]),
        .testTarget(name: "ModelTests", dependencies: ["Tensor", "NN", "Models"]),
        .testTarget(name: "TrainingTests", dependencies: ["Tensor", "NN", "Models", "Diffusion", "Training", "TOML", "Data", "HDF5", "Privacy"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Tensor", "NN", "Data", "HDF5", "Models", "Diffusion", "Training", "Evaluation"]),
        .testTarget(name: "HDF5Tests", dependencies: ["Tensor", "HDF5", "NN", "Optim"]),
        // Bad input and faults through the real `eidetic` binary (built beside the tests).
        .testTarget(name: "CLITests", dependencies: ["Tensor", "HDF5", "Data", "Training"]),
        .testTarget(name: "ExperimentTests", dependencies: ["TOML", "Training", "Evaluation", "Experiments"]),
    ],
    swiftLanguageModes: [.v5]
)
