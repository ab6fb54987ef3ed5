/// Suggestions for a misspelt name: the configuration's keys, its choices and the
/// environment names, so that `entropy_coef` gets "did you mean 'entropy_coeff'?"
/// before the list of every valid key.
public enum Spelling {
  /// The candidate `word` most likely stands for, or nil when none is close.
  ///
  /// Close means, ignoring case: the same word; else the only candidate that
  /// starts with `word` (3 characters or more); else the only candidate at the
  /// smallest edit distance (insertions, deletions, substitutions, and swaps of
  /// two neighbours), when that distance is at most a third of the word's length
  /// (at least 1, at most 3). A tie suggests nothing rather than a guess.
  public static func suggestion(for word: String, among candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    guard !w.isEmpty else { return nil }
    let lowered = candidates.map { Array($0.lowercased()) }
    if let same = lowered.firstIndex(of: w) { return candidates[same] }
    if w.count >= 3 {
      let prefixed = lowered.indices.filter { lowered[$0].starts(with: w) }
      if prefixed.count == 1 { return candidates[prefixed[0]] }
    }
    let limit = min(3, max(1, w.count / 3))
    var best: (index: Int, distance: Int)?
    var tied = false
    for (i, c) in lowered.enumerated() {
      let d = distance(w, c)
      guard d <= limit else { continue }
      if let b = best, d == b.distance {
        tied = true
      } else if best == nil || d < best!.distance {
        best = (i, d)
        tied = false
      }
    }
    guard let best, !tied else { return nil }
    return candidates[best.index]
  }

  /// " (did you mean 'X'?)" for a close candidate, else "".
  public static func hint(for word: String, among candidates: [String]) -> String {
    suggestion(for: word, among: candidates).map { " (did you mean '\($0)'?)" } ?? ""
  }

  /// The optimal string alignment distance: Levenshtein's, with a swap of two
  /// neighbouring characters counted as one edit.
  static func distance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var before = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
      current[0] = i
      for j in 1...b.count {
        let cost = a[i - 1] == b[j - 1] ? 0 : 1
        var d = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d = min(d, before[j - 2] + 1) }
        current[j] = d
      }
      (before, previous, current) = (previous, current, before)
    }
    return previous[b.count]
  }
}
