import HerdMath

/// The worst disagreement between two float arrays under `|a - b| <= atol + rtol |b|`.
public struct Closeness: CustomStringConvertible, Sendable {
  /// True when every element is within tolerance (and counts agree).
  public let ok: Bool
  /// Index of the worst element (by tolerance ratio).
  public let worstIndex: Int
  /// Values at the worst element.
  public let actual: Float
  public let expected: Float
  /// Largest `|a - b| / (atol + rtol |b|)`.
  public let worstRatio: Double

  public var description: String {
    ok
      ? "close (worst ratio \(worstRatio))"
      : "not close at [\(worstIndex)]: got \(actual), expected \(expected) (ratio \(worstRatio))"
  }
}

/// Compares `actual` with `expected` elementwise; NaN never counts as close.
public func closeness(_ actual: [Float], _ expected: [Float], rtol: Double = 1e-5, atol: Double = 1e-6) -> Closeness {
  guard actual.count == expected.count else {
    return Closeness(
      ok: false, worstIndex: -1, actual: Float(actual.count), expected: Float(expected.count), worstRatio: .infinity)
  }
  var worst = 0
  var ratio = 0.0
  for i in actual.indices {
    let a = Double(actual[i])
    let b = Double(expected[i])
    let r = a.isNaN || b.isNaN ? Double.infinity : abs(a - b) / (atol + rtol * abs(b))
    if r > ratio || (r.isInfinite && ratio.isFinite) {
      ratio = r
      worst = i
    }
  }
  return Closeness(
    ok: ratio <= 1, worstIndex: worst, actual: actual.isEmpty ? 0 : actual[worst],
    expected: expected.isEmpty ? 0 : expected[worst], worstRatio: ratio)
}

/// Random floats uniform in `[low, high)`.
public func randomArray<G: RandomNumberGenerator>(
  _ count: Int, low: Float = -1, high: Float = 1, rng: inout G
) -> [Float] {
  (0..<count).map { _ in low + (high - low) * rng.nextUnitFloat() }
}

/// Every packed-product kernel, whichever this build and CPU would choose: the 8-wide
/// one is forced on an AVX-512 machine, and the 16-wide one runs on any machine (in a
/// build not for AVX-512 its 16-wide vectors become pairs of 8-wide ones, slower but
/// the same tiles, tails and packing), so its logic is checked wherever the tests run.
public let everyKernel = KernelISA.allCases

/// One way of packing a right-hand side for the kernels: a kernel, wide or narrow
/// panels, and the rows per tile on 16-column panels (``NarrowTiles``; only the
/// AVX-512 kernel has such tiles).
public struct PackingChoice: CustomStringConvertible, Sendable {
  public let isa: KernelISA
  public let narrow: Bool
  public let narrowRows: Int

  public func make() -> PackedMatrix {
    let packed = PackedMatrix(isa: isa, narrow: narrow)
    packed.narrowRows = narrowRows
    return packed
  }

  public var description: String { "\(isa) narrow=\(narrow) narrowRows=\(narrowRows)" }
}

/// Every packing of every kernel (``everyKernel``): wide and narrow panels, and on
/// AVX-512 both heights of the 16-column tiles, whatever `HERD_NARROW_ROWS` says.
public let everyPacking: [PackingChoice] = everyKernel.flatMap { isa in
  [false, true].flatMap { narrow in
    (isa == .avx512 ? [16, 8] : [16]).map { PackingChoice(isa: isa, narrow: narrow, narrowRows: $0) }
  }
}
