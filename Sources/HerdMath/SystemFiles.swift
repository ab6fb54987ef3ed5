import Glibc

/// Calls `body` with each line of the file at `path` (its newline included) until
/// `body` returns false. False when the file cannot be opened.
@discardableResult
func forEachLine(ofFile path: String, _ body: (UnsafeMutablePointer<CChar>) -> Bool) -> Bool {
  guard let file = fopen(path, "r") else { return false }
  defer { fclose(file) }
  var line: UnsafeMutablePointer<CChar>?
  var capacity = 0
  defer { free(line) }
  while getline(&line, &capacity, file) > 0, let text = line, body(text) {}
  return true
}

/// A small text file's contents (`/proc` and `/sys` files, whose size reads as 0),
/// nil when it cannot be opened.
func readSmallFile(_ path: String) -> String? {
  var text = ""
  guard
    forEachLine(
      ofFile: path,
      {
        text += String(cString: $0); return true
      })
  else { return nil }
  return text
}

/// Writes `text` to standard error unbuffered: the warnings of settings read once at
/// start-up, before any logger exists.
func writeToStandardError(_ text: String) {
  var text = text
  text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
