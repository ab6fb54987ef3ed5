import Foundation

/// Writes a line to standard error (progress and diagnostics; stdout stays for results).
func printError(_ line: String) {
  FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// A failure at run time (not a usage error): printed as "Error: ..." with exit
/// status 1 and no usage line.
struct CommandFailure: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}
