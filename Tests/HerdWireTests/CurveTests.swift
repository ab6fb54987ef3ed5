import Foundation
import Testing

@testable import HerdWire

func tempPath(_ name: String) -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("herd-curve-\(name)-\(UUID().uuidString)").path
}

/// CURVE keys, key files, the ZAP handler and real CURVE sockets.
@Suite(.serialized) struct CurveTests {
  @Test func keysRoundTripThroughZ85AndFiles() throws {
    #expect(Curve.isSupported)
    let pair = try CurveKeyPair.generate()
    #expect(pair.publicKey.z85.count == 40)
    #expect(try CurveKey(bytes: pair.publicKey.bytes) == pair.publicKey)
    #expect(try CurveKeyPair(secretKey: pair.secretKey).publicKey == pair.publicKey, "public follows from secret")
    let dir = tempPath("files")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let paths = try Curve.write(pair, directory: dir, name: "w1")
    let secretMode = try FileManager.default.attributesOfItem(atPath: paths.secret)[.posixPermissions] as? Int
    #expect(secretMode == 0o600)
    #expect(try Curve.readSecret(paths.secret).publicKey == pair.publicKey)
    #expect(try Curve.readKey(paths.public) == pair.publicKey)
    #expect(try Curve.readAuthorized(dir) == ["w1": pair.publicKey])
    // Never overwrite; refuse a secret others can read.
    #expect(throws: CurveError.self) { try Curve.write(pair, directory: dir, name: "w1") }
    chmod(paths.secret, 0o644)
    #expect { try Curve.readSecret(paths.secret) } throws: { "\($0)".contains("chmod 600") }
    chmod(paths.secret, 0o620)
    #expect(throws: CurveError.self) { try Curve.readSecret(paths.secret) }
    chmod(paths.secret, 0o440)  // a Kubernetes secret for the pod's fsGroup
    #expect(try Curve.readSecret(paths.secret).publicKey == pair.publicKey)
  }

  @Test func badKeysAreNamed() throws {
    #expect { try CurveKey(z85: "short") } throws: { "\($0)".contains("40 Z85 characters") }
    #expect(throws: CurveError.self) { try CurveKey(z85: String(repeating: "\"", count: 40)) }
    let dir = tempPath("bad")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect { try Curve.readAuthorized(dir) } throws: { "\($0)".contains("no *.pub") }
    try "# only a comment\n".write(toFile: dir + "/x.pub", atomically: true, encoding: .utf8)
    #expect { try Curve.readAuthorized(dir) } throws: { "\($0)".contains("holds no key") }
    #expect { try Curve.readKey(dir + "/missing.pub") } throws: { "\($0)".contains("cannot read") }
    #expect(throws: CurveError.self) { try Curve.write(CurveKeyPair.generate(), directory: dir, name: "../up") }
  }

  /// The ZAP handler's answers: admitted, refused (counted, named once), malformed.
  @Test func zapAnswers() throws {
    let good = try CurveKeyPair.generate()
    let bad = try CurveKeyPair.generate()
    let lines = LockedLines()
    let zap = ZAPAuthenticator(authorized: ["w1": good.publicKey], log: { lines.add($0) })
    func request(_ key: [UInt8], mechanism: String = "CURVE") -> [[UInt8]] {
      [Array("1.0".utf8), [7], Array("herd".utf8), Array("10.0.0.2".utf8), [], Array(mechanism.utf8), key]
    }
    let ok = zap.answer(request(good.publicKey.bytes))
    #expect(ok[1] == [7] && String(decoding: ok[2], as: UTF8.self) == "200" && String(decoding: ok[4], as: UTF8.self) == "w1")
    for _ in 0..<3 { #expect(String(decoding: zap.answer(request(bad.publicKey.bytes))[2], as: UTF8.self) == "400") }
    #expect(String(decoding: zap.answer(request([], mechanism: "NULL"))[2], as: UTF8.self) == "400")
    #expect(String(decoding: zap.answer([Array("2.0".utf8)])[2], as: UTF8.self) == "400")
    #expect(zap.counts.admitted == 1 && zap.counts.refused == 4)
    #expect(lines.all.filter { $0.contains(bad.publicKey.z85) }.count == 1, "a refused key is logged once")
  }

  /// Real sockets: an authorised client talks; an unknown key and a plain client
  /// get nothing through.
  @Test func curveSocketsAdmitOnlyAuthorisedKeys() throws {
    let server = try CurveKeyPair.generate()
    let good = try CurveKeyPair.generate()
    let intruder = try CurveKeyPair.generate()
    let ctx = try ZMQContext()
    let zap = ZAPAuthenticator(authorized: ["good": good.publicKey], log: { _ in })
    try zap.start(ctx)
    defer { zap.shutdown() }
    let pull = try ZMQSocket(ctx, .pull)
    try pull.makeCurveServer(secret: server.secretKey)
    let endpoint = try pull.bind("tcp://127.0.0.1:*")

    let clientCtx = try ZMQContext()
    func client(_ pair: CurveKeyPair?) throws -> ZMQSocket {
      let push = try ZMQSocket(clientCtx, .push)
      if let pair { try push.makeCurveClient(server: server.publicKey, pair: pair) }
      try push.connect(endpoint)
      return push
    }
    let bad = try client(intruder)
    let plain = try client(nil)
    _ = try bad.send([Array("from the intruder".utf8)], dontWait: true)
    _ = try plain.send([Array("in plain text".utf8)], dontWait: true)
    let ok = try client(good)
    try ok.send([Array("hello".utf8)])
    var got: [String] = []
    while let frames = try pull.receive(timeoutMs: 1500) { got.append(String(decoding: frames[0], as: UTF8.self)) }
    #expect(got == ["hello"])
    #expect(zap.counts.refused >= 1)
  }
}

final class LockedLines: @unchecked Sendable {
  private let lock = NSLock()
  private var lines: [String] = []
  func add(_ s: String) { lock.withLock { lines.append(s) } }
  var all: [String] { lock.withLock { lines } }
}
