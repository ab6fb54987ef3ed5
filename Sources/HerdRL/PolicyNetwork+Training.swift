import HerdMath
import HerdNN

/// Learner-side workspaces of a ``PolicyNetwork``, reused across batches.
///
/// The batch's sequences run packed (``PackedSequences``) with lengths `n_i + 1`:
/// each fragment's steps plus its bootstrap step, whose value bootstraps V-trace
/// and whose outputs get no gradient.
public final class TrainingWorkspace {
  /// Packing of the last forward (lengths n_i + 1 over T + 1).
  public internal(set) var packing: PackedSequences?
  let convolution = ConvNetCache()
  let encoder = MLPCache()
  let core = RecurrentCache()
  let obs = FloatBuffer()  // [P, F]
  /// `[P, F]` uint8 images in packed order, when the first convolution reads them
  /// itself (``usedBytes``); `obs` is then not filled.
  var obsBytes: [UInt8] = []
  /// Whether the last forward fed the convolutions bytes.
  var usedBytes = false
  var prevActionStore: [Int32] = []
  var prevActionValueStore: [Float] = []
  var prevRewardStore: [Float] = []
  let coreInput = FloatBuffer()  // [P, coreIn]
  let h0 = FloatBuffer()  // [N, H]
  let c0 = FloatBuffer()  // [N, H]
  /// Packed logits `[P, A]`.
  public let logits = FloatBuffer()
  /// Packed values `[P]`.
  public let values = FloatBuffer()
  /// Packed log pi(.|x) `[P, A]`: the log-softmax of `logits`, computed once by the
  /// forward and read by V-trace and the loss.
  public let logProbs = FloatBuffer()
  /// Gradient of the loss w.r.t. the logits `[P, A]` (set by the loss).
  public let gradLogits = FloatBuffer()
  /// Gradient of the loss w.r.t. the values `[P]` (set by the loss).
  public let gradValues = FloatBuffer()
  let gradHead = FloatBuffer()  // [P, D] (free log std: the mean columns of gradLogits)
  let gradFeatures = FloatBuffer()  // [P, H]
  let gradCoreInput = FloatBuffer()  // [P, coreIn]
  let gradEncoder = FloatBuffer()  // [P, Z]
  let gradConvolution = FloatBuffer()  // [P, conv output]
  // The value's own tower (vf_share_layers = false).
  let valueEncoder = MLPCache()
  let valueCore = RecurrentCache()
  let valueCoreInput = FloatBuffer()  // [P, coreIn]
  let valueH0 = FloatBuffer()  // [N, H]
  let valueC0 = FloatBuffer()  // [N, H]
  let gradValueFeatures = FloatBuffer()  // [P, H]
  let gradValueCoreInput = FloatBuffer()  // [P, coreIn]
  let gradValueEncoder = FloatBuffer()  // [P, Z]
  // The post layers between the cores and the heads (post_fcnet_hiddens).
  let post = MLPCache()
  let valuePost = MLPCache()
  let gradHeadInput = FloatBuffer()  // [P, U] with post layers
  let gradValueHeadInput = FloatBuffer()  // [P, U] with the value's own post layers
  /// What the heads read in the last forward: the post layers' outputs, or the
  /// cores' (inside `core`, `post` and their value twins).
  var headInput = UnsafePointer<Float>(bitPattern: 8).unsafelyUnwrapped
  var valueHeadInput = UnsafePointer<Float>(bitPattern: 8).unsafelyUnwrapped
  /// The convolutional stack's output of the last forward (inside `convolution`).
  var convolutionOutput = UnsafePointer<Float>(bitPattern: 8).unsafelyUnwrapped

  /// Empty workspaces.
  public init() {}

  /// Packed rows P of the last forward.
  public var rows: Int { packing?.rowCount ?? 0 }
}

