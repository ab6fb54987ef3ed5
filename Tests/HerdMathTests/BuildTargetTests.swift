import Foundation
import HerdMath
import Testing

@Suite struct BuildTargetTests {
  static let named: [(UInt32, String)] = [
    (1, "avx2"), (2, "fma"), (4, "avx512f"), (8, "avx512bw"), (16, "avx512dq"), (32, "avx512vl"),
  ]

  /// CPUID (through the compiler's builtin) agrees with /proc/cpuinfo, feature by
  /// feature, and each bit has its Linux name.
  @Test func theHostsFeaturesAreTheOnesLinuxLists() {
    let host = BuildTarget.hostFeatures
    for (bit, name) in Self.named {
      #expect((host & bit != 0) == CPUFeatures.has(name), "\(name): CPUID and /proc/cpuinfo disagree")
      #expect(BuildTarget.names(bit) == name)
    }
    #expect(BuildTarget.allFeatures == Self.named.reduce(0) { $0 | $1.0 })
  }

  /// The build's features follow how `make` built it, and the machine that built it
  /// (this one) runs it.
  @Test func theBuildsFeaturesFollowItsTarget() {
    let built = BuildTarget.cpuFeatures
    #expect((built & 2 != 0) == targetHasFMA)
    #if HERD_AVX512
      #expect(built == BuildTarget.allFeatures, "\(BuildTarget.names(built))")
    #endif
    if ProcessInfo.processInfo.environment["HERD_PORTABLE"] != nil {
      #expect(built == 0, "a portable build uses \(BuildTarget.names(built))")
    } else if CPUFeatures.has("avx2") && CPUFeatures.has("fma") {
      #expect(built & 3 == 3, "a build for this CPU uses only \(BuildTarget.names(built))")
    }
    #expect(built & ~BuildTarget.hostFeatures == 0, "built for \(BuildTarget.names(built)) on a CPU without them")
  }

  @Test func theErrorNamesWhatIsMissingAndTheWayOut() {
    #expect(
      BuildTarget.message(program: "herd", needed: 63, missing: 60)
        == "herd: this binary was built for CPUs with avx2 fma avx512f avx512bw avx512dq avx512vl, and this CPU "
        + "lacks avx512f avx512bw avx512dq avx512vl (it would stop with SIGILL at the first such instruction). "
        + "Build it on this machine (make build), or for any x86-64 CPU with HERD_PORTABLE=1 make build "
        + "(about half the speed).\n")
    #expect(BuildTarget.names(3) == "avx2 fma")
    #expect(BuildTarget.names(0) == "")
  }
}
