// Vectorised exp, sigmoid and tanh on SIMD16<Float>: one register on AVX-512, two
// on AVX2. Written for the concrete type: on a generic SIMD vector Swift's
// comparisons, selects and broadcasts resolve to the standard library's
// lane-by-lane defaults, which compiled to loops or 128-bit pieces.
//
// The polynomials are Cephes' single-precision ones (S. L. Moshier, Cephes Math
// Library): exp with Cody-Waite range reduction x = n ln2 + r, and tanh's odd
// polynomial for |x| < 0.625. Measured against Glibc in HerdMathTests: relative
// error below 4e-7 (exp, sigmoid) and absolute error below 3e-7 (tanh).
//
// Every function is lane-independent: a value gives the same bits in any lane, so
// a batch of K rows and the same rows inside a larger batch agree bit for bit.
//
// Each polynomial step and the range reduction are one fused multiply-add
// (``simdFMA``): Swift rounds a * b + c twice, in two dependent instructions, and
// with that the sigmoid took 1.4 times as long (0.44 against 0.31 ns per float
// over 8,192 floats in cache, AMD EPYC Zen 4, AVX-512; rollout inference 3.6%).

import CVector

public typealias Float8 = SIMD8<Float>
/// The vector the activations run on.
public typealias Float16s = SIMD16<Float>

@usableFromInline let expHi: Float = 88.3762626647949
@usableFromInline let expLo: Float = -87.3365478515625
@usableFromInline let log2e: Float = 1.44269504088896341
@usableFromInline let ln2Hi: Float = 0.693359375
@usableFromInline let ln2Lo: Float = -2.12194440e-4
@usableFromInline let roundMagic: Float = 12_582_912  // 1.5 * 2^23

/// e^x per lane; NaN stays NaN, large arguments saturate (no inf below e^88.37).
@_transparent
public func simdExp(_ x: Float16s) -> Float16s {
  // Clamp with mask selects: the generic pointwiseMin/Max are not inlined.
  let hi = Float16s(repeating: expHi)
  let lo = Float16s(repeating: expLo)
  let xc = x.replacing(with: hi, where: x .> hi).replacing(with: lo, where: x .< lo)
  // n = round(x / ln2), kept both as a float and in the low mantissa bits of t.
  let magic = Float16s(repeating: roundMagic)
  let t = simdFMA(xc, Float16s(repeating: log2e), magic)
  let n = t - magic
  var r = simdFMA(n, Float16s(repeating: -ln2Hi), xc)
  r = simdFMA(n, Float16s(repeating: -ln2Lo), r)
  let r2 = r * r
  var p = simdFMA(Float16s(repeating: 1.9875691500e-4), r, Float16s(repeating: 1.3981999507e-3))
  p = simdFMA(p, r, Float16s(repeating: 8.3334519073e-3))
  p = simdFMA(p, r, Float16s(repeating: 4.1665795894e-2))
  p = simdFMA(p, r, Float16s(repeating: 1.6666665459e-1))
  p = simdFMA(p, r, Float16s(repeating: 5.0000001201e-1))
  p = simdFMA(p, r2, r + 1)
  let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
  let scale = unsafeBitCast((ni &+ 127) &<< 23, to: Float16s.self)
  return (p * scale).replacing(with: x, where: x .!= x)
}

/// `a * b + c` per lane, rounded once where the target has FMA (CVector's
/// `herd_fma16`; twice elsewhere).
@_transparent
public func simdFMA(_ a: Float16s, _ b: Float16s, _ c: Float16s) -> Float16s {
  herd_fma16(a, b, c)
}

/// Whether this build's target has fused multiply-add (built with `-target-cpu
/// haswell` or newer, as `make` does on such hosts). The packed kernels then round
/// each multiply-add once. A portable x86-64 build has no FMA instruction: a fused
/// multiply-add there is a call to `fmaf` per lane, which made the learner step 31
/// times as slow as a product and a sum, so the kernels take the product and the sum.
@_transparent
public var targetHasFMA: Bool { HERD_TARGET_HAS_FMA != 0 }

