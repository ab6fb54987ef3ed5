#if canImport(Glibc)
  import Glibc
#endif
import HerdMath

/// A convolution runs directly on its input image: output pixel `(oy, ox)` reads
/// kernel row `ky` as the `kW C` floats starting at pixel `(oy s + ky, ox s)` of the
/// (padded) image, and the product kernels take that addressing as it is
/// (``GridLayout``): no lowered rows, no copy of the image rearranged, and every
/// row of the product a real output pixel.
///
/// - Forward: `y [OH OW, outC] = A W^T + b` per image, A's rows the output pixels
///   (a group per output row, `s C` floats apart within it) and its elements the
///   kernel's `(ky, kx, c)`, one kernel row (`kW C` floats) per segment, an image
///   row apart. `W [outC, kH kW C]` is packed as it is stored.
/// - Weight gradient: `dW^T [kH kW C, outC] += A^T dy` per image, read the other way
///   round: rows `(ky, kx, c)` (a group per kernel row), elements the output pixels
///   (a segment per output row, `s C` floats apart within it).
/// - Input gradient: with stride 1, a convolution of `dy` padded by `k - 1 - p`
///   with the weights flipped (``inputGradientDirect(_:dy:images:dx:scratch:x:through:)``);
///   with a larger stride, the adjoint of the lowering (`raise`) of `dy W`, `dy W`
///   on the packed kernels with `W` packed as it is stored.
///
/// Float images with no padding are read where they lie. Bytes are widened and
/// scaled, and a padded image copied inside a zero border, one image at a time
/// into a buffer that stays in cache while the products read it.
///
/// Why: the space-to-depth copy this replaced read each 84x84x4 float frame
/// (113 KB) from memory twice outside the products, and its virtual rows computed
/// 441 output pixels for 400 real ones (8x8/4) or 86 per 84 (3x3/1, padding 1).
/// Here the products read the image themselves and hide the memory behind the
/// arithmetic: 6-8% on each whole encoder (docs/benchmarks.md).
extension Conv2D {
  /// Whether the layer runs directly on its input (see the extension's comment):
  /// every kernel but the pointwise one (a plain product on floats, lowered rows on
  /// bytes). `HERD_CONV_IM2COL=1` turns it off, for benchmarks beside the lowering.
  public var runsDirect: Bool { Self.directEnabled && !isPointwise }

  static let directEnabled: Bool = {
    guard let v = getenv("HERD_CONV_IM2COL") else { return true }
    let s = String(cString: v)
    return s.isEmpty || s == "0"
  }()

  /// A of the forward: rows are one image's output pixels, elements `(ky, kx, c)`.
  var forwardGrid: GridLayout {
    let c = input.channels
    return GridLayout(
      rowsPerGroup: output.width, groupStride: stride &* paddedRow, rowStride: stride &* c,
      segment: kernelWidth &* c, segmentStride: paddedRow, step: 1)
  }

  /// A of the weight gradient: rows are `(ky, kx, c)`, elements one image's output
  /// pixels.
  var weightGradientGrid: GridLayout {
    let c = input.channels
    return GridLayout(
      rowsPerGroup: kernelWidth &* c, groupStride: paddedRow, rowStride: 1,
      segment: output.width, segmentStride: stride &* paddedRow, step: stride &* c)
  }

  /// Image `i` of `x` as floats: in place for floats; bytes widened and scaled into
  /// `buffer` (one image, which stays in cache for the products that read it).
  @inline(__always)
  func image<Pixel: ConvPixel>(
    _ i: Int, of x: UnsafePointer<Pixel>, scale: Float, buffer: FloatBuffer
  ) -> UnsafePointer<Float> {
    let source = x + i &* input.count
    if padding == 0 {
      if Pixel.self == Float.self {
        return UnsafeRawPointer(source).assumingMemoryBound(to: Float.self)
      }
      let floats = buffer.reserve(input.count)
      Pixel.lowerRun(source, scale: scale, to: floats, count: input.count)
      return UnsafePointer(floats)
    }
    let run = input.width &* input.channels
    return Self.bordered(
      height: input.height, width: input.width, channels: input.channels, rows: padding, columns: padding,
      buffer: buffer
    ) { y, dst in Pixel.lowerRun(source + y &* run, scale: scale, to: dst, count: run) }
  }

