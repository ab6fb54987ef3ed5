import ArgumentParser
import Foundation
import Logging
import HerdLearner
import HerdWire

/// `herd keys`: CURVE key pairs for authenticated, encrypted transport.
struct KeysCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keys",
    abstract: "Manage CURVE keys (ZeroMQ's authenticated, encrypted transport).",
    subcommands: [Generate.self]
  )

  struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.",
      discussion: """
        One pair for the learner, one per worker host. The learner takes its secret key
        and a directory holding the public keys (*.pub) of the workers it admits; a
        worker takes the learner's public key and its own secret key:

          herd keys generate --name learner --out keys
          herd keys generate --name worker-a --out keys/workers
          herd learner --host 0.0.0.0 --curve-secret-key keys/learner.key \\
                       --authorized-keys keys/workers
          herd worker --learner tcp://10.0.0.5:5555 \\
                      --learner-public-key keys/learner.pub \\
                      --curve-secret-key keys/workers/worker-a.key

        Keys are Z85 text (40 characters) after a comment line. Existing files are
        never overwritten.
        """
    )

    @Option(help: "The key's name: the files are NAME.key and NAME.pub.")
    var name: String
    @Option(help: "Folder to write into (created if missing).")
    var out = "keys"

    func run() throws {
      let pair = try CurveKeyPair.generate()
      let paths = try Curve.write(pair, directory: out, name: name)
      print("secret key: \(paths.secret) (mode 0600; keep it on this host)")
      print("public key: \(paths.public) \(pair.publicKey.z85)")
    }
  }
}

/// The learner's CURVE options.
struct LearnerCurveOptions: ParsableArguments {
  @Option(help: "The learner's CURVE secret key file (herd keys generate): encrypt and authenticate every channel.")
  var curveSecretKey: String?
  @Option(help: "Folder of worker public keys (*.pub) the learner admits; others are refused and counted.")
  var authorizedKeys: String?

  func validate() throws {
    if (curveSecretKey == nil) != (authorizedKeys == nil) {
      throw ValidationError("--curve-secret-key and --authorized-keys go together (CURVE needs both)")
    }
  }

  /// The security settings (nil without CURVE).
  func security(logger: Logger) throws -> LearnerSecurity? {
    guard let secret = curveSecretKey, let dir = authorizedKeys else { return nil }
    do {
      let pair = try Curve.readSecret(secret)
      let keys = try Curve.readAuthorized(dir)
      logger.info("curve: on; learner public key \(pair.publicKey.z85); \(keys.count) authorized worker key(s) in \(dir)")
      return LearnerSecurity(pair: pair, authorized: keys)
    } catch {
      throw ValidationError("\(error)")
    }
  }
}

/// The worker's CURVE options.
struct WorkerCurveOptions: ParsableArguments {
  @Option(help: "The learner's CURVE public key file (the learner prints the key at start).")
  var learnerPublicKey: String?
  @Option(help: "This worker's CURVE secret key file (its public key must be in the learner's --authorized-keys).")
  var curveSecretKey: String?

  func validate() throws {
    if (learnerPublicKey == nil) != (curveSecretKey == nil) {
      throw ValidationError("--learner-public-key and --curve-secret-key go together (CURVE needs both)")
    }
  }

  func keys() throws -> (server: CurveKey, pair: CurveKeyPair)? {
    guard let server = learnerPublicKey, let secret = curveSecretKey else { return nil }
    do {
      return (try Curve.readKey(server), try Curve.readSecret(secret))
    } catch {
      throw ValidationError("\(error)")
    }
  }
}