extension SIMD where Scalar == Float {
  /// `self += a * b` per lane: fused where ``targetHasFMA``, a product and a sum
  /// (two roundings) elsewhere.
  @_transparent
  public mutating func multiplyAdd(_ a: Self, _ b: Self) {
    if targetHasFMA { addProduct(a, b) } else { self = self + a * b }
  }
}

extension Float {
  /// `self + a * b` as one lane of ``Swift/SIMD/multiplyAdd(_:_:)`` computes it: the
  /// tests' reference for the packed kernels' chains, bit for bit on every target.
  @_transparent
  public func addingKernelProduct(_ a: Float, _ b: Float) -> Float {
    targetHasFMA ? addingProduct(a, b) : self + a * b
  }
}

/// 1 / (1 + e^-x) per lane.
@_transparent
public func simdSigmoid(_ x: Float16s) -> Float16s {
  1 / (1 + simdExp(-x))
}

/// tanh(x) per lane: an odd polynomial near zero, 1 - 2/(e^2|x| + 1) elsewhere.
@_transparent
public func simdTanh(_ x: Float16s) -> Float16s {
  let ax0 = x.replacing(with: -x, where: x .< 0)
  let ax = ax0.replacing(with: Float16s(repeating: 20), where: ax0 .> 20)
  // |x| >= 0.625
  let big = 1 - 2 / (simdExp(ax + ax) + 1)
  // |x| < 0.625
  let z = x * x
  var p = simdFMA(Float16s(repeating: -5.70498872745e-3), z, Float16s(repeating: 2.06390887954e-2))
  p = simdFMA(p, z, Float16s(repeating: -5.37397155531e-2))
  p = simdFMA(p, z, Float16s(repeating: 1.33314422036e-1))
  p = simdFMA(p, z, Float16s(repeating: -3.33332819422e-1))
  let small = simdFMA(p * z, x, x)
  let signedBig = big.replacing(with: -big, where: x .< 0)
  return signedBig.replacing(with: small, where: ax .< 0.625).replacing(with: x, where: x .!= x)
}

extension SIMD8 where Scalar == Float {
  /// Loads `count` (1...8) scalars from `p`; missing lanes are zero.
  @inlinable @inline(__always)
  public static func load(_ p: UnsafePointer<Float>, count: Int) -> Float8 { loadFloats(p, count: count) }

  /// Stores the first `count` (1...8) lanes to `p`.
  @inlinable @inline(__always)
  public func store(_ p: UnsafeMutablePointer<Float>, count: Int) { storeFloats(self, p, count: count) }
}

extension SIMD16 where Scalar == Float {
  /// Loads `count` (1...16) scalars from `p`; missing lanes are zero.
  @inlinable @inline(__always)
  public static func load(_ p: UnsafePointer<Float>, count: Int) -> Float16s { loadFloats(p, count: count) }

  /// Stores the first `count` (1...16) lanes to `p`.
  @inlinable @inline(__always)
  public func store(_ p: UnsafeMutablePointer<Float>, count: Int) { storeFloats(self, p, count: count) }
}

/// Loads `count` scalars from `p` (the whole vector when `count` covers it); missing
/// lanes are zero. Memory only, so generic code compiles to whole-vector loads.
@inlinable @inline(__always)
func loadFloats<V: SIMD>(_ p: UnsafePointer<Float>, count: Int) -> V where V.Scalar == Float {
  if count >= V.scalarCount { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
  var v = V()
  for j in 0..<count { v[j] = p[j] }
  return v
}

/// Stores the first `count` lanes of `v` (all when `count` covers them) to `p`.
@inlinable @inline(__always)
func storeFloats<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>, count: Int) where V.Scalar == Float {
  if count >= V.scalarCount {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    return
  }
  for j in 0..<count { p[j] = v[j] }
}
