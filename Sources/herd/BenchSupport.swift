import ArgumentParser
import Foundation
import HerdMath

/// Times `subject` and `floor` in alternating rounds (so both see the same machine
/// state), printing each round to stderr; returns the median timesteps/s of each.
func alternatingRounds(
  rounds: Int, seconds: Double, timesteps: Double, subject: () -> Void, floor: () -> Void
) -> (subject: Double, floor: Double) {
  var a: [Double] = []
  var b: [Double] = []
  subject()
  floor()
  for round in 1...rounds {
    a.append(timesteps / timePerCall(seconds: seconds, subject))
    b.append(timesteps / timePerCall(seconds: seconds, floor))
    printError("round \(round)/\(rounds): \(Int(a[round - 1])) vs floor \(Int(b[round - 1])) timesteps/s")
  }
  return (median(a), median(b))
}

/// Throws a ValidationError naming the first option below 1.
func requirePositive(_ options: [(String, Int)]) throws {
  for (name, v) in options where v < 1 { throw ValidationError("\(name) must be at least 1, got \(v)") }
}

/// The OpenBLAS line every benchmark prints.
func openBLASLine() -> String {
  "OpenBLAS: \(BLAS.configuration), threads \(BLAS.threadCount), OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")"
}
