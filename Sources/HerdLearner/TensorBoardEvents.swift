import Foundation
import HerdNN
import HerdRL

#if canImport(Glibc)
  import Glibc
#endif

/// A run's curves as TensorBoard reads them:
/// `RUN_DIR/events.out.tfevents.TIME.HOST.PID`, one file per invocation (a resumed run adds one and TensorBoard
/// joins them; in the run folder itself, so `tensorboard --logdir runs` names each
/// run by its folder), one event per progress record with every number of
/// `progress.jsonl` as a scalar under the same name (``MetricKey``), against env
/// steps sampled.
///
/// The file is a TFRecord stream: each record is its length (8 bytes, little
/// endian), that length's masked CRC-32C, the bytes, and their masked CRC-32C; the
/// bytes are a serialised `tensorflow.Event` (event.proto: `wall_time` 1, `step`
/// 2, `file_version` 3, `summary` 5, `session_log` 7; summary.proto:
/// `Summary.value` 1, `Value.tag` 1, `Value.simple_value` 2), written by hand
/// with ``ProtoWriter``. The first record is the file's version event; a resumed
/// run's file follows it with a `SessionLog` START one step past the checkpoint's
/// env steps, on which TensorBoard drops the events of earlier files from that
/// step on (the training after the checkpoint that the run lost and does again).
///
/// The file is made at the first append, not before, so a full disk at start
/// costs nothing but a retry. Every append writes its records whole or not at
/// all: a failed write is cut back off, so the file never ends in half a record
/// (which TensorBoard would read as corruption).
public final class TensorBoardEvents {
  /// The folder the event file goes in.
  public let folder: String
  /// The event file, once made.
  public private(set) var path: String?
  private var fd: Int32 = -1
  private var versionWritten = false
  /// The step a resumed run starts again from (one past its checkpoint's env
  /// steps: TensorBoard keeps the earlier events below it): the file's first
  /// records then say so (TensorBoard's restart marker).
  public var restartStep: Int?

  /// Whether the first append makes the folder when it is missing (false for a
  /// run directory, which exists from the start: one removed mid-run stays removed
  /// rather than coming back with only an events file in it).
  private let createsFolder: Bool

  public init(folder: String, createsFolder: Bool = true) {
    self.folder = folder
    self.createsFolder = createsFolder
  }

  deinit { if fd >= 0 { close(fd) } }

  /// Appends one event with `scalars` at `step` (and, before the first, the
  /// version event), whole or not at all. Values that are not finite are left out.
  public func append(step: Int, wallTime: Double, scalars: [(tag: String, value: Double)]) throws {
    if fd < 0 { try open(wallTime: wallTime) }
    var bytes: [UInt8] = []
    if !versionWritten {
      bytes += Self.record(Self.versionEvent(wallTime: wallTime))
      if let s = restartStep { bytes += Self.record(Self.startEvent(step: s, wallTime: wallTime)) }
    }
    bytes += Self.record(Self.scalarsEvent(step: step, wallTime: wallTime, scalars: scalars))
    let before = lseek(fd, 0, SEEK_END)
    if !RunDirectory.writeAll(fd, bytes) {
      let why = RunDirectory.errnoText()
      if before >= 0 { _ = ftruncate(fd, before) }
      throw RunDirectoryError("cannot append to \(path ?? folder): \(why)")
    }
    versionWritten = true
  }

  private func open(wallTime: Double) throws {
    do {
      if createsFolder { try Folders.create(folder) }
    } catch let error as FolderError {
      throw RunDirectoryError("cannot create \(folder) (\(error.reason))")
    }
    var host = [CChar](repeating: 0, count: 256)
    let name = gethostname(&host, host.count - 1) == 0
      ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
    let file = (folder as NSString).appendingPathComponent(
      "events.out.tfevents.\(Int(wallTime)).\(name).\(getpid())")
    let opened = Glibc.open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard opened >= 0 else { throw RunDirectoryError("cannot open \(file): \(RunDirectory.errnoText())") }
    (fd, path) = (opened, file)
  }

  /// One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C.
  public static func record(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(data.count + 16)
    let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
    out += length
    withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { out += $0 }
    out += data
    withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { out += $0 }
    return out
  }

  /// The event that opens every file: `file_version` "brain.Event:2".
  public static func versionEvent(wallTime: Double) -> [UInt8] {
    var w = ProtoWriter()
    w.double(1, wallTime)
    w.string(3, "brain.Event:2")
    return w.bytes
  }

  /// A `SessionLog` with status START at `step`: the run starts again from there.
  public static func startEvent(step: Int, wallTime: Double) -> [UInt8] {
    var w = ProtoWriter()
    w.double(1, wallTime)
    w.int(2, Int64(step))
    w.message(7) { log in log.int(1, 1) }  // SessionLog.status = START
    return w.bytes
  }

  /// An event of scalar summaries (`simple_value`, TensorBoard's scalars).
  public static func scalarsEvent(step: Int, wallTime: Double, scalars: [(tag: String, value: Double)]) -> [UInt8] {
    var w = ProtoWriter()
    w.double(1, wallTime)
    w.int(2, Int64(step))
    w.message(5) { summary in
      for (tag, value) in scalars where value.isFinite {
        summary.message(1) { v in
          v.string(1, tag)
          v.float(2, Float(value))
        }
      }
    }
    return w.bytes
  }
}
