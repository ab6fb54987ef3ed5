import Foundation
import HerdMath
import HerdTestSupport
import Testing

/// The herd binary on an emulated CPU without AVX2, FMA or AVX-512 (QEMU's user
/// mode, `-cpu qemu64`): a portable build runs; a build for a newer CPU says what
/// this one lacks and exits 1, where it used to die of SIGILL.
@Suite struct HostCPUTests {
  @Test(.enabled(if: which("qemu-x86_64") != nil || requireTools, "needs qemu-user (apt-get install qemu-user)"))
  func aBinaryBuiltForANewerCPUSaysWhatThisOneLacks() throws {
    let qemu = try #require(which("qemu-x86_64"), "qemu-x86_64 is not installed")
    let r = try HerdBinary.runCommand(qemu, ["-cpu", "qemu64", HerdBinary.path, "--version"], timeout: 120)
    let needed = BuildTarget.cpuFeatures
    if needed == 0 {
      #expect(r.status == 0, "a portable build on qemu64: \(r.status)\n\(r.stderr)")
      #expect(!r.stdout.isEmpty)
    } else {
      #expect(r.status == 1, "built for \(BuildTarget.names(needed)): status \(r.status)\n\(r.stderr)")
      #expect(r.stderr == BuildTarget.message(program: "herd", needed: needed, missing: needed))
      #expect(r.stdout.isEmpty)
    }
  }
}
