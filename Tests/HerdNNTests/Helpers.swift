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
