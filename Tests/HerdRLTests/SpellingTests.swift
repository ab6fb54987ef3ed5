import Testing

@testable import HerdRL

@Suite struct SpellingTests {
  @Test func distanceCountsEditsAndSwaps() {
    func d(_ a: String, _ b: String) -> Int { Spelling.distance(Array(a), Array(b)) }
    #expect(d("", "") == 0 && d("", "abc") == 3 && d("abc", "") == 3)
    #expect(d("kitten", "sitting") == 3)
    #expect(d("gamma", "gmama") == 1, "a swap of neighbours is one edit")
    #expect(d("ca", "abc") == 3, "optimal string alignment: no edit of a swapped pair")
    #expect(d("entropy_coef", "entropy_coeff") == 1 && d("lstm", "gru") == 4)
    for (a, b) in [("flaw", "lawn"), ("abcdef", "badcfe"), ("x", "yx")] { #expect(d(a, b) == d(b, a)) }
  }

  @Test func suggestsOnlyAClearWinner() {
    let keys = ["lr", "lr_final", "adam_beta1", "adam_beta2", "gamma", "entropy_coeff", "env", "env_config"]
    #expect(Spelling.suggestion(for: "LR", among: keys) == "lr", "case is ignored")
    #expect(Spelling.suggestion(for: "lr_fin", among: keys) == "lr_final", "the only one it starts")
    #expect(Spelling.suggestion(for: "entropy", among: keys) == "entropy_coeff")
    #expect(Spelling.suggestion(for: "adam_beta", among: keys) == nil, "two start with it, both one edit away")
    #expect(Spelling.suggestion(for: "en", among: keys) == "env", "short words: one edit")
    #expect(Spelling.suggestion(for: "eps", among: keys) == nil)
    #expect(Spelling.suggestion(for: "gama", among: keys) == "gamma")
    #expect(Spelling.suggestion(for: "", among: keys) == nil && Spelling.suggestion(for: "lr", among: []) == nil)
    #expect(Spelling.hint(for: "gama", among: keys) == " (did you mean 'gamma'?)")
    #expect(Spelling.hint(for: "momentum", among: keys) == "")
  }
}
