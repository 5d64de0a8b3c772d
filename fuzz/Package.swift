// swift-tools-version:6.0
// libFuzzer harnesses for Eidetic's file loaders (issue 10). A separate package, so the main
// package's `swift build` / `make test` never build them. Build one with (from fuzz/):
//
//   swift build -c release --scratch-path ../.build-fuzz --product FuzzIDX \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//
// or run them all: `make fuzz` at the repository root (fuzz/run.sh). See docs/FUZZING.md.
import PackageDescription

let fuzzers = ["FuzzCIFAR", "FuzzIDX", "FuzzPNG", "FuzzDataset", "FuzzTensorFile", "FuzzTOML", "FuzzPlan"]

let package = Package(
    name: "EideticFuzz",
    products: fuzzers.map { .executable(name: $0, targets: [$0]) } + [.executable(name: "MakeSeeds", targets: ["MakeSeeds"])],
    dependencies: [.package(name: "Eidetic", path: "..")],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(name: "MakeSeeds", dependencies: [
            .product(name: "Data", package: "Eidetic"), .product(name: "HDF5", package: "Eidetic"),
            .product(name: "Tensor", package: "Eidetic"),
        ]),
    ] + fuzzers.map { name in
        .executableTarget(name: name, dependencies: [
            "FuzzSupport",
            .product(name: "Data", package: "Eidetic"), .product(name: "HDF5", package: "Eidetic"),
            .product(name: "TOML", package: "Eidetic"), .product(name: "Training", package: "Eidetic"),
        ])
    },
    swiftLanguageModes: [.v5]
)
