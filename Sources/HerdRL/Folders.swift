#if canImport(Glibc)
  import Glibc
#endif

/// Creating a folder and its missing parents (`mkdir -p`) with an error a person can
/// act on. Foundation's `createDirectory` on Linux reports a parent that is a file
/// as "NSCocoaErrorDomain error 512"; this names the path that stopped it and the
/// system's reason.
public enum Folders {
  /// Creates `path` and every missing folder above it (mode 0755, less the umask).
  /// A folder that exists already is fine; anything else in the way is an error.
  public static func create(_ path: String) throws {
    guard !path.isEmpty else { throw FolderError(path: path, reason: "the path is empty") }
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/", omittingEmptySubsequences: true) {
      prefix += component
      if mkdir(prefix, 0o755) != 0 {
        let code = errno
        guard code == EEXIST else {
          let why = String(cString: strerror(code))
          throw FolderError(path: path, reason: prefix == path ? why : "\(prefix): \(why)")
        }
        var info = stat()
        guard stat(prefix, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
          throw FolderError(path: path, reason: "\(prefix) exists and is not a folder")
        }
      }
      prefix += "/"
    }
  }
}

/// A folder that could not be created: which, and why.
public struct FolderError: Error, CustomStringConvertible, Equatable {
  /// The folder asked for.
  public let path: String
  /// What stopped it, naming the part of the path at fault when it is not `path`.
  public let reason: String

  public var description: String { "cannot create the folder \(path): \(reason)" }
}
