#if canImport(Glibc)
  import Glibc
#endif
import HerdMath

/// A convolution whose kernel is a whole number of strides (`kH = bh s`,
/// `kW = bw s`: the 8x8/4 and 4x4/2 layers of the Atari encoders, and every 3x3/1
/// layer) is a sum of `bh bw` shifted products over a space-to-depth copy of its
/// zero-padded input, with no lowered rows at all.
///
/// Space to depth: the image `[H, W, C]` becomes blocks `[Hb, Wb, s s C]`, block
/// `(by, bx)` holding the `s x s` pixels at `(by s + ry - pad, bx s + rx - pad)`
/// (zero outside the image) in the order `(ry, rx, c)`, with `Hb = OH + bh - 1` and `Wb = OW + bw - 1` (the blocks the
/// outputs reach; a partial block at the edge is never read). Output `(oy, ox)`
/// reads blocks `(oy + dy, ox + dx)`, `dy < bh`, `dx < bw`, each against its own
/// `[s s C, outC]` slice of the kernel.
///
/// Rows of the products: "virtual" output pixels `q = (image Hb + oy) Wb + ox` over
/// the whole block grid, so that block `(oy + dy, ox + dx)` is row `q + dy Wb + dx`
/// of the blocks: for each `dy`, one product reads `bw` neighbouring blocks as one
/// row of `bw s s C` floats (rows overlap: the row stride is one block), against
/// the packed slices `dx = 0 ..< bw` stacked. Virtual pixels past the output edge
/// (`oy >= OH` or `ox >= OW`) are computed and dropped. For 84x84 frames and the
/// 8x8/4 layer that is 441 virtual pixels for 400 real ones, and the copy the
/// products read is the input's size, where the lowered rows were 4x it.
///
/// The forward products run on ``PackedMatrix`` (each output one fused
/// multiply-add chain in a fixed order, whatever the batch size, so a rollout step
/// and a training batch agree exactly); so does the weight gradient, one product
/// per kernel block row reading the blocks in place as A^T
/// (``PackedMatrix/multiply(transposedA:lda:rows:into:ldc:accumulate:)``); the
/// input gradient needs no lowering (it is the adjoint of the lowering applied to
/// `dy W`).
extension Conv2D {
  /// Whether this layer runs as shifted products over blocks (see the extension's
  /// comment). `HERD_CONV_IM2COL=1` turns it off, for benchmarks beside the lowering.
  public var runsOnBlocks: Bool {
    Self.blocksEnabled && !isPointwise && kernelHeight % stride == 0 && kernelWidth % stride == 0
  }

  static let blocksEnabled: Bool = {
    guard let v = getenv("HERD_CONV_IM2COL") else { return true }
    let s = String(cString: v)
    return s.isEmpty || s == "0"
  }()

  /// Kernel blocks down and across: `kH / s`, `kW / s`.
  var kernelBlocks: (rows: Int, cols: Int) { (kernelHeight / stride, kernelWidth / stride) }
  /// The block grid an image becomes: `OH + bh - 1` by `OW + bw - 1`.
  var blockGrid: (rows: Int, cols: Int) {
    (output.height + kernelBlocks.rows - 1, output.width + kernelBlocks.cols - 1)
  }
  /// Floats per block: `s s C`.
  var blockSize: Int { stride &* stride &* input.channels }
  /// Floats of blocks per image.
  var blocksPerImage: Int { blockGrid.rows &* blockGrid.cols &* blockSize }
  /// Images per chunk: about 256 KB of blocks, at least one image.
  var blockChunkImages: Int { max(1, Self.chunkFloats / max(blocksPerImage, 1)) }

