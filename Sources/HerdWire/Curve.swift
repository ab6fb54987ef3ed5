import CZeroMQ
import Foundation
import HerdMath
import HerdRL

#if canImport(Glibc)
  import Glibc
#endif

/// A CURVE key in ZeroMQ's Z85 text form (40 characters for 32 bytes).
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
  /// The Z85 text.
  public let z85: String

  /// Checks that `z85` is 40 characters that decode to 32 bytes.
  public init(z85 text: String) throws {
    guard text.utf8.count == 40 else {
      throw CurveError("a CURVE key is 40 Z85 characters, got \(text.utf8.count)")
    }
    var raw = [UInt8](repeating: 0, count: 32)
    guard zmq_z85_decode(&raw, text) != nil else { throw CurveError("\"\(text)\" is not Z85 text") }
    z85 = text
  }

  /// The 32 raw bytes (what a ZAP request carries).
  public var bytes: [UInt8] {
    var raw = [UInt8](repeating: 0, count: 32)
    _ = zmq_z85_decode(&raw, z85)
    return raw
  }

  /// The Z85 text of 32 raw bytes.
  public init(bytes: [UInt8]) throws {
    guard bytes.count == 32 else { throw CurveError("a CURVE key is 32 bytes, got \(bytes.count)") }
    var text = [CChar](repeating: 0, count: 41)
    guard zmq_z85_encode(&text, bytes, 32) != nil else { throw CurveError("Z85 encoding failed") }
    z85 = cText(text)
  }

  /// The first 8 characters (for logs: enough to tell keys apart, not to use one).
  public var short: String { String(z85.prefix(8)) }
  public var description: String { z85 }
}

/// A CURVE key pair; the public key follows from the secret one.
public struct CurveKeyPair: Sendable {
  public let publicKey: CurveKey
  public let secretKey: CurveKey

  /// A new random pair (libzmq's `zmq_curve_keypair`).
  public static func generate() throws -> CurveKeyPair {
    try Curve.requireSupport()
    var pub = [CChar](repeating: 0, count: 41)
    var sec = [CChar](repeating: 0, count: 41)
    guard zmq_curve_keypair(&pub, &sec) == 0 else { throw CurveError("zmq_curve_keypair failed") }
    return CurveKeyPair(
      publicKey: try CurveKey(z85: cText(pub)), secretKey: try CurveKey(z85: cText(sec)))
  }

  /// The pair of a secret key.
  public init(secretKey: CurveKey) throws {
    try Curve.requireSupport()
    var pub = [CChar](repeating: 0, count: 41)
    guard zmq_curve_public(&pub, secretKey.z85) == 0 else { throw CurveError("zmq_curve_public failed") }
    self.init(publicKey: try CurveKey(z85: cText(pub)), secretKey: secretKey)
  }

  init(publicKey: CurveKey, secretKey: CurveKey) {
    self.publicKey = publicKey
    self.secretKey = secretKey
  }
}

/// A CURVE key file problem, naming the file and what is wrong.
public struct CurveError: Error, CustomStringConvertible {
  public let description: String
  public init(_ d: String) { description = d }
}

/// Key files: a comment line, then the Z85 key. `NAME.key` holds the secret key
/// (written 0600; refused when any user can read it), `NAME.pub` the public key.
public enum Curve {
  /// Whether this libzmq was built with CURVE (Debian's is, with libsodium).
  public static var isSupported: Bool { zmq_has("curve") == 1 }

  static func requireSupport() throws {
    guard isSupported else { throw CurveError("this libzmq has no CURVE support (zmq_has(\"curve\") is 0)") }
  }

