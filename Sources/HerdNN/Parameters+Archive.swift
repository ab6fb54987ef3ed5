/// Saving and loading a model's parameters, with its optimiser's state, by name.
extension Parameters {
  /// An archive holding every parameter as `param/<name>` and, when given, the
  /// optimiser's buffers as `optim/<buffer>` with its kind and step count in metadata.
  ///
  /// With `values` (a ``flatValues`` of this model, e.g. kept from an earlier
  /// version) the archive holds those instead of the current parameters.
  public func archive(optimizer: Optimizer? = nil, metadata: [String: String] = [:], values: [Float]? = nil)
    -> TensorArchive
  {
    precondition(values == nil || values!.count == count, "\(values?.count ?? 0) values for \(count) parameters")
    var meta = metadata
    var entries: [TensorArchive.Entry] = layout.entries.map { e in
      .init(
        name: "param/\(e.name)", shape: e.slot.shape,
        values: values.map { Array($0[e.slot.offset..<(e.slot.offset + e.slot.count)]) }
          ?? Array(UnsafeBufferPointer(start: value(e.slot), count: e.slot.count)))
    }
    if let optimizer {
      meta["optimizer"] = optimizer.kind
      meta["optimizer_steps"] = String(optimizer.stepCount)
      for (name, values) in optimizer.stateBuffers() {
        entries.append(.init(name: "optim/\(name)", shape: [values.count], values: values))
      }
    }
    return TensorArchive(metadata: meta, entries: entries)
  }

  /// Restores parameters (and the optimiser's state, when given) from `archive`.
  ///
  /// Every parameter of this model must be present with the same shape, and the
  /// archive must not hold parameters this model lacks; the optimiser kinds must
  /// match. Nothing is modified unless everything fits.
  ///
  /// - Throws: ``NNError/badParameterFile(path:reason:)`` naming the first mismatch.
  public func restore(from archive: TensorArchive, optimizer: Optimizer? = nil, source: String) throws {
    func fail(_ reason: String) -> NNError { .badParameterFile(path: source, reason: reason) }
    var staged: [(ParameterSlot, [Float])] = []
    for e in layout.entries {
      guard let a = archive.entry("param/\(e.name)") else { throw fail("parameter \(e.name) is missing") }
      guard a.shape == e.slot.shape else {
        throw fail("parameter \(e.name) has shape \(a.shape) in the file, the model expects \(e.slot.shape)")
      }
      staged.append((e.slot, a.values))
    }
    let known = Set(layout.entries.map { "param/\($0.name)" })
    if let extra = archive.entries.first(where: { $0.name.hasPrefix("param/") && !known.contains($0.name) }) {
      throw fail("the file has parameter \(extra.name.dropFirst(6)), which this model does not")
    }
    if let optimizer {
      guard let kind = archive.metadata["optimizer"] else { throw fail("no optimizer state in the file") }
      guard kind == optimizer.kind else {
        throw fail("optimizer is \(kind) in the file, \(optimizer.kind) in the config")
      }
      var buffers: [String: [Float]] = [:]
      for e in archive.entries where e.name.hasPrefix("optim/") { buffers[String(e.name.dropFirst(6))] = e.values }
      let steps = Int(archive.metadata["optimizer_steps"] ?? "") ?? 0
      do {
        try optimizer.restore(buffers: buffers, stepCount: steps)
      } catch {
        throw fail("optimizer state: \(error)")
      }
    }
    for (slot, values) in staged {
      values.withUnsafeBufferPointer { value(slot).update(from: $0.baseAddress.unsafelyUnwrapped, count: slot.count) }
    }
  }
}
