import HerdMath

/// A hidden-layer activation (RLlib's `fcnet_activation`).
public enum Activation: String, Sendable, Codable, CaseIterable {
  /// Hyperbolic tangent (RLlib's default).
  case tanh
  /// max(x, 0).
  case relu
  /// No activation.
  case linear

  /// `y = f(x)` over `count` scalars, in place allowed.
  @inlinable
  public func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    switch self {
    case .tanh: Kernels.tanh(x, y, count: count)
    case .relu: Kernels.relu(x, y, count: count)
    case .linear: if UnsafePointer(y) != x { y.update(from: x, count: count) }
    }
  }

  /// `dx = dy * f'(x)` written with the forward output `y = f(x)`; in place allowed.
  @inlinable
  public func backward(
    output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
    gradInput dx: UnsafeMutablePointer<Float>, count: Int
  ) {
    switch self {
    case .tanh: Kernels.tanhBackward(output: y, gradOutput: dy, gradInput: dx, count: count)
    case .relu: Kernels.reluBackward(output: y, gradOutput: dy, gradInput: dx, count: count)
    case .linear: if UnsafePointer(dx) != dy { dx.update(from: dy, count: count) }
    }
  }
}
