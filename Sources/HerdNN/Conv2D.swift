import CVector
import HerdMath

/// The shape of one image or feature map: height x width x channels, stored
/// channels last (NHWC: `[y][x][c]`, the channels of one pixel contiguous).
public struct ImageShape: Sendable, Equatable, Hashable, CustomStringConvertible {
  public let height: Int
  public let width: Int
  public let channels: Int

  public init(height: Int, width: Int, channels: Int) {
    self.height = height
    self.width = width
    self.channels = channels
  }

  /// Floats per image.
  public var count: Int { height * width * channels }

  /// "84x84x4".
  public var description: String { "\(height)x\(width)x\(channels)" }
}

/// What a convolution reads: floats as they are, or bytes (uint8 images) widened
/// and scaled on the way into its image buffer or lowered rows, so a first layer
/// over raw frames needs no float copy of the batch.
public protocol ConvPixel {
  /// `b[i] = a[i]` (floats: `scale` is 1) or `Float(a[i]) * scale` (bytes).
  static func lowerRun(_ a: UnsafePointer<Self>, scale: Float, to b: UnsafeMutablePointer<Float>, count: Int)
}

extension Float: ConvPixel {
  @inlinable
  public static func lowerRun(_ a: UnsafePointer<Float>, scale: Float, to b: UnsafeMutablePointer<Float>, count: Int) {
    Conv2D.copy(a, to: b, count: count)
  }
}

extension UInt8: ConvPixel {
  @inlinable
  public static func lowerRun(_ a: UnsafePointer<UInt8>, scale: Float, to b: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i &+ 16 <= count {
      herd_scale_bytes16(a + i, scale, b + i)
      i &+= 16
    }
    while i < count {
      b[i] = Float(a[i]) * scale
      i &+= 1
    }
  }
}

/// A 2-D convolution over images stored channels last (PyTorch's `nn.Conv2d` with
/// square kernels, one stride and symmetric zero padding).
///
/// Shapes: x `[n, H, W, C]`, weight `[outC, kH, kW, C]` (PyTorch's `[outC, C, kH, kW]`
/// with the channels moved last), bias `[outC]`, y `[n, OH, OW, outC]` with
/// `OH = (H + 2 pad - kH) / stride + 1` (floor, as PyTorch).
///
/// Channels last makes one output pixel's receptive field `kH` contiguous runs of
/// `kW * C` floats, so the lowering to a matrix product (im2col) is a few copies
/// per row and the product `cols [M, kH kW C] x W^T` writes the output in its
/// storage order with no transpose. The lowered rows are built a chunk at a time
/// (about a megabyte), never for the whole batch, and rebuilt by backward instead
/// of kept: a batch of 640 Atari frames would need 260 MB of them for the first
/// layer alone. In practice every layer but a pointwise one skips the lowering: its
/// products read the image where it lies (``runsDirect``, in Conv2D+Direct.swift);
/// the lowering stays as the reference path (`HERD_CONV_IM2COL=1`) and for the
/// adjoint that scatters the input gradient.
public struct Conv2D: Sendable, Equatable {
  /// Input image shape.
  public let input: ImageShape
  /// Output feature-map shape.
  public let output: ImageShape
  public let kernelHeight: Int
  public let kernelWidth: Int
  public let stride: Int
  public let padding: Int
  /// `[outC, kH, kW, C]`.
  public let weight: ParameterSlot
  /// `[outC]`.
  public let bias: ParameterSlot

  /// The output shape of a convolution, or nil when the kernel does not fit.
  public static func outputShape(
    input: ImageShape, outChannels: Int, kernel: (Int, Int), stride: Int, padding: Int
  ) -> ImageShape? {
    guard outChannels > 0, kernel.0 > 0, kernel.1 > 0, stride > 0, padding >= 0 else { return nil }
    let h = input.height + 2 * padding - kernel.0
    let w = input.width + 2 * padding - kernel.1
    guard h >= 0, w >= 0 else { return nil }
    return ImageShape(height: h / stride + 1, width: w / stride + 1, channels: outChannels)
  }

