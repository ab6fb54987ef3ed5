import Foundation
import HerdNN
import Testing

@testable import HerdLearner

/// The records of a TFRecord file, each checked against both of its masked
/// CRC-32Cs; bytes after the last whole record are an error (half a record).
func tfRecords(_ path: String) throws -> [[UInt8]] {
  struct Broken: Error, CustomStringConvertible { let description: String }
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
  var records: [[UInt8]] = []
  var at = 0
  while at < bytes.count {
    guard at + 12 <= bytes.count else { throw Broken(description: "\(path): half a header at \(at)") }
    let lengthBytes = Array(bytes[at..<at + 8])
    let length = Int(lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    guard u32(at + 8) == CRC32C.masked(lengthBytes) else { throw Broken(description: "\(path): length CRC at \(at)") }
    guard at + 12 + length + 4 <= bytes.count else { throw Broken(description: "\(path): half a record at \(at)") }
    let data = Array(bytes[at + 12..<at + 12 + length])
    guard u32(at + 12 + length) == CRC32C.masked(data) else { throw Broken(description: "\(path): data CRC at \(at)") }
    records.append(data)
    at += 12 + length + 4
  }
  return records
}

@Suite struct TensorBoardTests {
  /// The bytes TensorBoard's own writer (tensorboard 2.21's RecordWriter over
  /// event_pb2.Event) makes of the same two events: a version event at wall time
  /// 1.5, then scalars a/b = 0.5 and c = -3 at step 300 and wall time 2.25.
  static let tensorBoardsBytes =
    "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c2400000000000000422b804d"
    + "09000000000000024010ac022a160a0a0a03612f62150000003f0a080a016315000040c00c671302"

  static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

  @Test func recordsAreTensorBoardsOwnBytes() {
    let ours =
      TensorBoardEvents.record(TensorBoardEvents.versionEvent(wallTime: 1.5))
      + TensorBoardEvents.record(
        TensorBoardEvents.scalarsEvent(step: 300, wallTime: 2.25, scalars: [("a/b", 0.5), ("c", -3)]))
    #expect(Self.hex(ours) == Self.tensorBoardsBytes)
    // A value that is not finite is left out, not written as NaN.
    #expect(
      TensorBoardEvents.scalarsEvent(step: 300, wallTime: 2.25, scalars: [("a/b", 0.5), ("n", .nan), ("c", -3)])
        == TensorBoardEvents.scalarsEvent(step: 300, wallTime: 2.25, scalars: [("a/b", 0.5), ("c", -3)]))
  }

  /// The folder and file appear at the first append; the version event comes
  /// once, first; every append is one whole record after it.
  @Test func appendsMakeTheFileThenWholeRecords() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("herd-tb-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    let events = TensorBoardEvents(folder: root + "/run/tensorboard")
    #expect(!FileManager.default.fileExists(atPath: root + "/run/tensorboard") && events.path == nil)
    try events.append(step: 10, wallTime: 100, scalars: [("x", 1)])
    try events.append(step: 20, wallTime: 101, scalars: [("x", 2), ("y", 3)])
    let path = try #require(events.path)
    #expect((path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.100."))
    let records = try tfRecords(path)
    #expect(records.count == 3)
    #expect(records[0] == TensorBoardEvents.versionEvent(wallTime: 100))
    #expect(records[1] == TensorBoardEvents.scalarsEvent(step: 10, wallTime: 100, scalars: [("x", 1)]))
    #expect(records[2] == TensorBoardEvents.scalarsEvent(step: 20, wallTime: 101, scalars: [("x", 2), ("y", 3)]))
  }

  /// A folder that cannot be made is an error naming it, and a later append
  /// (once it can) writes the version event first all the same.
  @Test func aFailedStartIsRetried() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("herd-tb-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    try Data("a file where the folder should go".utf8).write(to: URL(fileURLWithPath: root))
    let events = TensorBoardEvents(folder: root + "/tensorboard")
    #expect(throws: RunDirectoryError.self) { try events.append(step: 1, wallTime: 5, scalars: [("x", 1)]) }
    try FileManager.default.removeItem(atPath: root)
    try events.append(step: 2, wallTime: 6, scalars: [("x", 2)])
    let records = try tfRecords(try #require(events.path))
    #expect(records.count == 2 && records[0] == TensorBoardEvents.versionEvent(wallTime: 6))
  }

  /// A progress record's numbers become scalars by name, nulls left out.
  @Test func progressRecordsBecomeScalars() {
    let scalars = Trainer.scalars(["b/x": 2, "a/y": 1.5, "c/z": NSNull()])
    #expect(scalars.map(\.tag) == ["a/y", "b/x"] && scalars.map(\.value) == [1.5, 2])
  }
}
