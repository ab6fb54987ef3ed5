import Foundation

/// Textbook LSTM and GRU in Double precision, one sequence and one step at a time,
/// straight from the equations (PyTorch's formulation). Slow and obvious on purpose:
/// the batched, packed Float32 layers are checked against it.
public enum ReferenceRNN {
  /// Weights as plain row-major arrays (Double).
  public struct Weights {
    public var wih: [Double]  // [G*H, I]
    public var whh: [Double]  // [G*H, H]
    public var bih: [Double]
    public var bhh: [Double]
    public init(wih: [Float], whh: [Float], bih: [Float], bhh: [Float]) {
      self.wih = wih.map(Double.init)
      self.whh = whh.map(Double.init)
      self.bih = bih.map(Double.init)
      self.bhh = bhh.map(Double.init)
    }
  }

  static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

  /// `W v` for `W [rows, cols]`.
  static func matvec(_ w: [Double], _ v: [Double], rows: Int, cols: Int) -> [Double] {
    (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + w[r * cols + $1] * v[$1] } }
  }

  /// Runs one sequence `xs[t][I]` from `(h, c)`; returns every h_t and the final state.
  public static func lstm(
    _ w: Weights, xs: [[Double]], h0: [Double], c0: [Double], hidden hs: Int
  ) -> (outputs: [[Double]], h: [Double], c: [Double]) {
    var h = h0
    var c = c0
    var outs: [[Double]] = []
    let inp = xs.first?.count ?? 0
    for x in xs {
      let gx = matvec(w.wih, x, rows: 4 * hs, cols: inp)
      let gh = matvec(w.whh, h, rows: 4 * hs, cols: hs)
      var hn = [Double](repeating: 0, count: hs)
      var cn = [Double](repeating: 0, count: hs)
      for k in 0..<hs {
        func pre(_ gate: Int) -> Double {
          gx[gate * hs + k] + w.bih[gate * hs + k] + gh[gate * hs + k] + w.bhh[gate * hs + k]
        }
        let i = sigmoid(pre(0))
        let f = sigmoid(pre(1))
        let g = tanh(pre(2))
        let o = sigmoid(pre(3))
        cn[k] = f * c[k] + i * g
        hn[k] = o * tanh(cn[k])
      }
      h = hn
      c = cn
      outs.append(h)
    }
    return (outs, h, c)
  }

  /// Runs one sequence through a GRU from `h`; returns every h_t.
  public static func gru(
    _ w: Weights, xs: [[Double]], h0: [Double], hidden hs: Int
  ) -> (outputs: [[Double]], h: [Double]) {
    var h = h0
    var outs: [[Double]] = []
    let inp = xs.first?.count ?? 0
    for x in xs {
      let gx = matvec(w.wih, x, rows: 3 * hs, cols: inp)
      let gh = matvec(w.whh, h, rows: 3 * hs, cols: hs)
      var hn = [Double](repeating: 0, count: hs)
      for k in 0..<hs {
        let r = sigmoid(gx[k] + w.bih[k] + gh[k] + w.bhh[k])
        let z = sigmoid(gx[hs + k] + w.bih[hs + k] + gh[hs + k] + w.bhh[hs + k])
        let n = tanh(gx[2 * hs + k] + w.bih[2 * hs + k] + r * (gh[2 * hs + k] + w.bhh[2 * hs + k]))
        hn[k] = (1 - z) * n + z * h[k]
      }
      h = hn
      outs.append(h)
    }
    return (outs, h)
  }
}
