import Foundation
import HerdMath
import HerdTestSupport
import Synchronization
import Testing

@Suite struct OpenBLASPagesTests {
  @Test func theModeFollowsTheSystemAndTheSetting() {
    let cases: [(String?, String?, OpenBLASPages.Mode, Bool)] = [
      (nil, "always [madvise] never\n", .advise, false),
      (nil, "[always] madvise never\n", .always, false),
      (nil, "always madvise [never]\n", .never, false),
      (nil, nil, .never, false),
      (nil, "garbled", .never, false),
      ("1", "always [madvise] never\n", .advise, false),
      ("", "always [madvise] never\n", .advise, false),
      ("0", "always [madvise] never\n", .off, false),
      ("0", "[always] madvise never\n", .off, false),
      ("yes", "always [madvise] never\n", .advise, true),
    ]
    for (setting, system, mode, warns) in cases {
      let choice = OpenBLASPages.choose(setting: setting, systemTHP: system)
      #expect(choice.mode == mode, "HERD_HUGE_PAGES=\(setting ?? "unset"), system \(system ?? "nil")")
      #expect((choice.warning != nil) == warns, "\(choice.warning ?? "no warning")")
      if let warning = choice.warning { #expect(warning.contains("HERD_HUGE_PAGES=\(setting ?? "")")) }
    }
  }

  @Test func theMappingHoldingAnAddressIsFound() throws {
    // 8 MiB from malloc is a mapping of its own.
    let block = try #require(malloc(8 << 20))
    defer { free(block) }
    let address = UInt(bitPattern: block)
    let range = try #require(OpenBLASPages.mapping(containing: address + 4096))
    #expect(range.start <= address && address + (8 << 20) <= range.end, "\(range) for \(address)")
    #expect(OpenBLASPages.mapping(containing: 1) == nil)
  }

  /// A thread's first OpenBLAS product advises the mapping of its buffer (VmFlags
  /// "hg" in smaps), once; on a system that gives huge pages to all or none, or with
  /// HERD_HUGE_PAGES=0, nothing is advised. Checked while the thread lives: OpenBLAS
  /// unmaps a thread's buffer when the thread ends. Only advice given after the
  /// test began counts: a thread that ended earlier may have had the same pthread id.
  @Test func aThreadsFirstProductAdvisesItsBuffer() throws {
    let before = OpenBLASPages.advice.count
    func given(to thread: UInt) -> [OpenBLASPages.Advice] {
      OpenBLASPages.advice.dropFirst(before).filter { $0.thread == thread }
    }
    var flags: [String]?
    let thread = runOnNewThread(products: 2) { thread in
      if let advice = given(to: thread).first { flags = smapsFlags(containing: advice.start) }
    }
    let mine = given(to: thread)
    guard OpenBLASPages.mode == .advise else {
      #expect(mine.isEmpty, "mode \(OpenBLASPages.mode) yet advised: \(mine)")
      return
    }
    #expect(mine.count == 1, "two products on one thread advised \(mine.count) times")
    let advice = try #require(mine.first)
    #expect(advice.error == nil, "madvise failed: errno \(advice.error ?? 0)")
    #expect(advice.end - advice.start >= 2 << 20, "mapping \(advice)")
    let vmFlags = try #require(flags, "no mapping held \(advice.start) while its thread lived")
    #expect(vmFlags.contains("hg"), "VmFlags of OpenBLAS's buffer: \(vmFlags)")
  }

  /// Runs `products` small OpenBLAS products on a new thread, then `whileAlive` with
  /// its pthread id on this one before the thread ends; returns the id.
  func runOnNewThread(products: Int, whileAlive: (UInt) -> Void) -> UInt {
    let ran = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let ended = DispatchSemaphore(value: 0)
    let id = Mutex<UInt>(0)
    let thread = Thread {
      id.withLock { $0 = UInt(pthread_self()) }
      let a = [Float](repeating: 0.5, count: 32 * 64)
      let b = [Float](repeating: 0.25, count: 64 * 128)
      var c = [Float](repeating: 0, count: 32 * 128)
      for _ in 0..<products {
        c.withMutablePointer { pc in
          BLAS.openBLASGemm(.none, .none, m: 32, n: 128, k: 64, a: a, lda: 64, b: b, ldb: 128, beta: 0, c: pc, ldc: 128)
        }
      }
      #expect(c[0] == 0.5 * 0.25 * 64)
      ran.signal()
      release.wait()
      ended.signal()
    }
    thread.start()
    ran.wait()
    let tid = id.withLock { $0 }
    whileAlive(tid)
    release.signal()
    ended.wait()
    return tid
  }

  /// The VmFlags of the mapping in /proc/self/smaps that holds `address`.
  func smapsFlags(containing address: UInt) -> [String]? {
    // /proc files report size 0: read to the end rather than by size.
    guard let file = FileHandle(forReadingAtPath: "/proc/self/smaps"), let data = try? file.readToEnd(),
      let text = String(data: data, encoding: .utf8)
    else { return nil }
    var inside = false
    for line in text.split(separator: "\n") {
      if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
        let start = UInt(line[..<dash], radix: 16), let end = UInt(line[line.index(after: dash)..<space], radix: 16)
      {
        inside = start <= address && address < end
      } else if inside, line.hasPrefix("VmFlags:") {
        return line.dropFirst("VmFlags:".count).split(separator: " ").map(String.init)
      }
    }
    return nil
  }
}
