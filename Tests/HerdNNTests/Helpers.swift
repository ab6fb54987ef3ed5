import HerdMath
import HerdNN
import HerdTestSupport
import Testing

enum CellKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case lstm, gru
  var testDescription: String { rawValue }
}

/// A recurrent layer with PyTorch-default-initialised parameters.
func makeRecurrent(_ kind: CellKind, input: Int, hidden: Int, seed: UInt64) -> (any RecurrentLayer, Parameters) {
  var layout = ParameterLayout()
  let layer: any RecurrentLayer =
    kind == .lstm
    ? LSTM("rnn", inputSize: input, hiddenSize: hidden, layout: &layout)
    : GRU("rnn", inputSize: input, hiddenSize: hidden, layout: &layout)
  var rng = SeededGenerator(seed: seed)
  return (layer, Parameters(layout: layout, rng: &rng))
}

/// Zeroes `x[i, t, :]` for `t >= seqLens[i]` of a `[N, T, F]` tensor.
func maskPadding(_ x: inout Tensor, seqLens: [Int]) {
  let (n, steps, f) = (x.shape[0], x.shape[1], x.shape[2])
  for i in 0..<n { for t in seqLens[i]..<steps { for k in 0..<f { x[i, t, k] = 0 } } }
}

/// Central finite difference of `loss` w.r.t. `values[index]` (a pointer into live
/// parameter or input storage), restoring the value afterwards.
func numericDerivative(
  _ target: UnsafeMutablePointer<Float>, eps: Float = 1e-2, _ loss: () throws -> Double
) rethrows -> Double {
  let saved = target.pointee
  target.pointee = saved + eps
  let plus = try loss()
  target.pointee = saved - eps
  let minus = try loss()
  target.pointee = saved
  return (plus - minus) / Double(2 * eps)
}

/// `sum(w * y)` in Double.
func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
  zip(y, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

/// True when an analytic derivative agrees with a finite difference (Float32 forward).
func gradientAgrees(_ analytic: Float, _ numeric: Double) -> Bool {
  abs(Double(analytic) - numeric) <= 2e-3 + 2e-2 * abs(numeric)
}
