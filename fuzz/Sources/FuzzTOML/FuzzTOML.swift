// libFuzzer target: the TOML parser and strict config reader through `TrainConfig.load(toml:
// file:overrides:)`. Text after the first NUL byte is a list of `--set key=value` overrides,
// one a line. A config that loads is then used the way `eidetic train` starts: steps, the
// resolved JSON, the run directory hash, the diffusion schedule and the sampler's timesteps.
// Nothing is asserted beyond "returns or throws".
import FuzzSupport
import Training

@_cdecl("FuzzTOML_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let (text, extra) = splitOnce(fuzzBytes(data, size), separator: [0])
    let overrides = extra.isEmpty ? [] : String(decoding: extra, as: UTF8.self).split(separator: "\n").map(String.init)
    guard let c = try? TrainConfig.load(toml: String(decoding: text, as: UTF8.self), file: "fuzz.toml", overrides: overrides) else { return 0 }
    _ = c.totalSteps
    _ = try? c.canonicalJSON()
    _ = try? c.defaultRunDirectory()
    if c.diffusion.timesteps <= 10_000 {
        let process = c.diffusion.process
        _ = c.sample.sampler.timesteps(total: process.timesteps)
    }
    return 0
}