extension PolicyNetwork {
  /// Forward over a batch: logits and values for every packed row (all valid steps
  /// and each fragment's bootstrap step), kept in `ws` for the loss and backward.
  public func forward(_ p: Parameters, batch: Batch, ws: TrainingWorkspace) throws {
    let lens = batch.seqLens.map { $0 + 1 }
    let packing = try PackedSequences(seqLens: lens, maxLength: batch.maxLength + 1)
    ws.packing = packing
    let rows = packing.rowCount
    // Inputs in packed order. uint8 images stay bytes when the first convolution
    // reads them (it widens and scales each image as it reads it); otherwise they are
    // widened and scaled as the encoder reads them, in the same pass. The encoder's
    // backward reads its input from here.
    let filterHere = !batch.observationsFiltered && filterMean != nil
    let scale = filterHere ? 1 : (convPlan?.inputScale ?? 1)
    let stride = (batch.maxLength + 1) &* observationSize
    ws.usedBytes = batch.obs.isBytes && !filterHere && convolution?.readsBytes == true
    var obs = UnsafeMutablePointer<Float>(bitPattern: 8).unsafelyUnwrapped
    if ws.usedBytes {
      ws.obsBytes.removeAll(keepingCapacity: true)
      ws.obsBytes.append(contentsOf: repeatElement(0, count: rows &* observationSize))
      ws.obsBytes.withUnsafeMutableBufferPointer { b in
        let out = b.baseAddress.unsafelyUnwrapped
        for i in 0..<batch.sequences {
          for t in 0..<lens[i] {
            batch.obs.copyBytes(
              from: i &* stride &+ t &* observationSize, count: observationSize,
              into: out + packing.row(sequence: i, time: t) &* observationSize)
          }
        }
      }
    } else {
      obs = ws.obs.reserve(rows &* observationSize)
      for i in 0..<batch.sequences {
        for t in 0..<lens[i] {
          batch.obs.widen(
            from: i &* stride &+ t &* observationSize, count: observationSize, scale: scale,
            into: obs + packing.row(sequence: i, time: t) &* observationSize)
        }
      }
      if filterHere { _ = filter(p, obs: obs, rows: rows, into: obs) }
    }
    // Reused across batches: no allocation once the sizes have been seen.
    ws.prevActionStore.removeAll(keepingCapacity: true)
    ws.prevActionStore.append(contentsOf: repeatElement(0, count: rows))
    ws.prevRewardStore.removeAll(keepingCapacity: true)
    ws.prevRewardStore.append(contentsOf: repeatElement(0, count: rows))
    let d = usePrevAction ? actionLow.count : 0
    ws.prevActionValueStore.removeAll(keepingCapacity: true)
    ws.prevActionValueStore.append(contentsOf: repeatElement(0, count: rows * d))
    for i in 0..<batch.sequences {
      for t in 0..<lens[i] {
        let r = packing.row(sequence: i, time: t)
        ws.prevActionStore[r] = batch.prevActions[i * (batch.maxLength + 1) + t]
        ws.prevRewardStore[r] = batch.prevRewards[i * (batch.maxLength + 1) + t]
        let src = (i * (batch.maxLength + 1) + t) * d
        for j in 0..<d { ws.prevActionValueStore[r * d + j] = batch.prevActionValues[src + j] }
      }
    }
    // Encoder -> core input.
    let encoderInput: UnsafePointer<Float>
    if let convolution, ws.usedBytes {
      encoderInput = ws.obsBytes.withUnsafeBufferPointer {
        convolution.forward(p, bytes: $0.baseAddress.unsafelyUnwrapped, scale: scale, images: rows, cache: ws.convolution)
      }
    } else {
      encoderInput = convolution?.forward(p, x: obs, images: rows, cache: ws.convolution) ?? UnsafePointer(obs)
    }
    ws.convolutionOutput = encoderInput
    let z = encoder.forward(p, x: encoderInput, rows: rows, cache: ws.encoder)
    // Core over each sequence from its stored state (a constant).
    let features = towerForward(
      core, p, z: z, into: ws.coreInput, batch: batch, packing: packing, column: 0, h0: ws.h0, c0: ws.c0,
      cache: ws.core, ws: ws)
    let headInput = post.forward(p, x: features, rows: rows, cache: ws.post)
    ws.headInput = headInput
    let logits = ws.logits.reserve(rows &* actionCount)
    policyHead.forward(p, x: headInput, rows: rows, y: logits)
    spreadFreeLogStd(p, logits, rows: rows)
    if let actionMask {
      // The mask's entries pass the filter unchanged (the learner pins them).
      precondition(!ws.usedBytes, "action masks are read from float observations")
      ActionMask.apply(logits, observations: obs, features: observationSize, entries: actionMask, rows: rows)
    }
    let logProbs = ws.logProbs.reserve(rows &* actionCount)
    if distribution.isContinuous {
      // The Gaussian's log-probabilities are of the actions taken: the loss computes them.
    } else if heads.count == 1 {
      Kernels.logSoftmax(logits, logProbs, rows: rows, cols: actionCount)
    } else {
      // Each head is its own distribution.
      for r in 0..<rows {
        for h in 0..<heads.count {
          let o = r &* actionCount &+ heads.offsets[h]
          Kernels.logSoftmax(logits + o, logProbs + o, rows: 1, cols: heads.sizes[h])
        }
      }
    }
    guard let valueEncoder, let valuePost else {
      ws.valueHeadInput = headInput
      valueHead.forward(p, x: headInput, rows: rows, y: ws.values.reserve(rows))
      return
    }
    // The value's own encoder and core, over the same inputs and its columns of the states.
    let zv = valueEncoder.forward(p, x: obs, rows: rows, cache: ws.valueEncoder)
    let valueFeatures = towerForward(
      valueCore, p, z: zv, into: ws.valueCoreInput, batch: batch, packing: packing, column: core?.hiddenSize ?? 0,
      h0: ws.valueH0, c0: ws.valueC0, cache: ws.valueCore, ws: ws)
    let valueHeadInput = valuePost.forward(p, x: valueFeatures, rows: rows, cache: ws.valuePost)
    ws.valueHeadInput = valueHeadInput
    valueHead.forward(p, x: valueHeadInput, rows: rows, y: ws.values.reserve(rows))
  }

