import CVector
import HerdMath

/// An optimiser over a model's flat parameter buffer.
///
/// State buffers have the parameters' layout, so they are saved beside them by name.
///
/// An update is ``beginStep(_:)`` and then ``apply(_:lr:range:)`` over ranges that
/// cover every parameter once. Each parameter's update reads only its own gradient
/// and state, so the ranges may run on different threads at once, and any split
/// gives the same bits as one call over everything (``step(_:lr:)``).
public protocol Optimizer: AnyObject {
  /// A short name ("rmsprop", "adam") recorded in parameter files.
  var kind: String { get }
  /// Updates taken so far.
  var stepCount: Int { get }
  /// Starts an update: counts it and marks `p`'s values as changed.
  func beginStep(_ p: Parameters)
  /// The update begun by ``beginStep(_:)`` with learning rate `lr`, from `p.grads`
  /// to `p.values`, for the parameters in `range`.
  func apply(_ p: Parameters, lr: Float, range: Range<Int>)
  /// Named state buffers, each with one scalar per parameter (for saving).
  func stateBuffers() -> [(name: String, values: [Float])]
  /// Restores the state saved by ``stateBuffers()`` and the step count.
  func restore(buffers: [String: [Float]], stepCount: Int) throws
}

extension Optimizer {
  /// One whole update with learning rate `lr` from `p.grads` to `p.values`.
  public func step(_ p: Parameters, lr: Float) {
    beginStep(p)
    apply(p, lr: lr, range: 0..<p.count)
  }
}

/// An optimiser's per-parameter state: `count` floats, zeroed, at a fixed address,
/// so that threads updating disjoint ranges write to it at once without going
/// through a Swift array (whose mutable access is exclusive to one caller).
final class OptimizerState {
  let count: Int
  let pointer: UnsafeMutablePointer<Float>

  init(count: Int) {
    self.count = count
    pointer = .allocate(capacity: max(count, 1))
    pointer.initialize(repeating: 0, count: max(count, 1))
  }

  deinit { pointer.deallocate() }

  var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

  func load(_ values: [Float]) {
    precondition(values.count == count)
    values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
  }
}

/// RMSProp with PyTorch's semantics (`torch.optim.RMSprop`), as IMPALA uses it.
///
/// ```
/// v = alpha * v + (1 - alpha) * g^2
/// centered: m_g = alpha * m_g + (1 - alpha) * g;  d = sqrt(v - m_g^2) + eps
/// otherwise: d = sqrt(v) + eps                    (eps added after the root)
/// momentum > 0: b = momentum * b + g / d;  p -= lr * b
/// otherwise:    p -= lr * g / d
/// ```
/// Defaults are IMPALA's: alpha (decay) 0.99, eps 0.01, no momentum, not centered.
public final class RMSProp: Optimizer {
  public let kind = "rmsprop"
  /// Smoothing constant of the squared-gradient average.
  public let alpha: Float
  /// Added to the root of the average.
  public let eps: Float
  /// Momentum factor; 0 turns it off.
  public let momentum: Float
  /// Normalise by the variance instead of the second moment.
  public let centered: Bool
  public private(set) var stepCount = 0
  private let squareAvg: OptimizerState
  private let gradAvg: OptimizerState
  private let momentumBuffer: OptimizerState

  /// An optimiser for `count` parameters.
  public init(count: Int, alpha: Float = 0.99, eps: Float = 0.01, momentum: Float = 0, centered: Bool = false) {
    self.alpha = alpha
    self.eps = eps
    self.momentum = momentum
    self.centered = centered
    squareAvg = OptimizerState(count: count)
    gradAvg = OptimizerState(count: centered ? count : 0)
    momentumBuffer = OptimizerState(count: momentum > 0 ? count : 0)
  }

  public func beginStep(_ p: Parameters) {
    p.valuesChanged()
    stepCount += 1
  }

  public func apply(_ p: Parameters, lr: Float, range: Range<Int>) {
    precondition(range.lowerBound >= 0 && range.upperBound <= min(p.count, squareAvg.count), "RMSProp.apply: \(range)")
    let (alpha, eps, momentum, centered) = (alpha, eps, momentum, centered)
    let w = p.values.baseAddress.unsafelyUnwrapped
    let g = p.grads.baseAddress.unsafelyUnwrapped
    let v = squareAvg.pointer
    if !centered && momentum == 0 {
      // IMPALA's setting: eight lanes at a time, the same operations in the same
      // order as the general loop below (no fused multiply-add), so the same bits.
      let (a, oneMinusA) = (Float8(repeating: alpha), Float8(repeating: 1 - alpha))
      var i = range.lowerBound
      while i &+ 8 <= range.upperBound {
        let gi = Float8.load(g + i, count: 8)
        let vi = a * Float8.load(v + i, count: 8) + oneMinusA * gi * gi
        vi.store(v + i, count: 8)
        let d = herd_sqrt8(vi) + eps  // one vsqrtps (see CVector)
        (Float8.load(w + i, count: 8) - lr * gi / d).store(w + i, count: 8)
        i &+= 8
      }
      while i < range.upperBound {
        let gi = g[i]
        v[i] = alpha * v[i] + (1 - alpha) * gi * gi
        w[i] -= lr * gi / (v[i].squareRoot() + eps)
        i &+= 1
      }
      return
    }
    let (mg, b) = (gradAvg.pointer, momentumBuffer.pointer)
    for i in range {
      let gi = g[i]
      v[i] = alpha * v[i] + (1 - alpha) * gi * gi
      var avg = v[i]
      if centered {
        mg[i] = alpha * mg[i] + (1 - alpha) * gi
        avg -= mg[i] * mg[i]
      }
      let d = avg.squareRoot() + eps
      if momentum > 0 {
        b[i] = momentum * b[i] + gi / d
        w[i] -= lr * b[i]
      } else {
        w[i] -= lr * gi / d
      }
    }
  }

