import CHostCPU

/// The CPU features this build's code may execute, and a check, run first in
/// `main`, that this CPU has them.
///
/// `make` builds for the build machine's CPU (`-target-cpu haswell`: AVX2 and FMA;
/// `skylake-avx512`: those and AVX-512 F, BW, DQ, VL). Such a binary copied to a
/// CPU without them would stop with SIGILL at the first such instruction, which
/// may be anywhere. ``exitUnlessThisCPURunsIt()`` instead names the missing
/// features and the way out, from C compiled for any x86-64 (CHostCPU), before any
/// Swift code built for them runs.
public enum BuildTarget {
  /// The features the Swift modules were compiled for (bits `HERD_CPU_*`).
  public static var cpuFeatures: UInt32 { herd_build_cpu_features() }

  /// The features this CPU has and the kernel enables (CPUID and XGETBV).
  public static var hostFeatures: UInt32 { herd_host_cpu_features() }

  /// Every feature the check knows.
  public static let allFeatures = UInt32(HERD_CPU_ALL)

  /// What the build needs, for `herd --version`: "CPUs with avx2 fma" or "any
  /// x86-64 CPU".
  public static var summary: String {
    let needed = cpuFeatures
    return needed == 0 ? "any x86-64 CPU" : "CPUs with \(names(needed))"
  }

  /// `features` by their /proc/cpuinfo names, space-separated.
  public static func names(_ features: UInt32) -> String {
    text { herd_cpu_feature_names(features, $0, $1) }
  }

  /// The error ``exitUnlessThisCPURunsIt()`` writes for `missing` of `needed`.
  public static func message(program: String, needed: UInt32, missing: UInt32) -> String {
    text { buffer, size in program.withCString { herd_cpu_message($0, needed, missing, buffer, size) } }
  }

  /// Returns when this CPU has every feature the build uses; otherwise writes
  /// ``message(program:needed:missing:)`` to stderr and exits with status 1.
  public static func exitUnlessThisCPURunsIt() {
    herd_exit_unless_cpu_has(herd_build_cpu_features())
  }

  private static func text(_ write: (UnsafeMutablePointer<CChar>?, Int) -> Int) -> String {
    let size = write(nil, 0) + 1
    var buffer = [CChar](repeating: 0, count: size)
    _ = buffer.withUnsafeMutableBufferPointer { write($0.baseAddress, size) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