  /// An image `[height, width, channels]` copied row by row (`copyRow(y, into)`) into
  /// `buffer`, inside a zero border of `rows` rows and `columns` columns each side.
  @inline(__always)
  static func bordered(
    height: Int, width: Int, channels c: Int, rows by: Int, columns bx: Int, buffer: FloatBuffer,
    _ copyRow: (_ y: Int, _ into: UnsafeMutablePointer<Float>) -> Void
  ) -> UnsafePointer<Float> {
    let run = width &* c
    let side = bx &* c
    let row = run &+ 2 &* side
    let floats = buffer.reserve(row &* (height &+ 2 &* by))
    floats.update(repeating: 0, count: by &* row)
    var dst = floats + by &* row
    for y in 0..<height {
      dst.update(repeating: 0, count: side)
      copyRow(y, dst + side)
      (dst + (side &+ run)).update(repeating: 0, count: side)
      dst += row
    }
    dst.update(repeating: 0, count: by &* row)
    return UnsafePointer(floats)
  }

  /// Floats per row of the image the products read (padded).
  var paddedRow: Int { (input.width &+ 2 &* padding) &* input.channels }

  /// `y [n, OH, OW, outC]`, each element's chain starting from its bias.
  func forwardDirect<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, images n: Int, y: UnsafeMutablePointer<Float>,
    scratch: ConvScratch
  ) {
    guard n > 0 else { return }
    let oc = output.channels
    let k = patchSize
    let packed = scratch.weightPack(narrow: oc <= 16)
    packed.pack(p.value(weight), ld: k, transposed: true, k: k, n: oc)
    let b = p.value(bias)
    let pixels = output.height &* output.width
    let grid = forwardGrid
    for image in 0..<n {
      let out = y + image &* pixels &* oc
      for r in 0..<pixels { (out + r &* oc).update(from: b, count: oc) }
      let a = self.image(image, of: x, scale: scale, buffer: scratch.cols)
      packed.multiply(grid: a, layout: grid, rows: pixels, into: out, ldc: oc, accumulate: true)
    }
  }

  /// Accumulates the weight gradient (the bias gradient is the caller's).
  func weightGradientDirect<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, dy: UnsafePointer<Float>, images n: Int,
    scratch: ConvScratch
  ) {
    guard n > 0 else { return }
    let oc = output.channels
    let k = patchSize
    let pixels = output.height &* output.width
    let dyPack = scratch.gradientPack(narrow: oc <= 16)
    let acc = scratch.gradCols.zeroed(k &* oc)  // dW^T [kH kW C, outC]
    let grid = weightGradientGrid
    for image in 0..<n {
      dyPack.pack(dy + image &* pixels &* oc, ld: oc, transposed: false, k: pixels, n: oc)
      let a = self.image(image, of: x, scale: scale, buffer: scratch.cols)
      dyPack.multiply(grid: a, layout: grid, rows: k, into: acc, ldc: oc, accumulate: true)
    }
    let g = p.grad(weight)
    for i in 0..<k {
      let row = acc + i &* oc
      for o in 0..<oc { g[o &* k &+ i] += row[o] }
    }
  }

  /// Whether the input gradient runs as a convolution of the padded output gradient
  /// (``inputGradientDirect(_:dy:images:dx:scratch:x:through:)``): stride 1, and padding
  /// below the kernel in both directions.
  var inputGradientRunsDirect: Bool { stride == 1 && padding < kernelHeight && padding < kernelWidth }

  /// A of the direct input gradient: rows are one image's input pixels (a group per
  /// input row, `outC` floats apart), elements `(ky, kx, o)` of the output gradient
  /// padded by `kH - 1 - p` rows and `kW - 1 - p` columns each side.
  var inputGradientGrid: GridLayout {
    let oc = output.channels
    let row = (output.width &+ 2 &* (kernelWidth &- 1 &- padding)) &* oc
    return GridLayout(
      rowsPerGroup: input.width, groupStride: row, rowStride: oc, segment: kernelWidth &* oc, segmentStride: row,
      step: 1)
  }

  /// The input gradient of a stride-1 convolution as a convolution itself: with
  /// `dy` padded by `q = k - 1 - p` each side, `dx [y, x, c] = sum over (ky, kx, o)
  /// of dy_pad [y + ky, x + kx, o] W [o, kH-1-ky, kW-1-kx, c]`: the forward's direct
  /// product (``GridLayout``) over `dy_pad` with the weights flipped and transposed
  /// to `[(ky, kx, o), c]`. Each element is one chain of `kH kW outC` terms written
  /// once, where `raise(dy W)` wrote `kH kW` partial rows per pixel (inner dimension
  /// `outC` only) and scattered them into a zeroed `dx` (`impala_deep`'s 3x3/1 layers).
  ///
  /// With `through`, each image's `dx` goes through that activation's backward
  /// (`x` its output) right after it is written.
  func inputGradientDirect(
    _ p: Parameters, dy: UnsafePointer<Float>, images n: Int, dx: UnsafeMutablePointer<Float>, scratch: ConvScratch,
    x: UnsafePointer<Float>, through: Activation?
  ) {
    guard n > 0 else { return }
    let c = input.channels
    let oc = output.channels
    let (kh, kw) = (kernelHeight, kernelWidth)
    let k = kh &* kw &* oc
    let flipped = scratch.flippedWeights.reserve(k &* c)
    let w = p.value(weight)
    for ky in 0..<kh {
      for kx in 0..<kw {
        for o in 0..<oc {
          let source = w + ((o &* kh &+ (kh &- 1 &- ky)) &* kw &+ (kw &- 1 &- kx)) &* c
          (flipped + ((ky &* kw &+ kx) &* oc &+ o) &* c).update(from: source, count: c)
        }
      }
    }
    let packed = scratch.inputGradientPack(narrow: c <= 16)
    packed.pack(flipped, ld: c, transposed: false, k: k, n: c)
    let pixels = input.height &* input.width
    let outPixels = output.height &* output.width
    let grid = inputGradientGrid
    for image in 0..<n {
      let g = paddedGradient(dy + image &* outPixels &* oc, buffer: scratch.paddedGradient)
      let d = dx + image &* pixels &* c
      packed.multiply(grid: g, layout: grid, rows: pixels, into: d, ldc: c, accumulate: false)
      through?.backward(output: x + image &* pixels &* c, gradOutput: d, gradInput: d, count: pixels &* c)
    }
  }

  /// One image's output gradient `[OH, OW, outC]` inside a zero border of
  /// `kH - 1 - p` rows and `kW - 1 - p` columns (in place when both are 0).
  func paddedGradient(_ g: UnsafePointer<Float>, buffer: FloatBuffer) -> UnsafePointer<Float> {
    let qy = kernelHeight &- 1 &- padding
    let qx = kernelWidth &- 1 &- padding
    if qy == 0 && qx == 0 { return g }
    let run = output.width &* output.channels
    return Self.bordered(
      height: output.height, width: output.width, channels: output.channels, rows: qy, columns: qx, buffer: buffer
    ) { y, dst in dst.update(from: g + y &* run, count: run) }
  }

  /// The input gradient without lowering: `dx = raise(dy W)`, a chunk of rows at a
  /// time (overwritten). With `through`, each image's `dx` goes through that
  /// activation's backward (`x` its output) once its last rows are added.
  func inputGradientRaised(
    _ p: Parameters, dy: UnsafePointer<Float>, images n: Int, dx: UnsafeMutablePointer<Float>, scratch: ConvScratch,
    x: UnsafePointer<Float>, through: Activation?
  ) {
    let oc = output.channels
    let pixels = output.height &* output.width
    let rows = n &* pixels
    let k = patchSize
    var zeroed = 0  // images whose dx is zeroed
    var finished = 0  // images whose dx went through `through`
    let chunk = min(chunkRows, max(rows, 1))
    let dcols = scratch.gradCols.reserve(chunk &* k)
    // On the packed kernels rather than a general product: its inner dimension is
    // only outC (16 or 32), where OpenBLAS also spent a pass zeroing C for beta 0
    // and repacked W for every chunk.
    let packed = scratch.inputGradientPack(narrow: false)
    packed.pack(p.value(weight), ld: k, transposed: false, k: oc, n: k)
    var m0 = 0
    while m0 < rows {
      let count = min(chunk, rows &- m0)
      packed.multiply(dy + m0 &* oc, lda: oc, rows: count, into: dcols, ldc: k, accumulate: false)
      // Each image's dx is zeroed just before its first rows are added, and stays in
      // cache for them: zeroed all at once first, a batch's (16 MB for
      // impala_shallow's second layer) went to memory and back, and the adds waited
      // on it.
      let last = (m0 &+ count &- 1) / pixels
      if last >= zeroed {
        (dx + zeroed &* input.count).update(repeating: 0, count: (last &+ 1 &- zeroed) &* input.count)
        zeroed = last &+ 1
      }
      raise(dcols, firstRow: m0, count: count, into: dx)
      m0 &+= count
      if let through {
        let complete = m0 / pixels
        if complete > finished {
          let d = dx + finished &* input.count
          let span = (complete &- finished) &* input.count
          through.backward(output: x + finished &* input.count, gradOutput: d, gradInput: d, count: span)
          finished = complete
        }
      }
    }
  }
}