  /// Writes `DIR/NAME.key` (secret, 0600) and `DIR/NAME.pub` (public, 0644); refuses
  /// to overwrite either. Returns the two paths.
  @discardableResult
  public static func write(_ pair: CurveKeyPair, directory: String, name: String) throws -> (secret: String, public: String) {
    guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
      throw CurveError("key name \"\(name)\" must be a plain file name (no /, not starting with .)")
    }
    do {
      try Folders.create(directory)
    } catch let error as FolderError {
      throw CurveError(error.description)
    }
    let secretPath = (directory as NSString).appendingPathComponent(name + ".key")
    let publicPath = (directory as NSString).appendingPathComponent(name + ".pub")
    for p in [secretPath, publicPath] where FileManager.default.fileExists(atPath: p) {
      throw CurveError("\(p) exists; refusing to overwrite a key (remove it first)")
    }
    try create(
      secretPath, mode: 0o600,
      "# herd CURVE secret key of \"\(name)\": keep it on this host, never share it\n\(pair.secretKey.z85)\n")
    try create(
      publicPath, mode: 0o644,
      "# herd CURVE public key of \"\(name)\": give it to the learner (--authorized-keys) or to workers\n\(pair.publicKey.z85)\n")
    return (secretPath, publicPath)
  }

  private static func create(_ path: String, mode: mode_t, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
    guard fd >= 0 else { throw CurveError("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    fchmod(fd, mode)  // the umask must not widen or narrow it
    let bytes = Array(text.utf8)
    guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
      throw CurveError("cannot write \(path): \(String(cString: strerror(errno)))")
    }
  }

  /// Reads a key file (comment lines start with #).
  public static func readKey(_ path: String) throws -> CurveKey {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw CurveError("cannot read the key file \(path)")
    }
    let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
    guard let line = lines.first(where: { !$0.isEmpty && !$0.hasPrefix("#") }) else {
      throw CurveError("\(path) holds no key")
    }
    do {
      return try CurveKey(z85: line)
    } catch {
      throw CurveError("\(path): \(error)")
    }
  }

  /// Reads a secret key file and its pair; refuses a file any user can read or
  /// anyone but its owner can write (group read is allowed: Kubernetes mounts
  /// secrets for a pod's fsGroup that way).
  public static func readSecret(_ path: String) throws -> CurveKeyPair {
    var st = stat()
    guard stat(path, &st) == 0 else { throw CurveError("cannot read the secret key file \(path)") }
    guard st.st_mode & 0o026 == 0 else {
      throw CurveError(
        "\(path) is open to others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it: it is a secret key")
    }
    return try CurveKeyPair(secretKey: try readKey(path))
  }

  /// Reads every `*.pub` in `directory`: name (file name without .pub) -> key.
  public static func readAuthorized(_ directory: String) throws -> [String: CurveKey] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
      throw CurveError("cannot read the authorized keys directory \(directory)")
    }
    var keys: [String: CurveKey] = [:]
    for n in names.sorted() where n.hasSuffix(".pub") {
      keys[String(n.dropLast(4))] = try readKey((directory as NSString).appendingPathComponent(n))
    }
    guard !keys.isEmpty else {
      throw CurveError("\(directory) holds no *.pub worker keys: no worker could connect (herd keys generate)")
    }
    return keys
  }
}

extension ZMQSocket {
  private func setString(_ option: Int32, _ value: String) throws {
    let bytes = Array(value.utf8)
    let rc = bytes.withUnsafeBytes { zmq_setsockopt(try? self.socket(), option, $0.baseAddress, bytes.count) }
    guard rc == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
  }

  /// Makes this socket a CURVE server with `secret`; ZAP (the authenticator
  /// bound in this socket's context) decides who may connect, in `domain`.
  public func makeCurveServer(secret: CurveKey, domain: String = "herd") throws {
    try setOption(ZMQ_CURVE_SERVER, 1)
    try setString(ZMQ_CURVE_SECRETKEY, secret.z85)
    try setString(ZMQ_ZAP_DOMAIN, domain)
  }

  /// Makes this socket a CURVE client of the server with public key `server`.
  public func makeCurveClient(server: CurveKey, pair: CurveKeyPair) throws {
    try setString(ZMQ_CURVE_SERVERKEY, server.z85)
    try setString(ZMQ_CURVE_PUBLICKEY, pair.publicKey.z85)
    try setString(ZMQ_CURVE_SECRETKEY, pair.secretKey.z85)
  }
}

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
  String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
