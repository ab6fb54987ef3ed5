import Foundation
import Testing

@testable import HerdRL

/// `Folders.create` is `mkdir -p` whose errors name the part of the path at fault.
@Suite struct FoldersTests {
  /// A fresh folder under the system's temporary folder, removed by `body`'s end.
  func withScratch(_ body: (String) throws -> Void) throws {
    let root = NSTemporaryDirectory() + "herd-folders-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: root) }
    try body(root)
  }

  func isFolder(_ path: String) -> Bool {
    var folder: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &folder) && folder.boolValue
  }

  @Test func createsMissingParentsAndAcceptsExistingFolders() throws {
    try withScratch { root in
      let deep = root + "/a/b//c/"
      try Folders.create(deep)
      #expect(isFolder(root + "/a/b/c"))
      try Folders.create(deep)  // again: nothing to do, no error
      try Folders.create(root + "/a")
      #expect(isFolder(root + "/a/b/c"))
    }
  }

  @Test func aFileInThePathIsNamed() throws {
    try withScratch { root in
      try Folders.create(root)
      let file = root + "/config.json"
      #expect(FileManager.default.createFile(atPath: file, contents: Data("{}".utf8)))
      let below = file + "/sub/run"
      let error = try #require(throws: FolderError.self) { try Folders.create(below) }
      #expect(error == FolderError(path: below, reason: "\(file) exists and is not a folder"))
      #expect(error.description == "cannot create the folder \(below): \(file) exists and is not a folder")
      let itself = try #require(throws: FolderError.self) { try Folders.create(file) }
      #expect(itself.reason == "\(file) exists and is not a folder")
      #expect(!FileManager.default.fileExists(atPath: file + "/sub"))
    }
  }

  @Test func theSystemsReasonIsGiven() throws {
    try withScratch { root in
      // A name longer than the file system allows (NAME_MAX is 255 bytes).
      let long = root + "/" + String(repeating: "x", count: 300) + "/run"
      let error = try #require(throws: FolderError.self) { try Folders.create(long) }
      #expect(error.reason == "\(root)/\(String(repeating: "x", count: 300)): File name too long")
      let empty = try #require(throws: FolderError.self) { try Folders.create("") }
      #expect(empty.reason == "the path is empty")
    }
  }
}
