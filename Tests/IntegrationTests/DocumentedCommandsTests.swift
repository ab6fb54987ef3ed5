import Foundation
import Testing

@testable import herd

/// A `herd` command shown in an example block of README.md or docs/*.md.
struct DocumentedCommand: CustomStringConvertible {
  var file: String
  var line: Int
  /// The fenced block's number in its file: a block is one session, in order.
  var block: Int
  var arguments: [String]
  /// What follows `#` on the command's line.
  var comment: String?
  /// The block's next line when it starts with `Error:` (the documented failure).
  var documentedError: String?

  var description: String { "\(file):\(line): herd \(arguments.joined(separator: " "))" }

  /// Every `herd ...` (or `.build/release/herd ...`) line of the fenced blocks of
  /// the user documentation, joined over trailing backslashes and cut at the
  /// first pipe, redirection or comment. Output lines (`herd train: OpenBLAS...`,
  /// `herd bench inference: F=4 ...`) are not commands: a word before the first
  /// option ends with a colon.
  static func all() throws -> [DocumentedCommand] {
    let docs = ["README.md"] + repositoryFiles("docs", [".md"]).map { String($0.dropFirst(repositoryRoot.count + 1)) }
    let subcommands = Herd.configuration.subcommands.map { $0._commandName }
    var found: [DocumentedCommand] = []
    for file in docs {
      let lines = try String(contentsOfFile: repositoryRoot + "/" + file, encoding: .utf8)
        .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      var inBlock = false
      var block = 0
      var i = 0
      while i < lines.count {
        let trimmed = lines[i].trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("```") {
          inBlock.toggle()
          if inBlock { block += 1 }
          i += 1
          continue
        }
        var text = trimmed.hasPrefix("$ ") ? String(trimmed.dropFirst(2)) : trimmed
        let leading = text.split(separator: " ").prefix { !$0.hasPrefix("-") }.map(String.init)
        guard inBlock, let first = leading.first, first == "herd" || first.hasSuffix("/herd"),
          leading.count > 1, subcommands.contains(leading[1]), !leading.contains(where: { $0.hasSuffix(":") })
        else {
          i += 1
          continue
        }
        let start = i + 1
        while text.hasSuffix("\\") && i + 1 < lines.count {
          i += 1
          text = String(text.dropLast()) + " " + lines[i].trimmingCharacters(in: .whitespaces)
        }
        let (words, comment) = shellWords(text)
        let next = i + 1 < lines.count ? lines[i + 1].trimmingCharacters(in: .whitespaces) : ""
        found.append(
          DocumentedCommand(
            file: file, line: start, block: block, arguments: Array(words.dropFirst()), comment: comment,
            documentedError: next.hasPrefix("Error:") ? next : nil))
        i += 1
      }
    }
    return found
  }

  /// The words of a shell command line (single and double quotes, backslash
  /// escapes outside single quotes), up to the first unquoted `|`, `>`, `<`, `;`,
  /// `&` or `#` (what follows `#` is returned as the comment).
  static func shellWords(_ line: String) -> (words: [String], comment: String?) {
    var words: [String] = []
    var word = ""
    var inWord = false
    var quote: Character?
    var chars = Array(line)[...]
    while let c = chars.popFirst() {
      if let q = quote {
        if c == q {
          quote = nil
        } else if c == "\\" && q == "\"", let n = chars.popFirst() {
          word.append(n)
        } else {
          word.append(c)
        }
        continue
      }
      switch c {
      case "'", "\"":
        quote = c
        inWord = true
      case "\\":
        if let n = chars.popFirst() { word.append(n) }
        inWord = true
      case " ", "\t":
        if inWord { words.append(word) }
        word = ""
        inWord = false
      case "#" where !inWord:
        return (words, String(chars).trimmingCharacters(in: .whitespaces))
      case "|", ">", "<", ";", "&":
        // `2>&1`: the digit before a redirection is not a word.
        if inWord && !(c == ">" && word.allSatisfy(\.isNumber)) { words.append(word) }
        return (words, nil)
      default:
        word.append(c)
        inWord = true
      }
    }
    if inWord { words.append(word) }
    return (words, nil)
  }
}

