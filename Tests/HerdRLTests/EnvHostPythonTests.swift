import Foundation
import Testing

@testable import HerdRL

/// Which interpreter runs the env host when neither --python nor a config names one.
@Suite struct EnvHostPythonTests {
  /// The interpreter chosen when the paths in `existing` are the executable files.
  func choose(_ environment: String?, cwd: String = "/home/u/elsewhere", exe: String, existing: Set<String>) -> String {
    EnvHostSettings.python(
      environment: environment, currentDirectory: cwd, executable: exe, isExecutable: { existing.contains($0) })
  }

  @Test func theVariableThenTheWorkingDirectoryThenTheCheckoutThenPath() {
    let exe = "/src/herd/.build/x86_64-unknown-linux-gnu/release/herd"
    let both: Set = ["/home/u/elsewhere/.venv/bin/python", "/src/herd/.venv/bin/python"]
    #expect(choose("/opt/py/bin/python", exe: exe, existing: both) == "/opt/py/bin/python")
    #expect(choose(nil, exe: exe, existing: both) == "/home/u/elsewhere/.venv/bin/python")
    #expect(choose("", exe: exe, existing: ["/src/herd/.venv/bin/python"]) == "/src/herd/.venv/bin/python")
    #expect(choose(nil, exe: exe, existing: []) == "python3")
    // An installed binary (no .build in its path) looks nowhere else.
    #expect(choose(nil, exe: "/usr/local/bin/herd", existing: ["/usr/local/.venv/bin/python"]) == "python3")
  }

  /// The real executable's path: built in a checkout's .build (as `make test` does),
  /// the lookup finds that checkout's .venv from another working directory when
  /// `make venv` made one.
  @Test func theRealExecutableFindsItsCheckout() throws {
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let venv = exe.range(of: "/.build/").map { String(exe[..<$0.lowerBound]) + "/.venv/bin/python" }
    let found = EnvHostSettings.python(
      environment: nil, currentDirectory: "/", executable: exe,
      isExecutable: { FileManager.default.isExecutableFile(atPath: $0) })
    #expect(found == (venv.map { FileManager.default.isExecutableFile(atPath: $0) } == true ? venv! : "python3"))
  }
}
