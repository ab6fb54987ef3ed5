import HerdMath

/// Errors from layers, optimisers and parameter files.
public enum NNError: Error, Equatable, CustomStringConvertible {
  /// An input's shape does not fit the layer; `context` names the layer and operand.
  case shapeMismatch(context: String, expected: [Int], actual: [Int])
  /// A sequence length is outside `0...maxLength`.
  case badSequenceLength(index: Int, length: Int, maxLength: Int)
  /// The gradient holds NaN or infinity; nothing was updated.
  case nonFiniteGradient(norm: Double)
  /// A configuration value is out of range; `name` is the option, `reason` what is valid.
  case invalidValue(name: String, value: String, reason: String)
  /// A parameter file could not be read or does not fit; `reason` says why.
  case badParameterFile(path: String, reason: String)

  public var description: String {
    switch self {
    case .shapeMismatch(let context, let expected, let actual):
      return "\(context): expected shape \(expected), got \(actual)"
    case .badSequenceLength(let index, let length, let maxLength):
      return "sequence \(index) has length \(length); lengths must be in 0...\(maxLength)"
    case .nonFiniteGradient(let norm):
      return "gradient is not finite (global norm \(norm)); the update was skipped"
    case .invalidValue(let name, let value, let reason):
      return "\(name) = \(value) is invalid: \(reason)"
    case .badParameterFile(let path, let reason):
      return "parameter file \(path): \(reason)"
    }
  }
}

extension Tensor {
  /// Throws ``NNError/shapeMismatch(context:expected:actual:)`` unless the shape is `expected`.
  func require(_ expected: [Int], _ context: @autoclosure () -> String) throws {
    guard shape == expected else {
      throw NNError.shapeMismatch(context: context(), expected: expected, actual: shape)
    }
  }
}
