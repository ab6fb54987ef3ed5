import Foundation

/// Writes a line to standard error (progress and diagnostics; stdout stays for results).
func printError(_ line: String) {
  FileHandle.standardError.write(Data((line + "\n").utf8))
}