  /// Writes a tower's core input `[z ; extras]` (packed rows) into `input` and runs
  /// `core` over the packed batch from its columns `[column, column + H)` of each
  /// sequence's stored `h` and `c` (``stateWidth`` each). Returns the features the
  /// head reads: `[P, H]`, or the core input without a core.
  func towerForward(
    _ core: (any RecurrentLayer)?, _ p: Parameters, z: UnsafePointer<Float>, into input: FloatBuffer, batch: Batch,
    packing: PackedSequences, column: Int, h0 hBuffer: FloatBuffer, c0 cBuffer: FloatBuffer, cache: RecurrentCache,
    ws: TrainingWorkspace
  ) -> UnsafePointer<Float> {
    let rows = packing.rowCount
    let x = input.reserve(rows &* coreInputSize)
    ws.prevActionStore.withUnsafeBufferPointer { pa in
      ws.prevActionValueStore.withUnsafeBufferPointer { pav in
        ws.prevRewardStore.withPointer { pr in
          assembleCoreInput(
            z: z, prevActions: pa.baseAddress.unsafelyUnwrapped, prevActionValues: pav.isEmpty ? nil : pav.baseAddress,
            prevRewards: pr, rows: rows, into: x)
        }
      }
    }
    guard let core else { return UnsafePointer(x) }
    let hs = core.hiddenSize
    let w = stateWidth
    let h0 = hBuffer.reserve(batch.sequences &* hs)
    let c0 = cBuffer.reserve(batch.sequences &* hs)
    batch.stateIn.withUnsafeBufferPointer { state in
      for i in 0..<batch.sequences {
        let row = state.baseAddress.unsafelyUnwrapped + (i &* stateSize &+ column)
        (h0 + i &* hs).update(from: row, count: hs)
        if core.stateCount == 2 { (c0 + i &* hs).update(from: row + w, count: hs) }
      }
    }
    return core.forward(p, x: x, packing: packing, h0: h0, c0: c0, cache: cache)
  }

  /// Backpropagates `dF` (`[P, features]`) through `core` (nil: the features are
  /// the core input) and returns the gradient of the encoder's output `[P, Z]`
  /// (the z columns of the core input's), or nil when no encoder layer needs it
  /// (`encoder` without layers, and no convolutions).
  func towerBackward(
    _ core: (any RecurrentLayer)?, _ encoder: MLP, _ p: Parameters, dF: UnsafeMutablePointer<Float>, rows: Int,
    coreInput: FloatBuffer, coreCache: RecurrentCache, gradCoreInput: FloatBuffer, gradEncoder: FloatBuffer
  ) -> UnsafePointer<Float>? {
    let ci = coreInputSize
    let dX: UnsafePointer<Float>
    if let core {
      let g = gradCoreInput.reserve(rows &* ci)
      core.backward(p, x: coreInput.pointer, dH: dF, cache: coreCache, dx: g, dh0: nil, dc0: nil)
      dX = UnsafePointer(g)
    } else {
      dX = UnsafePointer(dF)
    }
    guard convolution != nil || !encoder.layers.isEmpty else { return nil }
    let zs = encoder.outFeatures
    let dZ = gradEncoder.reserve(rows &* zs)
    for r in 0..<rows { (dZ + r &* zs).update(from: dX + r &* ci, count: zs) }
    return UnsafePointer(dZ)
  }