  public func stateBuffers() -> [(name: String, values: [Float])] {
    var out: [(String, [Float])] = [("square_avg", squareAvg.values)]
    if centered { out.append(("grad_avg", gradAvg.values)) }
    if momentum > 0 { out.append(("momentum_buffer", momentumBuffer.values)) }
    return out
  }

  public func restore(buffers: [String: [Float]], stepCount: Int) throws {
    // Validate everything before assigning anything.
    let sq = try Self.take("square_avg", buffers, count: squareAvg.count)
    let ga = centered ? try Self.take("grad_avg", buffers, count: gradAvg.count) : nil
    let mb = momentum > 0 ? try Self.take("momentum_buffer", buffers, count: momentumBuffer.count) : nil
    squareAvg.load(sq)
    if let ga { gradAvg.load(ga) }
    if let mb { momentumBuffer.load(mb) }
    self.stepCount = stepCount
  }

  static func take(_ name: String, _ buffers: [String: [Float]], count: Int) throws -> [Float] {
    guard let b = buffers[name] else {
      throw NNError.invalidValue(name: "optimizer state", value: name, reason: "missing from the file")
    }
    guard b.count == count else {
      throw NNError.shapeMismatch(context: "optimizer state \(name)", expected: [count], actual: [b.count])
    }
    return b
  }
}

/// Adam with PyTorch's semantics (`torch.optim.Adam`, no AMSGrad).
///
/// ```
/// g += weight_decay * p
/// m = b1 m + (1 - b1) g      v = b2 v + (1 - b2) g^2       (t = step, from 1)
/// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// ```
public final class Adam: Optimizer {
  public let kind = "adam"
  /// First-moment decay.
  public let beta1: Float
  /// Second-moment decay.
  public let beta2: Float
  /// Added to the bias-corrected root.
  public let eps: Float
  /// L2 penalty added to the gradient.
  public let weightDecay: Float
  public private(set) var stepCount = 0
  private let m: OptimizerState
  private let v: OptimizerState

  /// An optimiser for `count` parameters with PyTorch's defaults.
  public init(count: Int, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.eps = eps
    self.weightDecay = weightDecay
    m = OptimizerState(count: count)
    v = OptimizerState(count: count)
  }

  public func beginStep(_ p: Parameters) {
    p.valuesChanged()
    stepCount += 1
  }

  public func apply(_ p: Parameters, lr: Float, range: Range<Int>) {
    precondition(range.lowerBound >= 0 && range.upperBound <= min(p.count, m.count), "Adam.apply: \(range)")
    let (b1, b2, eps, wd) = (beta1, beta2, eps, weightDecay)
    let t = Float(stepCount)
    let bc1 = 1 - _pow(b1, t)
    let bc2Root = (1 - _pow(b2, t)).squareRoot()
    let stepSize = lr / bc1
    let w = p.values.baseAddress.unsafelyUnwrapped
    let g = p.grads.baseAddress.unsafelyUnwrapped
    let (m, v) = (self.m.pointer, self.v.pointer)
    // Eight lanes at a time, the same operations in the same order as the tail
    // loop (no fused multiply-add), so the same bits: the compiler left the plain
    // loop scalar (a square root and a division per parameter), and with many
    // passes over small batches the step was a fifth of a learner's time.
    let (vb1, vb2, oneMinusB1, oneMinusB2) = (
      Float8(repeating: b1), Float8(repeating: b2), Float8(repeating: 1 - b1), Float8(repeating: 1 - b2)
    )
    var i = range.lowerBound
    while i &+ 8 <= range.upperBound {
      let wi = Float8.load(w + i, count: 8)
      let gi = Float8.load(g + i, count: 8) + wd * wi
      let mi = vb1 * Float8.load(m + i, count: 8) + oneMinusB1 * gi
      let vi = vb2 * Float8.load(v + i, count: 8) + oneMinusB2 * gi * gi
      mi.store(m + i, count: 8)
      vi.store(v + i, count: 8)
      (wi - stepSize * mi / (herd_sqrt8(vi) / bc2Root + eps)).store(w + i, count: 8)
      i &+= 8
    }
    while i < range.upperBound {
      let gi = g[i] + wd * w[i]
      m[i] = b1 * m[i] + (1 - b1) * gi
      v[i] = b2 * v[i] + (1 - b2) * gi * gi
      w[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Root + eps)
      i &+= 1
    }
  }

  public func stateBuffers() -> [(name: String, values: [Float])] {
    [("exp_avg", m.values), ("exp_avg_sq", v.values)]
  }

  public func restore(buffers: [String: [Float]], stepCount: Int) throws {
    let newM = try RMSProp.take("exp_avg", buffers, count: m.count)
    let newV = try RMSProp.take("exp_avg_sq", buffers, count: v.count)
    m.load(newM)
    v.load(newV)
    self.stepCount = stepCount
  }
}

#if canImport(Glibc)
  import Glibc
  @usableFromInline func _pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
#else
  import Foundation
  @usableFromInline func _pow(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
#endif