  /// Writes images `i0 ..< i0 + count` as blocks into `blocks` `[count, Hb, Wb, s s C]`.
  /// The input is read in its own order, one image row at a time, each row's runs of
  /// `s C` floats going to the blocks of one block row: the image (72 MB for a batch
  /// of 640 Atari frames) comes from memory in one stream, while the writes stay in
  /// the chunk, which is in cache.
  func spaceToDepth<Pixel: ConvPixel>(
    _ x: UnsafePointer<Pixel>, scale: Float, firstImage i0: Int, count: Int, into blocks: UnsafeMutablePointer<Float>
  ) {
    let c = input.channels
    let s = stride
    let run = s &* c
    let block = blockSize
    let grid = blockGrid
    let (h, w) = (input.height, input.width)
    for image in i0..<(i0 &+ count) {
      let base = x + image &* input.count
      let out = blocks + (image &- i0) &* blocksPerImage
      for by in 0..<grid.rows {
        for ry in 0..<s {
          let iy = by &* s &+ ry &- padding
          var dst = out + (by &* grid.cols &* block &+ ry &* run)
          if iy < 0 || iy >= h {
            for _ in 0..<grid.cols {
              dst.update(repeating: 0, count: run)
              dst += block
            }
            continue
          }
          let row = base + iy &* w &* c
          for bx in 0..<grid.cols {
            let ix0 = bx &* s &- padding
            if ix0 >= 0 && ix0 &+ s <= w {
              Pixel.lowerRun(row + ix0 &* c, scale: scale, to: dst, count: run)
            } else {
              for rx in 0..<s {
                let ix = ix0 &+ rx
                if ix < 0 || ix >= w {
                  (dst + rx &* c).update(repeating: 0, count: c)
                } else {
                  Pixel.lowerRun(row + ix &* c, scale: scale, to: dst + rx &* c, count: c)
                }
              }
            }
            dst += block
          }
        }
      }
    }
  }

  /// Virtual rows of a chunk of `count` images: up to the last real output pixel,
  /// so that no product reads past the chunk's blocks.
  func virtualRows(images count: Int) -> Int {
    let grid = blockGrid
    return (count &- 1) &* grid.rows &* grid.cols &+ (output.height &- 1) &* grid.cols &+ output.width
  }

  /// Packs the kernel's block row `dy` as `B [bw s s C, outC]`: row
  /// `(dx, ry, rx, c)` holds `W[:, dy s + ry, dx s + rx, c]`.
  func packBlockRow(_ p: Parameters, dy: Int, staging: FloatBuffer, into packed: PackedMatrix) {
    let oc = output.channels
    let c = input.channels
    let s = stride
    let bw = kernelBlocks.cols
    let k = bw &* blockSize
    let w = p.value(weight)
    let t = staging.reserve(oc &* k)  // [outC, k]: packed as transposed
    for o in 0..<oc {
      var dst = t + o &* k
      for dx in 0..<bw {
        for ry in 0..<s {
          let src = w + ((o &* kernelHeight &+ dy &* s &+ ry) &* kernelWidth &+ dx &* s) &* c
          dst.update(from: src, count: s &* c)
          dst += s &* c
        }
      }
    }
    packed.pack(t, ld: k, transposed: true, k: k, n: oc)
  }