  /// Backward from `ws.gradLogits` and `ws.gradValues` (set by the loss) to every
  /// parameter; accumulates into `p.grads`.
  public func backward(_ p: Parameters, ws: TrainingWorkspace) {
    guard let packing = ws.packing else { preconditionFailure("backward before forward") }
    let rows = packing.rowCount
    let fs = featureSize
    let features: UnsafePointer<Float> = core != nil ? ws.core.outputs : UnsafePointer(ws.coreInput.pointer)
    // Heads, into the gradient of their input: the core's output's, or the post
    // layers' output's first.
    let dF = ws.gradFeatures.reserve(rows &* fs)
    let dU = post.layers.isEmpty ? dF : ws.gradHeadInput.reserve(rows &* headInputSize)
    if let actionMask {
      ActionMask.zeroGradient(
        ws.gradLogits.pointer, observations: ws.obs.pointer, features: observationSize, entries: actionMask, rows: rows)
    }
    var dHead = UnsafePointer(ws.gradLogits.pointer)
    if let logStd {
      // The mean columns go to the head; the log std columns sum into pi.log_std.
      let d = logStd.count
      let g = ws.gradHead.reserve(rows &* d)
      let gl = p.grad(logStd)
      let src = ws.gradLogits.pointer
      for r in 0..<rows {
        (g + r &* d).update(from: src + r &* 2 &* d, count: d)
        for j in 0..<d { gl[j] += src[r &* 2 &* d &+ d &+ j] }
      }
      dHead = UnsafePointer(g)
    }
    policyHead.backward(p, x: ws.headInput, dy: dHead, rows: rows, dx: dU)
    if let valueEncoder, let valuePost {
      // The value's own tower: its head, post layers, core and encoder.
      let valueFeatures: UnsafePointer<Float> =
        valueCore != nil ? ws.valueCore.outputs : UnsafePointer(ws.valueCoreInput.pointer)
      let dFv = ws.gradValueFeatures.reserve(rows &* fs)
      let dUv = valuePost.layers.isEmpty ? dFv : ws.gradValueHeadInput.reserve(rows &* headInputSize)
      valueHead.backward(p, x: ws.valueHeadInput, dy: ws.gradValues.pointer, rows: rows, dx: dUv)
      if !valuePost.layers.isEmpty { valuePost.backward(p, x: valueFeatures, dy: dUv, cache: ws.valuePost, dx: dFv) }
      if let dZv = towerBackward(
        valueCore, valueEncoder, p, dF: dFv, rows: rows, coreInput: ws.valueCoreInput, coreCache: ws.valueCore,
        gradCoreInput: ws.gradValueCoreInput, gradEncoder: ws.gradValueEncoder)
      {
        valueEncoder.backward(p, x: ws.obs.pointer, dy: dZv, cache: ws.valueEncoder, dx: nil)
      }
    } else {
      valueHead.backward(p, x: ws.headInput, dy: ws.gradValues.pointer, rows: rows, dx: dU, accumulateInput: true)
    }
    if !post.layers.isEmpty { post.backward(p, x: features, dy: dU, cache: ws.post, dx: dF) }
    // Core (BPTT within each fragment), then the encoder's share of its input's gradient.
    guard
      let dZ = towerBackward(
        core, encoder, p, dF: dF, rows: rows, coreInput: ws.coreInput, coreCache: ws.core,
        gradCoreInput: ws.gradCoreInput, gradEncoder: ws.gradEncoder)
    else { return }
    guard let convolution else {
      encoder.backward(p, x: ws.obs.pointer, dy: dZ, cache: ws.encoder, dx: nil)
      return
    }
    // The fully connected layers, then the convolutions (from their flat output's gradient).
    let convOut = convolution.output.count
    let dC = ws.gradConvolution.reserve(rows &* convOut)
    encoder.backward(p, x: ws.convolutionOutput, dy: dZ, cache: ws.encoder, dx: dC)
    if ws.usedBytes {
      let scale = convPlan?.inputScale ?? 1
      ws.obsBytes.withUnsafeBufferPointer {
        convolution.backward(p, bytes: $0.baseAddress.unsafelyUnwrapped, scale: scale, dy: dC, cache: ws.convolution)
      }
    } else {
      convolution.backward(p, x: ws.obs.pointer, dy: dC, cache: ws.convolution, dx: nil)
    }
  }
}
