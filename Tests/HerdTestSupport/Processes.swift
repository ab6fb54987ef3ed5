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

/// A TCP socket listening on 127.0.0.1:`port` (another program holding it), or nil
/// when the port cannot be taken. Close the descriptor to free it.
public func holdPort(_ port: Int) -> Int32? {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return nil }
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = in_port_t(UInt16(port).bigEndian)
  addr.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
  let bound = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
  }
  guard bound && listen(fd, 1) == 0 else {
    close(fd)
    return nil
  }
  return fd
}

/// A base port whose `count` consecutive ports are free now (a learner binds
/// control, fragments and weights at base, base + 1, base + 2). Drawn below Linux's
/// ephemeral range (32768 and up), where the system hands out ports to outgoing
/// connections and `port 0` binds, so another test's sockets do not take it.
public func freePortBlock(_ count: Int = 3) -> Int {
  func free(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr = in_addr(s_addr: INADDR_ANY)
    return withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
  }
  for _ in 0..<200 {
    let base = Int.random(in: 10_000..<(32_000 - count))
    if (0..<count).allSatisfy({ free(base + $0) }) { return base }
  }
  preconditionFailure("no \(count) free consecutive ports below 32000")
}