  /// Declares `name.weight` and `name.bias`, initialised as PyTorch's default: both
  /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C kH kW.
  public init(
    _ name: String, input: ImageShape, outChannels: Int, kernel: (Int, Int), stride: Int, padding: Int,
    layout: inout ParameterLayout
  ) {
    guard
      let out = Self.outputShape(
        input: input, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
    else {
      preconditionFailure(
        "Conv2D \(name): kernel \(kernel) stride \(stride) padding \(padding) does not fit \(input)")
    }
    self.input = input
    self.output = out
    kernelHeight = kernel.0
    kernelWidth = kernel.1
    self.stride = stride
    self.padding = padding
    let fanIn = input.channels * kernel.0 * kernel.1
    let bound = 1 / Float(fanIn).squareRoot()
    weight = layout.declare(
      "\(name).weight", shape: [outChannels, kernel.0, kernel.1, input.channels], initializer: .uniform(bound: bound))
    bias = layout.declare("\(name).bias", shape: [outChannels], initializer: .uniform(bound: bound))
  }

  /// Floats in one lowered row: `kH kW C`.
  public var patchSize: Int { kernelHeight * kernelWidth * input.channels }

  /// Multiply-adds per image.
  public var multiplyAddsPerImage: Int { output.height * output.width * output.channels * patchSize }

  /// A 1x1 kernel with stride 1 and no padding reads its input as the lowered rows.
  var isPointwise: Bool { kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0 }

  /// Output rows (pixels) per lowered chunk.
  var chunkRows: Int { max(1, Self.chunkFloats / patchSize) }

  /// Floats of lowered patches per chunk (about 256 KB: it stays in L2 beside the product).
  static let chunkFloats = 1 << 16

  /// Writes the lowered rows `m0 ..< m0 + count` (an output pixel each, over all
  /// images) into `cols` `[count, patchSize]`; padding reads as zero. Bytes are
  /// read as `Float(byte) * scale`; floats as they are (`scale` 1).
  @inlinable
  func lower<Pixel: ConvPixel>(
    _ x: UnsafePointer<Pixel>, scale: Float = 1, firstRow m0: Int, count: Int, into cols: UnsafeMutablePointer<Float>
  ) {
    let c = input.channels
    let runLength = kernelWidth &* c
    let pixels = output.height &* output.width
    var dst = cols
    for m in m0..<(m0 &+ count) {
      let image = m / pixels
      let pixel = m &- image &* pixels
      let oy = pixel / output.width
      let ox = pixel &- oy &* output.width
      let y0 = oy &* stride &- padding
      let x0 = ox &* stride &- padding
      let base = x + image &* input.count
      for ky in 0..<kernelHeight {
        let iy = y0 &+ ky
        if iy < 0 || iy >= input.height {
          dst.update(repeating: 0, count: runLength)
        } else {
          let row = base + iy &* input.width &* c
          if x0 >= 0 && x0 &+ kernelWidth <= input.width {
            Pixel.lowerRun(row + x0 &* c, scale: scale, to: dst, count: runLength)
          } else {
            for kx in 0..<kernelWidth {
              let ix = x0 &+ kx
              if ix < 0 || ix >= input.width {
                (dst + kx &* c).update(repeating: 0, count: c)
              } else {
                Pixel.lowerRun(row + ix &* c, scale: scale, to: dst + kx &* c, count: c)
              }
            }
          }
        }
        dst += runLength
      }
    }
  }

  /// The adjoint of ``lower``: adds lowered-row gradients `dcols` `[count, patchSize]`
  /// back into the input gradient `dx` (padding positions are dropped).
  @inlinable
  func raise(_ dcols: UnsafePointer<Float>, firstRow m0: Int, count: Int, into dx: UnsafeMutablePointer<Float>) {
    let c = input.channels
    let runLength = kernelWidth &* c
    let pixels = output.height &* output.width
    var src = dcols
    for m in m0..<(m0 &+ count) {
      let image = m / pixels
      let pixel = m &- image &* pixels
      let oy = pixel / output.width
      let ox = pixel &- oy &* output.width
      let y0 = oy &* stride &- padding
      let x0 = ox &* stride &- padding
      let base = dx + image &* input.count
      for ky in 0..<kernelHeight {
        let iy = y0 &+ ky
        if iy >= 0 && iy < input.height {
          let row = base + iy &* input.width &* c
          if x0 >= 0 && x0 &+ kernelWidth <= input.width {
            Self.add(src, into: row + x0 &* c, count: runLength)
          } else {
            for kx in 0..<kernelWidth {
              let ix = x0 &+ kx
              if ix >= 0 && ix < input.width { Self.add(src + kx &* c, into: row + ix &* c, count: c) }
            }
          }
        }
        src += runLength
      }
    }
  }

  /// A short copy inline: the runs im2col moves are 32-256 bytes, where a call to
  /// memmove costs as much as the copy (measured: 13% of `herd bench cnn`).
  @inlinable
  static func copy(_ a: UnsafePointer<Float>, to b: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i &+ 16 <= count {
      UnsafeMutableRawPointer(b + i).storeBytes(
        of: UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
      i &+= 16
    }
    while i &+ 4 <= count {
      UnsafeMutableRawPointer(b + i).storeBytes(
        of: UnsafeRawPointer(a + i).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
      i &+= 4
    }
    while i < count {
      b[i] = a[i]
      i &+= 1
    }
  }

  @inlinable
  static func add(_ a: UnsafePointer<Float>, into b: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i &+ 8 <= count {
      let v = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
        + UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
      UnsafeMutableRawPointer(b + i).storeBytes(of: v, as: SIMD8<Float>.self)
      i &+= 8
    }
    while i < count {
      b[i] += a[i]
      i &+= 1
    }
  }

  /// `y [n, OH, OW, outC] = conv(x [n, H, W, C]) + b`. `scratch` holds one chunk of
  /// lowered rows.
  public func forward(
    _ p: Parameters, x: UnsafePointer<Float>, images n: Int, y: UnsafeMutablePointer<Float>, scratch: ConvScratch
  ) {
    if isPointwise {
      let oc = output.channels
      let rows = n &* output.height &* output.width
      let b = p.value(bias)
      for r in 0..<rows { (y + r &* oc).update(from: b, count: oc) }
      BLAS.gemm(
        .none, .transposed, m: rows, n: oc, k: patchSize, a: x, lda: patchSize, b: p.value(weight), ldb: patchSize,
        beta: 1, c: y, ldc: oc)
      return
    }
    if runsDirect {
      forwardDirect(p, x: x, scale: 1, images: n, y: y, scratch: scratch)
      return
    }
    forwardLowered(p, x: x, scale: 1, images: n, y: y, scratch: scratch)
  }

  /// ``forward(_:x:images:y:scratch:)`` over uint8 images `x [n, H, W, C]`, each
  /// pixel read as `Float(byte) * scale` (one image widened at a time, or while
  /// lowering): the first layer over raw frames, with no float copy of the batch
  /// (any kernel, pointwise too).
  public func forward(
    _ p: Parameters, bytes x: UnsafePointer<UInt8>, scale: Float, images n: Int, y: UnsafeMutablePointer<Float>,
    scratch: ConvScratch
  ) {
    if runsDirect {
      forwardDirect(p, x: x, scale: scale, images: n, y: y, scratch: scratch)
      return
    }
    forwardLowered(p, x: x, scale: scale, images: n, y: y, scratch: scratch)
  }

  /// The forward through lowered chunks, for either pixel type.
  func forwardLowered<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, images n: Int, y: UnsafeMutablePointer<Float>,
    scratch: ConvScratch
  ) {
    let oc = output.channels
    let rows = n &* output.height &* output.width
    let b = p.value(bias)
    for r in 0..<rows { (y + r &* oc).update(from: b, count: oc) }
    let k = patchSize
    let chunk = min(chunkRows, max(rows, 1))
    let cols = scratch.cols.reserve(chunk &* k)
    var m0 = 0
    while m0 < rows {
      let count = min(chunk, rows &- m0)
      lower(x, scale: scale, firstRow: m0, count: count, into: cols)
      BLAS.gemm(
        .none, .transposed, m: count, n: oc, k: k, a: cols, lda: k, b: p.value(weight), ldb: k,
        beta: 1, c: y + m0 &* oc, ldc: oc)
      m0 &+= count
    }
  }

  /// ``backward(_:x:dy:images:dx:scratch:)`` of a forward over uint8 images: the
  /// parameter gradients only (a byte input has no gradient).
  public func backward(
    _ p: Parameters, bytes x: UnsafePointer<UInt8>, scale: Float, dy: UnsafePointer<Float>, images n: Int,
    scratch: ConvScratch
  ) {
    Kernels.columnSums(
      dy, rows: n &* output.height &* output.width, cols: output.channels, lda: output.channels, into: p.grad(bias),
      accumulate: true)
    if runsDirect {
      weightGradientDirect(p, x: x, scale: scale, dy: dy, images: n, scratch: scratch)
      return
    }
    backwardLowered(p, x: x, scale: scale, dy: dy, images: n, dx: nil, scratch: scratch)
  }

  /// Accumulates `dW += dy^T cols`, `db += sum dy`, and writes `dx` (the input
  /// gradient, overwritten) when asked. `x` is the forward input.
  ///
  /// With `through`, `x` is that activation's output and `dx` comes back through
  /// its backward as well (the gradient at the activation's input, the same bits as
  /// ``Activation/backward(output:gradOutput:gradInput:count:)`` after this call):
  /// on the direct paths each image's as soon as it is complete, while it is still
  /// in cache, instead of in a pass of its own over the batch's gradients in memory.
  public func backward(
    _ p: Parameters, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, images n: Int,
    dx: UnsafeMutablePointer<Float>?, scratch: ConvScratch, through: Activation? = nil
  ) {
    let oc = output.channels
    let rows = n &* output.height &* output.width
    let k = patchSize
    Kernels.columnSums(dy, rows: rows, cols: oc, lda: oc, into: p.grad(bias), accumulate: true)
    if isPointwise {
      BLAS.gemm(
        .transposed, .none, m: oc, n: k, k: rows, a: dy, lda: oc, b: x, ldb: k, beta: 1, c: p.grad(weight), ldc: k)
      if let dx {
        BLAS.gemm(
          .none, .none, m: rows, n: k, k: oc, a: dy, lda: oc, b: p.value(weight), ldb: k, beta: 0, c: dx, ldc: k)
        through?.backward(output: x, gradOutput: dx, gradInput: dx, count: n &* input.count)
      }
      return
    }
    if runsDirect {
      weightGradientDirect(p, x: x, scale: 1, dy: dy, images: n, scratch: scratch)
      if let dx {
        if inputGradientRunsDirect {
          inputGradientDirect(p, dy: dy, images: n, dx: dx, scratch: scratch, x: x, through: through)
        } else {
          inputGradientRaised(p, dy: dy, images: n, dx: dx, scratch: scratch, x: x, through: through)
        }
      }
      return
    }
    backwardLowered(p, x: x, scale: 1, dy: dy, images: n, dx: dx, scratch: scratch)
    if let dx { through?.backward(output: x, gradOutput: dx, gradInput: dx, count: n &* input.count) }
  }

  /// The weight gradient (and `dx` when asked) through lowered chunks, for either
  /// pixel type; the bias gradient is the caller's.
  func backwardLowered<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, dy: UnsafePointer<Float>, images n: Int,
    dx: UnsafeMutablePointer<Float>?, scratch: ConvScratch
  ) {
    let oc = output.channels
    let rows = n &* output.height &* output.width
    let k = patchSize
    if let dx { dx.update(repeating: 0, count: n &* input.count) }
    let chunk = min(chunkRows, max(rows, 1))
    let cols = scratch.cols.reserve(chunk &* k)
    let dcols = dx == nil ? cols : scratch.gradCols.reserve(chunk &* k)
    var m0 = 0
    while m0 < rows {
      let count = min(chunk, rows &- m0)
      let dyc = dy + m0 &* oc
      lower(x, scale: scale, firstRow: m0, count: count, into: cols)
      BLAS.gemm(
        .transposed, .none, m: oc, n: k, k: count, a: dyc, lda: oc, b: cols, ldb: k,
        beta: 1, c: p.grad(weight), ldc: k)
      if let dx {
        BLAS.gemm(
          .none, .none, m: count, n: k, k: oc, a: dyc, lda: oc, b: p.value(weight), ldb: k,
          beta: 0, c: dcols, ldc: k)
        raise(dcols, firstRow: m0, count: count, into: dx)
      }
      m0 &+= count
    }
  }
}

/// Scratch of a ``Conv2D``: a chunk of lowered rows (or one image widened or
/// padded for the direct path) and of their gradients (or the weight gradient's
/// accumulator), and the packings the direct path multiplies by.
public final class ConvScratch {
  let cols = FloatBuffer()
  let gradCols = FloatBuffer()
  /// The packed weights, kept apart for narrow and wide layers so that a stack
  /// mixing both (impala_shallow: 16 then 32 channels) reuses them.
  private lazy var wideWeights = PackedMatrix(isa: isa)
  private lazy var narrowWeights = PackedMatrix(isa: isa, narrow: true)
  /// An image's output gradient, packed as the right-hand side of the weight
  /// gradient.
  private lazy var wideGradient = PackedMatrix(isa: isa)
  private lazy var narrowGradient = PackedMatrix(isa: isa, narrow: true)
  /// The right-hand side of the input gradient: `W [outC, kH kW C]` as it is stored
  /// for `raise(dy W)`, or flipped to `[(ky, kx, o), C]` for the direct path.
  private lazy var wideInputGradient = PackedMatrix(isa: isa)
  private lazy var narrowInputGradient = PackedMatrix(isa: isa, narrow: true)
  /// The flipped weights of the direct input gradient, and one image's output
  /// gradient inside its zero border.
  let flippedWeights = FloatBuffer()
  let paddedGradient = FloatBuffer()

  /// The kernel the direct path's products run on.
  public let isa: KernelISA

  /// Scratch whose products run on `isa` (default: the preferred kernel; tests run
  /// every kernel).
  public init(isa: KernelISA = .preferred) { self.isa = isa }

  /// The packing of a layer's weights, narrow when it has at most 16 output channels.
  func weightPack(narrow: Bool) -> PackedMatrix { narrow ? narrowWeights : wideWeights }

  /// The packing of an output gradient, narrow when it has at most 16 channels.
  func gradientPack(narrow: Bool) -> PackedMatrix { narrow ? narrowGradient : wideGradient }

  /// The packing of the input gradient's right-hand side, narrow when it has at most
  /// 16 columns.
  func inputGradientPack(narrow: Bool) -> PackedMatrix { narrow ? narrowInputGradient : wideInputGradient }
}