  /// The forward over blocks: `y [n, OH, OW, outC]`.
  func forwardBlocks<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, images n: Int, y: UnsafeMutablePointer<Float>,
    scratch: ConvScratch
  ) {
    guard n > 0 else { return }
    let oc = output.channels
    let bh = kernelBlocks.rows
    let grid = blockGrid
    let packs = scratch.blockPacks(bh, narrow: oc <= 16)
    for dy in 0..<bh { packBlockRow(p, dy: dy, staging: scratch.gradCols, into: packs[dy]) }
    let chunk = min(blockChunkImages, n)
    let blocks = scratch.cols.reserve(chunk &* blocksPerImage)
    let virtualOut = scratch.blockOut.reserve(chunk &* grid.rows &* grid.cols &* oc)
    let b = p.value(bias)
    let outPixels = output.height &* output.width
    var i0 = 0
    while i0 < n {
      let count = min(chunk, n &- i0)
      spaceToDepth(x, scale: scale, firstImage: i0, count: count, into: blocks)
      // One image at a time: the virtual rows between images (block rows past the
      // output's last row) are not computed.
      let rows = virtualRows(images: 1)
      for image in 0..<count {
        let a = blocks + image &* blocksPerImage
        let out = virtualOut + image &* grid.rows &* grid.cols &* oc
        for dy in 0..<bh {
          packs[dy].multiply(
            a + dy &* grid.cols &* blockSize, lda: blockSize, rows: rows, into: out, ldc: oc, accumulate: dy > 0)
        }
      }
      for image in 0..<count {
        for oy in 0..<output.height {
          let src = virtualOut + ((image &* grid.rows &+ oy) &* grid.cols) &* oc
          let dst = y + ((i0 &+ image) &* outPixels &+ oy &* output.width) &* oc
          for ox in 0..<output.width {
            let s = src + ox &* oc
            let d = dst + ox &* oc
            for j in 0..<oc { d[j] = s[j] + b[j] }
          }
        }
      }
      i0 &+= count
    }
  }

  /// Accumulates the weight gradient over blocks: for each kernel block
  /// `(dy, dx)`, `dW_blk [s s C, outC] += blocks_shifted^T dy_virtual`, with the
  /// virtual rows past the output edge zero.
  func weightGradientBlocks<Pixel: ConvPixel>(
    _ p: Parameters, x: UnsafePointer<Pixel>, scale: Float, dy: UnsafePointer<Float>, images n: Int,
    scratch: ConvScratch
  ) {
    guard n > 0 else { return }
    let oc = output.channels
    let (bh, bw) = kernelBlocks
    let grid = blockGrid
    let kb = blockSize
    let chunk = min(blockChunkImages, n)
    let blocks = scratch.cols.reserve(chunk &* blocksPerImage)
    // One image at a time, as in the forward: its virtual rows up to its last
    // output pixel, the gaps past the right edge zero.
    let rows = virtualRows(images: 1)
    let dv = scratch.blockOut.reserve(rows &* oc)
    let dvPack = scratch.gradientPack(narrow: oc <= 16)
    let acc = scratch.gradCols.zeroed(bh &* bw &* kb &* oc)  // [bh, bw, s s C, outC]
    let outPixels = output.height &* output.width
    var i0 = 0
    while i0 < n {
      let count = min(chunk, n &- i0)
      spaceToDepth(x, scale: scale, firstImage: i0, count: count, into: blocks)
      for image in 0..<count {
        dv.update(repeating: 0, count: rows &* oc)
        for oy in 0..<output.height {
          let src = dy + ((i0 &+ image) &* outPixels &+ oy &* output.width) &* oc
          (dv + oy &* grid.cols &* oc).update(from: src, count: output.width &* oc)
        }
        dvPack.pack(dv, ld: oc, transposed: false, k: rows, n: oc)
        // For kernel block row `by`, the blocks `bx = 0 ..< bw` of virtual row q are
        // one row of `bw s s C` floats at block `q + by Wb`, and their gradients are
        // the rows `[bw, s s C]` of acc: one product per kernel block row, A^T read
        // in place with overlapping rows.
        let a = blocks + image &* blocksPerImage
        for by in 0..<bh {
          dvPack.multiply(
            transposedA: a + by &* grid.cols &* kb, lda: kb, rows: bw &* kb, into: acc + by &* bw &* kb &* oc,
            ldc: oc, accumulate: true)
        }
      }
      i0 &+= count
    }
    // Scatter [bh, bw, (ry, rx, c), outC] into W's gradient [outC, kH, kW, C].
    let g = p.grad(weight)
    let c = input.channels
    let s = stride
    for by in 0..<bh {
      for bx in 0..<bw {
        let blk = acc + (by &* bw &+ bx) &* kb &* oc
        for ry in 0..<s {
          for rx in 0..<s {
            for ch in 0..<c {
              let row = blk + ((ry &* s &+ rx) &* c &+ ch) &* oc
              let col = ((by &* s &+ ry) &* kernelWidth &+ bx &* s &+ rx) &* c &+ ch
              let stride = kernelHeight &* kernelWidth &* c
              for o in 0..<oc { g[o &* stride &+ col] += row[o] }
            }
          }
        }
      }
    }
  }

  /// The input gradient without lowering: `dx = raise(dy W)`, a chunk of rows at a
  /// time (overwritten).
  func inputGradientRaised(
    _ p: Parameters, dy: UnsafePointer<Float>, images n: Int, dx: UnsafeMutablePointer<Float>, scratch: ConvScratch
  ) {
    let oc = output.channels
    let rows = n &* output.height &* output.width
    let k = patchSize
    dx.update(repeating: 0, count: n &* input.count)
    let chunk = min(chunkRows, max(rows, 1))
    let dcols = scratch.gradCols.reserve(chunk &* k)
    var m0 = 0
    while m0 < rows {
      let count = min(chunk, rows &- m0)
      BLAS.gemm(
        .none, .none, m: count, n: k, k: oc, a: dy + m0 &* oc, lda: oc, b: p.value(weight), ldb: k,
        beta: 0, c: dcols, ldc: k)
      raise(dcols, firstRow: m0, count: count, into: dx)
      m0 &+= count
    }
  }
}