/// The examples in README.md and docs/ are commands this `herd` takes: each parses
/// (options, values and their checks), each `herd train` example resolves its
/// config, and each failure the documentation shows is the one Herd gives.
@Suite struct DocumentedCommandsTests {
  let commands: [DocumentedCommand]

  init() throws { commands = try DocumentedCommand.all() }

  @Test func theExamplesAreFound() {
    #expect(commands.count >= 25, "\(commands.map(\.description).joined(separator: "\n"))")
    #expect(commands.contains { $0.arguments.first == "eval" } && commands.contains { $0.arguments.first == "worker" })
    #expect(commands.contains { $0.documentedError != nil })
  }

  @Test func shellWordsSplitLikeAShell() {
    #expect(DocumentedCommand.shellWords(#"herd train --set 'a=[1, 2]' --x "b c" # note"#) == (["herd", "train", "--set", "a=[1, 2]", "--x", "b c"], "note"))
    #expect(DocumentedCommand.shellWords("herd eval --c d 2>&1 >/dev/null | tail -1").words == ["herd", "eval", "--c", "d"])
    #expect(DocumentedCommand.shellWords(#"herd a\ b --k=v#1"#).words == ["herd", "a b", "--k=v#1"])
  }

  @Test func everyExampleParses() {
    for c in commands where c.documentedError == nil {
      do {
        _ = try Herd.parseAsRoot(c.arguments)
      } catch {
        Issue.record("\(c): \(Herd.message(for: error))")
      }
    }
  }

  /// A bad `--seed` says what a seed is, on every command that takes one (not
  /// only that the value is invalid); a good one parses.
  @Test func aBadSeedSaysWhatASeedIs() throws {
    for command in [["train"], ["eval", "--checkpoint", "x"], ["worker", "--learner", "tcp://h:1"], ["bench", "lstm"], ["bench", "cnn"]] {
      for bad in ["-1", "1.5", "seven", "18446744073709551616"] {
        do {
          _ = try Herd.parseAsRoot(command + ["--seed", bad])
          Issue.record("\(command) --seed \(bad) parsed")
        } catch {
          let message = Herd.message(for: error)
          #expect(message.contains("a seed is a whole number from 0 to 18446744073709551615"), "\(command) \(bad): \(message)")
        }
      }
      #expect(throws: Never.self, "\(command)") { _ = try Herd.parseAsRoot(command + ["--seed", "18446744073709551615"]) }
    }
  }

  /// `--print-config` on each `herd train` example that starts a run: the
  /// environment, the config file and every `--set` resolve.
  @Test func trainExamplesResolveTheirConfigs() throws {
    let runs = commands.filter { $0.arguments.first == "train" && $0.documentedError == nil && !$0.arguments.contains("--resume") }
    #expect(runs.count >= 8)
    for c in runs {
      let args = c.arguments.contains("--print-config") ? c.arguments : c.arguments + ["--print-config"]
      let r = try HerdBinary.runCommand(HerdBinary.path, args, currentDirectory: repositoryRoot, timeout: 30)
      #expect(r.status == 0 && r.stdout.hasPrefix("{"), "\(c): \(r.stderr)")
    }
  }

  /// A block that shows a failure is a session, replayed in order in a scratch
  /// directory (with the repository's configs/): each command succeeds or fails
  /// as shown, and a documented `Error:` line is what Herd prints (up to the
  /// documentation's "..."). A `--config FILE` that is not in the repository is
  /// written from the JSON object in the command's comment (`# {"unroll_length":
  /// 80, ...}`). Training runs without the stats endpoint and must have a stop.
  @Test func sessionsWithFailuresReplayAsShown() throws {
    let sessions = Dictionary(grouping: commands) { "\($0.file) block \($0.block)" }
      .filter { $0.value.contains { $0.documentedError != nil } }
    #expect(sessions.count >= 2)
    for (_, session) in sessions.sorted(by: { $0.key < $1.key }) {
      let dir = HerdBinary.tempDir("docs")
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      try FileManager.default.createSymbolicLink(atPath: dir + "/configs", withDestinationPath: repositoryRoot + "/configs")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      for c in session {
        var args = c.arguments
        if let i = args.firstIndex(of: "--config"), i + 1 < args.count, !FileManager.default.fileExists(atPath: dir + "/" + args[i + 1]) {
          let json = try #require(c.comment, "\(c): no file and no JSON in a comment").replacingOccurrences(of: ", ...", with: "")
          try json.write(toFile: dir + "/" + args[i + 1], atomically: true, encoding: .utf8)
        }
        if args.first == "train" && c.documentedError == nil && !args.contains("--print-config") {
          guard args.contains(where: { ["--stop-steps", "--stop-seconds"].contains($0) }) else {
            Issue.record("\(c): a training example in a replayed session needs --stop-steps or --stop-seconds")
            continue
          }
          args += ["--no-stats"]
        }
        let r = try HerdBinary.runCommand(HerdBinary.path, args, currentDirectory: dir, timeout: 60)
        guard let documented = c.documentedError else {
          #expect(r.status == 0, "\(c): \(r.stderr.suffix(1500))")
          continue
        }
        let expected = documented.components(separatedBy: "...").first!.trimmingCharacters(in: .whitespaces)
        #expect(r.status != 0, "\(c) succeeded")
        #expect(r.stderr.contains(expected), "\(c)\n documented: \(expected)\n printed:    \(r.stderr)")
      }
    }
  }
}

