import COpenBLAS
import Glibc
import Synchronization

/// OpenBLAS's packing buffers on 2 MiB pages.
///
/// Every `cblas_sgemm` packs its operands into a buffer from OpenBLAS's own pool:
/// regions of 128 MiB (Debian's 0.3.21) that OpenBLAS maps once per thread and
/// keeps, of which a product touches the first few MiB. On 4 KiB pages, on a Zen 1
/// EPYC (OpenBLAS's Zen kernel, a KVM guest), the recurrent layer's products ran at
/// one of two speeds, half or full, fixed for each thread by how its buffer's pages
/// had first been touched; the learner's step at 1 thread moved between 5.5k and
/// 9.4k timesteps/s with it. On 2 MiB pages they run at full speed every time.
/// With transparent huge pages in `madvise` mode (Debian's default) only advised
/// memory gets them, so on each thread's first product Herd takes a buffer from the
/// pool, advises the whole mapping that holds it with `MADV_HUGEPAGE`, and gives it
/// back before OpenBLAS touches it. Only the page size changes: the same products,
/// the same bits. `HERD_HUGE_PAGES=0` turns it off (to measure what it buys).
public enum OpenBLASPages {
  /// What this process does with OpenBLAS's buffers.
  public enum Mode: String, Sendable, Equatable {
    /// Each thread's buffer is advised (the system gives huge pages on request).
    case advise
    /// Nothing to do: the system gives every anonymous mapping huge pages.
    case always
    /// Nothing to do: the system gives none (`never`, or no transparent huge pages).
    case never
    /// Turned off with `HERD_HUGE_PAGES=0`.
    case off
  }

  /// One thread's advice: the mapping that holds its buffer and madvise's result.
  public struct Advice: Sendable, Equatable {
    /// The advising thread (`pthread_self`).
    public var thread: UInt
    /// The mapping advised, `[start, end)`; 0 and 0 when OpenBLAS gave no buffer.
    public var start: UInt
    public var end: UInt
    /// `errno` when madvise (or finding the mapping) failed, else nil.
    public var error: Int32?
  }

  /// The mode for `HERD_HUGE_PAGES`'s value `setting` and the contents of
  /// `/sys/kernel/mm/transparent_hugepage/enabled` (nil: no such file), with a
  /// warning for a setting that is neither 0 nor 1.
  public static func choose(setting: String?, systemTHP: String?) -> (mode: Mode, warning: String?) {
    var warning: String?
    switch setting {
    case "0": return (.off, nil)
    case nil, "", "1": break
    case let other?: warning = "HERD_HUGE_PAGES=\(other) is neither 0 (off) nor 1 (on); using 1"
    }
    // The file lists the modes with the active one in brackets: "always [madvise] never".
    guard let text = systemTHP, let open = text.firstIndex(of: "["),
      let close = text[open...].firstIndex(of: "]")
    else { return (.never, warning) }
    switch text[text.index(after: open)..<close] {
    case "always": return (.always, warning)
    case "madvise": return (.advise, warning)
    default: return (.never, warning)
    }
  }

  /// This process's mode (read once), and a warning on standard error for a bad
  /// `HERD_HUGE_PAGES`.
  public static let mode: Mode = {
    let choice = choose(
      setting: getenv("HERD_HUGE_PAGES").map { String(cString: $0) },
      systemTHP: readSmallFile("/sys/kernel/mm/transparent_hugepage/enabled"))
    if let warning = choice.warning { writeToStandardError("herd: \(warning)\n") }
    return choice.mode
  }()

  /// For the logs: what page size OpenBLAS's buffers get and why.
  public static var summary: String {
    switch mode {
    case .advise: return "OpenBLAS buffers on 2 MiB pages (madvise)"
    case .always: return "OpenBLAS buffers on 2 MiB pages (system THP always)"
    case .never: return "OpenBLAS buffers on 4 KiB pages (no transparent huge pages on this system)"
    case .off: return "OpenBLAS buffers on 4 KiB pages (HERD_HUGE_PAGES=0)"
    }
  }

  private static let log = Mutex<[Advice]>([])
  private static let warnedOnce = Atomic<Bool>(false)

  /// Every advice given so far, one per thread that ran an OpenBLAS product.
  public static var advice: [Advice] { log.withLock { $0 } }

  /// On the calling thread's first OpenBLAS product: advise its buffer's mapping.
  static func prepareCallingThread() {
    guard mode == .advise, herd_first_openblas_call_on_thread() != 0 else { return }
    var entry = Advice(thread: UInt(pthread_self()), start: 0, end: 0, error: nil)
    if let buffer = blas_memory_alloc(0) {
      if let range = mapping(containing: UInt(bitPattern: buffer)) {
        (entry.start, entry.end) = range
        let start = UnsafeMutableRawPointer(bitPattern: range.start)
        if madvise(start, Int(range.end - range.start), MADV_HUGEPAGE) != 0 {
          entry.error = errno
        }
      } else {
        entry.error = ENOENT
      }
      blas_memory_free(buffer)
    } else {
      entry.error = ENOMEM
    }
    log.withLock { $0.append(entry) }
    if let error = entry.error, !warnedOnce.exchange(true, ordering: .relaxed) {
      let reason = String(cString: strerror(error))
      writeToStandardError(
        "herd: could not advise OpenBLAS's buffer to use huge pages (\(reason)); it stays on 4 KiB pages\n")
    }
  }

  /// The mapping `[start, end)` of this process that holds `address`, from
  /// `/proc/self/maps`; nil when none does.
  public static func mapping(containing address: UInt) -> (start: UInt, end: UInt)? {
    var found: (start: UInt, end: UInt)?
    forEachLine(ofFile: "/proc/self/maps") { text in
      // "start-end perms offset dev inode path", hexadecimal bounds.
      var rest: UnsafeMutablePointer<CChar>?
      let start = UInt(strtoul(text, &rest, 16))
      guard let dash = rest, dash.pointee == CChar(UInt8(ascii: "-")) else { return true }
      let end = UInt(strtoul(dash + 1, nil, 16))
      if start <= address && address < end { found = (start, end) }
      return found == nil
    }
    return found
  }
}
