import Foundation
import HerdEnvs
import Testing

@testable import HerdRL

/// `docs/configuration.md`, the users' reference of every config key, is made from
/// `TrainingConfig`'s own doc comments and defaults and from the built-in
/// environments' presets, so it cannot drift from the code: this test renders it
/// and compares. `make config-reference` writes it
/// (`HERD_WRITE_CONFIG_REFERENCE=1`).
@Suite struct ConfigReferenceTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let source = root.appendingPathComponent("Sources/HerdRL/TrainingConfig.swift")
  static let reference = root.appendingPathComponent("docs/configuration.md")

  /// Keys documented together (a doc comment, then the var it describes and any
  /// undocumented vars right after it), under the `// MARK:` section they sit in.
  struct Entry: Equatable {
    var section: String
    var keys: [String]
    var text: String
  }

  /// The entries of `source` for the names in `keys`; other vars (nested types'
  /// fields, computed properties) are skipped.
  static func entries(_ source: String, keys: Set<String>) -> [Entry] {
    var section = ""
    var comment: [String] = []
    var entries: [Entry] = []
    var afterKey = false
    for raw in source.split(separator: "\n", omittingEmptySubsequences: false) {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("// MARK: ") {
        section = String(line.dropFirst("// MARK: ".count))
        (comment, afterKey) = ([], false)
      } else if line.hasPrefix("///") {
        comment.append(line.dropFirst(3).trimmingCharacters(in: .whitespaces))
        afterKey = false
      } else if let match = line.firstMatch(of: /^public var (\w+)\b/), keys.contains(String(match.1)) {
        let key = String(match.1)
        if comment.isEmpty, afterKey, !entries.isEmpty {
          entries[entries.count - 1].keys.append(key)
        } else {
          entries.append(Entry(section: section, keys: [key], text: prose(comment)))
        }
        (comment, afterKey) = ([], true)
      } else {
        (comment, afterKey) = ([], false)
      }
    }
    return entries
  }

  /// A doc comment as one table cell: lines joined, DocC's symbol links as code.
  static func prose(_ lines: [String]) -> String {
    lines.filter { !$0.isEmpty }.joined(separator: " ")
      .replacingOccurrences(of: "``", with: "`")
      .replacingOccurrences(of: "|", with: "\\|")
  }

  /// Each key's value in `config`, as compact JSON.
  static func values(_ config: TrainingConfig) throws -> [String: String] {
    let object = try JSONDecoder().decode([String: JSONValue].self, from: Data(try config.prettyJSON().utf8))
    return object.mapValues(\.description)
  }

  static func render() throws -> String {
    let keys = TrainingConfig.keys
    let entries = Self.entries(try String(contentsOf: source, encoding: .utf8), keys: Set(keys))
    let defaults = try values(TrainingConfig())
    var out = """
      # Configuration reference

      <!-- Made from TrainingConfig's doc comments and defaults (Sources/HerdRL/TrainingConfig.swift)
           and the built-in environments' presets by `make config-reference`;
           `make test` fails when this file is out of date. Edit those, not this. -->

      A run's config is built in layers, each overriding the one before: the defaults
      below, then the environment's preset (see "Presets" at the end), then a JSON
      file (`--config FILE`, an object of any of these keys), then each `--set
      KEY=VALUE` (the value in JSON: `--set fcnet_hiddens=[128,128]`, `--set
      env_config.length=30`), then `--seed` (`herd train` and `herd learner` take the same
      four). `herd train --print-config` prints the result without running;
      `configs/<env>.json` holds each built-in environment's preset in full. The names are RLlib's where RLlib
      has one, all at the top level (RLlib nests the model's under `model`). An
      unknown key or a bad value stops before anything runs, with an error that
      names it, suggests the likely key when it looks misspelt, and says what is
      valid.

      """
    var section = ""
    for entry in entries {
      if entry.section != section {
        section = entry.section
        out += "\n## \(section)\n\n| key | default | what it does |\n|---|---|---|\n"
      }
      let names = entry.keys.map { "`\($0)`" }.joined(separator: ", ")
      let values = entry.keys.map { "`\(defaults[$0] ?? "?")`" }.joined(separator: ", ")
      out += "| \(names) | \(values) | \(entry.text) |\n"
    }
    out += """

      ## Presets

      The keys each built-in environment's preset sets differently from the defaults
      above, as `--set` would write them (`--env NAME` picks the preset; a `gym:ID`
      environment starts from the defaults):

      | environment | its preset |
      |---|---|

      """
    for env in BuiltInEnvironments.all.map(\.id) {
      let preset = try values(TrainingConfig.defaults(for: env))
      let changed = keys.filter { $0 != "env" && preset[$0] != defaults[$0] }
        .map { "`\($0)=\(preset[$0] ?? "?")`" }
      out += "| `\(env)` | \(changed.joined(separator: ", ")) |\n"
    }
    out += """

      ## Names from other frameworks

      Keys of other frameworks that Herd names differently; an unknown-key error
      names Herd's for each (a run's length is a command-line option, not a key):

      | their key | whose | Herd's |
      |---|---|---|

      """
    for other in TrainingConfig.otherNames {
      out += "| `\(other.name)` | \(other.from.joined(separator: ", ")) | \(other.here) |\n"
    }
    return out
  }

  @Test func everyKeyIsDocumentedOnce() throws {
    let keys = TrainingConfig.keys
    let entries = Self.entries(try String(contentsOf: Self.source, encoding: .utf8), keys: Set(keys))
    let documented = entries.flatMap(\.keys)
    #expect(documented.sorted() == keys.sorted(), "keys without a doc comment in TrainingConfig.swift")
    #expect(Set(documented).count == documented.count)
    for entry in entries {
      #expect(!entry.text.isEmpty && !entry.section.isEmpty, "\(entry.keys)")
    }
  }

  /// The parser: sections, grouped keys, skipped vars and the cell's text.
  @Test func entriesFollowTheSourcesLayout() {
    let source = """
      // MARK: First
      /// The ``alpha``
      /// value | with a pipe.
      public var alpha = 1
      public var beta = 2

      /// Not a key.
      public var other = 3
      public var gamma = 4
      // MARK: Second
      /// Delta.
      ///
      /// More.
      public var delta: Float = 0
      """
    let entries = Self.entries(source, keys: ["alpha", "beta", "gamma", "delta"])
    #expect(
      entries == [
        Entry(section: "First", keys: ["alpha", "beta"], text: "The `alpha` value \\| with a pipe."),
        Entry(section: "First", keys: ["gamma"], text: ""),
        Entry(section: "Second", keys: ["delta"], text: "Delta. More."),
      ])
  }

  @Test func theReferenceIsCurrent() throws {
    let rendered = try Self.render()
    if ProcessInfo.processInfo.environment["HERD_WRITE_CONFIG_REFERENCE"] == "1" {
      try rendered.write(to: Self.reference, atomically: true, encoding: .utf8)
    }
    let committed = (try? String(contentsOf: Self.reference, encoding: .utf8)) ?? ""
    guard committed != rendered else { return }
    let old = committed.split(separator: "\n", omittingEmptySubsequences: false)
    let new = rendered.split(separator: "\n", omittingEmptySubsequences: false)
    let line = (0..<min(old.count, new.count)).first { old[$0] != new[$0] } ?? min(old.count, new.count)
    Issue.record(
      """
      docs/configuration.md is out of date (run `make config-reference` and commit it); line \(line + 1):
        committed: \(line < old.count ? String(old[line]) : "(end of file)")
        from code: \(line < new.count ? String(new[line]) : "(end of file)")
      """)
  }
}