/// The `herd` command lines of the systemd units (with their environment files'
/// values and instance 1) and of the Kubernetes manifests parse as they stand.
@Suite struct RecipeCommandsTests {
  /// `KEY=VALUE` lines of an environment file (comments and blanks skipped).
  func environment(_ path: String) throws -> [String: String] {
    var values: [String: String] = [:]
    for line in try String(contentsOfFile: repositoryRoot + "/" + path, encoding: .utf8).split(separator: "\n") {
      guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
      values[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return values
  }

  func parse(_ words: [String], _ source: String) {
    guard let i = words.firstIndex(where: { $0 == "herd" || $0.hasSuffix("/herd") }) else {
      Issue.record("\(source): no herd command in \(words)")
      return
    }
    let arguments = Array(words[(i + 1)...])
    do {
      _ = try Herd.parseAsRoot(arguments)
    } catch {
      Issue.record("\(source): herd \(arguments.joined(separator: " ")): \(Herd.message(for: error))")
    }
  }

  @Test func systemdUnitsStartCommandsHerdTakes() throws {
    for (unit, envFile) in [("herd-learner.service", "learner.env"), ("herd-worker@.service", "worker.env")] {
      let text = try String(contentsOfFile: repositoryRoot + "/deploy/systemd/" + unit, encoding: .utf8)
      let start = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
      var line = String(start.dropFirst("ExecStart=".count)).replacingOccurrences(of: "%i", with: "1")
      let values = try environment("deploy/systemd/" + envFile)
      #expect(!values.isEmpty)
      // ${NAME} is one word, $NAME splits into words (systemd's rules).
      for (key, value) in values {
        line = line.replacingOccurrences(of: "${\(key)}", with: value.replacingOccurrences(of: " ", with: "\\ "))
        line = line.replacingOccurrences(of: "$\(key)", with: value)
      }
      #expect(!line.contains("$"), "\(unit): unset variables in \(line)")
      parse(DocumentedCommand.shellWords(line).words, unit)
    }
  }

  @Test func kubernetesContainersRunCommandsHerdTakes() throws {
    // workers.yaml: the args list, one word per item.
    let workers = try String(contentsOfFile: repositoryRoot + "/deploy/kubernetes/workers.yaml", encoding: .utf8)
    let lines = workers.split(separator: "\n").map(String.init)
    let start = try #require(lines.firstIndex { $0.trimmingCharacters(in: .whitespaces) == "args:" })
    let items = lines[(start + 1)...].prefix { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- ") }
      .map { $0.trimmingCharacters(in: .whitespaces).dropFirst(2).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    #expect(items.count >= 4)
    parse(items, "workers.yaml")
    // learner.yaml: a folded shell command, without the ConfigMap's extra options.
    let learner = try String(contentsOfFile: repositoryRoot + "/deploy/kubernetes/learner.yaml", encoding: .utf8)
    let folded = learner.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
      .drop { !$0.hasPrefix("exec herd ") }.prefix { !$0.isEmpty && !$0.hasSuffix(":") }
    let command = folded.joined(separator: " ").replacingOccurrences(of: "$(LEARNER_ARGS)", with: "")
    #expect(command.contains("learner"), "\(command)")
    parse(DocumentedCommand.shellWords(command).words, "learner.yaml")
  }
}
