import Foundation
import HerdMath
import HerdNN
import HerdTestSupport
import Testing

@Suite struct TensorArchiveTests {
  func model(hidden: Int = 6) -> (Parameters, LSTM) {
    var layout = ParameterLayout()
    _ = MLP("encoder", inFeatures: 4, hiddenSizes: [5], activation: .tanh, layout: &layout)
    let lstm = LSTM("lstm", inputSize: 5, hiddenSize: hidden, layout: &layout)
    var rng = SeededGenerator(seed: 4)
    return (Parameters(layout: layout, rng: &rng), lstm)
  }

  func tempPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("herd-\(UUID().uuidString)-\(name)").path
  }

  @Test func parametersAndOptimizerStateRoundTripThroughAFile() throws {
    let (p, _) = model()
    let opt = Adam(count: p.count)
    for i in 0..<p.count { p.grads[i] = Float(i % 7) - 3 }
    opt.step(p, lr: 0.01)
    let path = tempPath("ok.herd")
    defer { try? FileManager.default.removeItem(atPath: path) }
    try p.archive(optimizer: opt, metadata: ["note": "round trip"]).write(to: path)

    let (q, _) = model()
    let opt2 = Adam(count: q.count)
    let archive = try TensorArchive.read(from: path)
    #expect(archive.metadata["note"] == "round trip")
    try q.restore(from: archive, optimizer: opt2, source: path)
    #expect(q.flatValues == p.flatValues)
    #expect(opt2.stepCount == 1)
    #expect(opt2.stateBuffers().map(\.values) == opt.stateBuffers().map(\.values))
    #expect(archive.entry("param/lstm.weight_ih")?.shape == [24, 5])
  }

  /// An archive of given values (an earlier version's `flatValues`) holds those,
  /// each under its own name, and leaves the model's parameters alone.
  @Test func anArchiveOfEarlierValuesHoldsThem() throws {
    let (p, _) = model()
    let earlier = p.flatValues.enumerated().map { Float($0.offset) * 0.5 - 7 }
    let now = p.flatValues
    let (q, _) = model(hidden: 6)
    try q.restore(from: p.archive(values: earlier), source: "earlier.herd")
    #expect(q.flatValues == earlier)
    #expect(p.flatValues == now)
    #expect(p.archive(values: earlier).entries.allSatisfy { !$0.name.hasPrefix("optim/") })
  }

  @Test func everyCorruptedByteIsDetected() throws {
    let (p, _) = model()
    let bytes = p.archive().encoded()
    var rng = SeededGenerator(seed: 8)
    for _ in 0..<200 {
      var bad = bytes
      let i = Int(rng.next() % UInt64(bad.count))
      bad[i] ^= UInt8(1 + rng.next() % 255)
      #expect(throws: NNError.self) { try TensorArchive(decoding: bad, source: "corrupt") }
    }
    for cut in [0, 5, 12, bytes.count / 2, bytes.count - 1] {
      #expect(throws: NNError.self) { try TensorArchive(decoding: Array(bytes.prefix(cut)), source: "truncated") }
    }
  }

  @Test func corruptFileNamesTheProblem() throws {
    let (p, _) = model()
    var bytes = p.archive().encoded()
    bytes[bytes.count / 2] ^= 0xFF
    do {
      _ = try TensorArchive(decoding: bytes, source: "run/ckpt.herd")
      Issue.record("corruption not detected")
    } catch let error as NNError {
      #expect("\(error)".contains("run/ckpt.herd") && "\(error)".contains("checksum"))
    }
  }

  @Test func mismatchedModelIsRejectedWithoutTouchingParameters() throws {
    let (p, _) = model(hidden: 6)
    let (q, _) = model(hidden: 7)
    let before = q.flatValues
    do {
      try q.restore(from: p.archive(), source: "other.herd")
      Issue.record("shape mismatch not detected")
    } catch let error as NNError {
      #expect("\(error)".contains("lstm.weight_ih") && "\(error)".contains("[24, 5]"))
    }
    #expect(q.flatValues == before)
    // Missing and extra parameters, wrong optimiser kind.
    var missing = p.archive()
    missing.entries.removeFirst()
    #expect(throws: NNError.self) { try p.restore(from: missing, source: "m") }
    var extra = p.archive()
    extra.entries.append(.init(name: "param/head.weight", shape: [1], values: [0]))
    #expect(throws: NNError.self) { try p.restore(from: extra, source: "e") }
    let rms = p.archive(optimizer: RMSProp(count: p.count))
    #expect(throws: NNError.self) { try p.restore(from: rms, optimizer: Adam(count: p.count), source: "o") }
  }

  @Test func wrongVersionAndMagicAreNamed() throws {
    let (p, _) = model()
    var bytes = p.archive().encoded()
    #expect(throws: NNError.self) {
      try TensorArchive(decoding: Array("NOTHERD!".utf8) + bytes.dropFirst(8), source: "x")
    }
    bytes[8] = 2
    // Re-seal the checksum so only the version is wrong.
    let body = bytes.prefix(bytes.count - 4)
    let crc = CRC32.checksum(body)
    for i in 0..<4 { bytes[bytes.count - 4 + i] = UInt8((crc >> (8 * UInt32(i))) & 0xFF) }
    do {
      _ = try TensorArchive(decoding: bytes, source: "v2.herd")
      Issue.record("version not checked")
    } catch let error as NNError {
      #expect("\(error)".contains("version 2"))
    }
  }

  @Test func crc32MatchesTheStandardCheckValue() {
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
  }

  /// CRC-32C's check value and RFC 3720's test vectors (B.4), and its masked form
  /// against TFRecord's definition.
  @Test func crc32cMatchesTheStandardVectors() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
    let c = CRC32C.checksum(Array("123456789".utf8))
    #expect(CRC32C.masked(Array("123456789".utf8)) == ((c >> 15) | (c << 17)) &+ 0xA282_EAD8)
  }

  /// The hand-written protobuf fields, byte for byte.
  @Test func protoWriterWritesTheWireFormat() {
    var w = ProtoWriter()
    w.double(1, 1.5)
    w.int(2, 300)
    w.float(2, -3)
    w.string(1, "ab")
    w.message(5) { $0.int(1, 1) }
    #expect(
      w.bytes == [
        0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0xAC, 0x02, 0x15, 0, 0, 0x40, 0xC0, 0x0A, 2, 0x61, 0x62, 0x2A, 2, 0x08,
        1,
      ])
  }
}
