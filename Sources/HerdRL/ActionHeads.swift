/// The categorical heads of the policy: one for a Discrete action space, one per
/// component of a MultiDiscrete one. The logits of the heads sit side by side
/// (`[n_0 | n_1 | ...]`, A = sum of the n), and each head is an independent
/// categorical distribution: log pi(a) and the entropy are sums over the heads.
///
/// An action travels as one Int32 everywhere (fragments, batches, the wire): the
/// components in mixed radix, component 0 varying fastest,
/// `a = a_0 + n_0 (a_1 + n_1 (a_2 + ...))`. One head: the action itself.
public struct ActionHeads: Sendable, Equatable, CustomStringConvertible {
  /// Choices per head.
  public let sizes: [Int]
  /// Where each head's logits start.
  public let offsets: [Int]
  /// What one unit of each component is worth in the packed action.
  public let strides: [Int]
  /// Logits per step A.
  public let logits: Int
  /// Distinct packed actions (the product of the sizes): actions are in `0..<values`.
  public let values: Int

  /// The heads of `sizes` (each at least 1; their product must fit an Int32).
  public init(_ sizes: [Int]) {
    precondition(!sizes.isEmpty && sizes.allSatisfy { $0 >= 1 }, "action heads \(sizes)")
    self.sizes = sizes
    var offsets: [Int] = []
    var strides: [Int] = []
    var o = 0
    var s = 1
    for n in sizes {
      offsets.append(o)
      strides.append(s)
      o += n
      s = s.multipliedReportingOverflow(by: n).overflow ? Int.max : s * n
    }
    self.offsets = offsets
    self.strides = strides
    logits = o
    values = s
    precondition(values <= Int(Int32.max), "action heads \(sizes): \(values) actions do not fit an Int32")
  }

  /// The most likely component of head `h` in one row's logits `[A]` (the first on ties).
  @inlinable
  public func mostLikely(_ rowLogits: UnsafePointer<Float>, head h: Int) -> Int {
    let l = rowLogits + offsets[h]
    var best = 0
    for j in 1..<sizes[h] where l[j] > l[best] { best = j }
    return best
  }

  /// One categorical head of `n` choices.
  public init(single n: Int) { self.init([n]) }

  /// Heads.
  public var count: Int { sizes.count }

  /// Component `head` of packed action `a`.
  @inlinable
  public func component(_ a: Int, head: Int) -> Int { count == 1 ? a : (a / strides[head]) % sizes[head] }

  /// Whether packed sizes fit: the product of `sizes` is at most Int32.max.
  public static func fits(_ sizes: [Int]) -> Bool {
    var s = 1
    for n in sizes {
      let (p, overflow) = s.multipliedReportingOverflow(by: n)
      if overflow || p > Int(Int32.max) { return false }
      s = p
    }
    return true
  }

  public var description: String { count == 1 ? "one head of \(sizes[0])" : "\(count) heads \(sizes)" }
}
