import Foundation

/// The Python interpreter with herd_env for env host tests: $HERD_PYTHON (make test
/// sets it to the project's virtualenv), else ./.venv/bin/python when present.
public let envHostPython: String? = {
  if let p = ProcessInfo.processInfo.environment["HERD_PYTHON"], !p.isEmpty { return p }
  let venv = FileManager.default.currentDirectoryPath + "/.venv/bin/python"
  return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
}()

/// `make test` sets HERD_REQUIRE_TOOLS=1: a missing tool then fails instead of skipping.
public let requireTools = ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1"

/// Whether `pid` is a live process (a zombie counts as dead).
public func processAlive(_ pid: Int32) -> Bool {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
  return !stat.contains(") Z ")
}

/// Live processes whose parent is `pid`.
public func childPIDs(of pid: Int32) -> [Int32] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap { name -> Int32? in
    guard let child = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
    guard fields.count > 2, fields[0] != "Z", Int32(fields[1]) == pid else { return nil }
    return child
  }
}
