/// A seeded, reproducible random number generator (xoshiro256**, seeded by splitmix64).
///
/// Every source of randomness in Herd takes one of these (or any
/// `RandomNumberGenerator`) from its caller: no global RNG.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var s0: UInt64
  private var s1: UInt64
  private var s2: UInt64
  private var s3: UInt64

  /// A generator whose whole stream is fixed by `seed`.
  public init(seed: UInt64) {
    var sm = seed
    func splitmix() -> UInt64 {
      sm &+= 0x9E37_79B9_7F4A_7C15
      var z = sm
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s0 = splitmix()
    s1 = splitmix()
    s2 = splitmix()
    s3 = splitmix()
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    let result = rotl(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 45)
    return result
  }

  private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
  /// A uniform Float in `[0, 1)` from the top 24 bits.
  @inlinable public mutating func nextUnitFloat() -> Float {
    Float(next() >> 40) * (1.0 / 16_777_216.0)
  }

  /// A standard normal sample (Box-Muller).
  public mutating func nextGaussian() -> Float {
    var u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    if u1 < 1e-300 { u1 = 1e-300 }
    let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
  }
}

#if canImport(Glibc)
  import Glibc
  @usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
  @usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
  import Foundation
  @usableFromInline func _log(_ x: Double) -> Double { Foundation.log(x) }
  @usableFromInline func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
