import Glibc

/// The process's open files against its limit (`RLIMIT_NOFILE`).
///
/// Every TCP connection is a file descriptor: a learner holds about three per
/// worker (control, fragments, weights) and one per stats client. At the limit the
/// kernel refuses the next connection's descriptor; ZeroMQ's I/O thread then
/// retries its accept at full speed, a core busy, and new workers wait unanswered.
/// Debian's login shells and systemd services start with a soft limit of 1024, room
/// for some 330 workers, under a hard limit hundreds of times larger, which a
/// process may raise its soft limit to on its own.
public enum OpenFiles {
  /// The soft limit; nil when it cannot be read.
  public static var limit: Int? {
    var r = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return nil }
    return r.rlim_cur == rlim_t.max ? Int.max : Int(clamping: r.rlim_cur)
  }

  /// Raises the soft limit to the hard one (capped at `cap`, since some tools size
  /// tables by it). Returns the limits before and after, or nil when nothing changed.
  @discardableResult
  public static func raiseLimit(cap: Int = 1 << 20) -> (from: Int, to: Int)? {
    var r = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return nil }
    let target = min(r.rlim_max, rlim_t(cap))
    guard target > r.rlim_cur else { return nil }
    let from = Int(clamping: r.rlim_cur)
    r.rlim_cur = target
    guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return nil }
    return (from, Int(clamping: target))
  }

  /// Descriptors open now (the entries of /proc/self/fd, less the one reading it);
  /// nil without /proc.
  public static var inUse: Int? {
    guard let dir = opendir("/proc/self/fd") else { return nil }
    defer { closedir(dir) }
    var n = 0
    while let entry = readdir(dir) {
      if entry.pointee.d_name.0 != 0x2E { n += 1 }  // not "." or ".."
    }
    return n - 1
  }

  /// Workers a learner can hold under `limit`: three descriptors each, after
  /// `reserved` for its own files, threads' pipes and stats clients.
  public static func workerRoom(limit: Int, reserved: Int = 64) -> Int { max(0, (limit - reserved) / 3) }
}

/// Says once when the open files come near the limit (within a twentieth of it,
/// at least 16), and again only after they have fallen below four fifths of it.
public struct OpenFilesWatch: Sendable {
  private var warned = false
  public init() {}

  /// The warning to log for `used` of `limit` open files now, if any.
  public mutating func check(used: Int, limit: Int) -> String? {
    let margin = max(16, limit / 20)
    if !warned && used >= limit - margin {
      warned = true
      return
        "\(used) of the learner's \(limit) open files are in use (RLIMIT_NOFILE; each worker's connections take 3): workers that connect now are not answered until some leave, and ZeroMQ retries their connections at full speed; raise the limit (ulimit -n before herd learner, LimitNOFILE= in a systemd unit) and restart the learner with --resume"
    }
    if warned && used < limit * 4 / 5 { warned = false }
    return nil
  }
}
