import Foundation
import HerdTestSupport
import HerdStats
import Testing

/// Where a test tool is, on PATH; nil when missing.
func which(_ tool: String) -> String? {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  return path.split(separator: ":").map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}


/// The repository's root (this file is Tests/IntegrationTests/DeployTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().path

/// Files under `folder` of the repository whose names end with one of `suffixes`.
func repositoryFiles(_ folder: String, _ suffixes: [String]) -> [String] {
  let base = repositoryRoot + "/" + folder
  let all = (FileManager.default.enumerator(atPath: base)?.allObjects as? [String]) ?? []
  return all.filter { f in suffixes.contains { f.hasSuffix($0) } }.map { base + "/" + $0 }.sorted()
}

/// deploy/: every recipe checked by a linter or run for real.
@Suite(.serialized) struct DeployTests {
  @Test(.enabled(if: which("shellcheck") != nil || requireTools, "needs shellcheck (apt-get install shellcheck)"))
  func everyScriptIsShellcheckClean() throws {
    let scripts = repositoryFiles("deploy", [".sh", ".sbatch"]) + repositoryFiles("scripts", [".sh"])
    #expect(scripts.count >= 4, "\(scripts)")
    let shellcheck = try #require(which("shellcheck"), "shellcheck is not installed")
    let r = try HerdBinary.runCommand(shellcheck, ["--severity=info"] + scripts, timeout: 60)
    #expect(r.status == 0, "shellcheck:\n\(r.stdout)\(r.stderr)")
  }

  /// The ssh script against "hosts" reached through a stand-in ssh that runs the
  /// remote command here: spawn, status, logs, stop, and its argument checks.
  @Test func sshScriptSpawnsListsCollectsAndStops() throws {
    let dir = HerdBinary.tempDir("ssh")
    try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let fakeSSH = dir + "/fake-ssh"
    // Like sshd, hand the remote command no descriptors but 0-2: a worker that
    // outlives the script must not hold the test runner's pipes open.
    try """
      #!/usr/bin/env bash
      shift  # the host
      for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done
      exec "$@"

      """.write(toFile: fakeSSH, atomically: true, encoding: .utf8)
    chmod(fakeSSH, 0o755)
    try "# workers\nalpha\nbeta   # second host\n\n".write(toFile: dir + "/hosts", atomically: true, encoding: .utf8)
    let script = repositoryRoot + "/deploy/ssh/herd-workers.sh"
    let env = ["HERD_SSH": fakeSSH, "HOME": dir + "/home"]
    func tool(_ args: [String]) throws -> HerdBinary.Result {
      try HerdBinary.runCommand("/bin/bash", [script] + args, environment: env, timeout: 60)
    }

    let learner = try HerdProcess([
      "learner", "--env", "CartPole-v1", "--port", "0", "--stats-port", "0", "--run-dir", dir + "/run",
      "--stop-seconds", "60",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let url = try #require(learner.statsURL)
    let control = try #require(learner.controlEndpoint)
    let common = ["-f", dir + "/hosts", "-b", HerdBinary.path]
    let spawn = try tool(["spawn"] + common + ["-l", control, "-e", "4"])
    #expect(spawn.status == 0, "\(spawn.stderr)")
    #expect(spawn.stdout.contains("alpha: worker 1 started") && spawn.stdout.contains("beta: worker 1 started"))

    var rows: [StatsDocument.WorkerRow] = []
    let deadline = Date(timeIntervalSinceNow: 20)
    while Date() < deadline {
      if let r = try? HTTPClient.get(url + "/stats"),
        let d = try? JSONDecoder().decode(StatsDocument.self, from: Data(r.body)), d.workers.count == 2,
        d.workers.allSatisfy({ $0.envSteps > 0 })
      {
        rows = d.workers
        break
      }
      usleep(200_000)
    }
    #expect(rows.count == 2, "the two spawned workers should train: \(learner.stderr)")
    #expect(rows.allSatisfy { $0.envs == 4 })

    let status = try tool(["status"] + common)
    #expect(status.stdout.split(separator: "\n").filter { $0.contains("running") }.count == 2, "\(status.stdout)")
    let again = try tool(["spawn"] + common + ["-l", control])
    #expect(again.stdout.contains("already runs"), "spawn twice starts nothing new")
    let logs = try tool(["logs"] + common + ["-o", dir + "/logs"])
    #expect(logs.status == 0)
    let alphaLog = try String(contentsOfFile: dir + "/logs/alpha/alpha-1.log", encoding: .utf8)
    #expect(alphaLog.contains("welcomed by"))
    let stop = try tool(["stop"] + common)
    #expect(stop.status == 0 && stop.stdout.contains("stopped"), "\(stop.stdout)\(stop.stderr)")
    #expect(try tool(["status"] + common).stdout.contains("alpha  no workers"))
    let after = try JSONDecoder().decode(StatsDocument.self, from: Data(try HTTPClient.get(url + "/stats").body))
    #expect(after.workers.allSatisfy { $0.state == "left" }, "SIGTERM makes workers say goodbye")

    // Argument checks name the problem.
    #expect(try tool(["spawn"] + common + ["-l", "10.0.0.5:5555"]).stderr.contains("-l must be the learner's tcp://HOST:PORT"))
    #expect(try tool(["spawn"] + common + ["-l", control, "-n", "zero"]).stderr.contains("-n must be a positive whole number"))
    #expect(try tool(["spawn"] + common + ["-l", control, "-k", "x"]).stderr.contains("-k (learner public key) and -s"))
    #expect(try tool(["frobnicate"]).stderr.contains("unknown command 'frobnicate'"))
    #expect(try tool(["status", "-f", dir + "/missing"]).stderr.contains("cannot read the hosts file"))
    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0)
  }

  @Test(.enabled(if: which("systemd-analyze") != nil, "systemd-analyze is not installed (Debian's systemd)"))
  func systemdUnitsVerify() throws {
    let units = repositoryFiles("deploy/systemd", [".service"])
    #expect(units.count == 2)
    let dir = HerdBinary.tempDir("systemd")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // verify checks that ExecStart's binary exists: point it at the one just built.
    var paths: [String] = []
    for u in units {
      let text = try String(contentsOfFile: u, encoding: .utf8).replacingOccurrences(
        of: "/usr/local/bin/herd", with: HerdBinary.path)
      let name = URL(fileURLWithPath: u).lastPathComponent.replacingOccurrences(of: "@.service", with: "@1.service")
      try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
      paths.append(dir + "/" + name)
    }
    let r = try HerdBinary.runCommand(try #require(which("systemd-analyze")), ["verify"] + paths, timeout: 60)
    #expect(r.status == 0 && (r.stdout + r.stderr).isEmpty, "systemd-analyze verify:\n\(r.stdout)\(r.stderr)")
    // A unit with a typo does produce output: the check can fail.
    try String(contentsOfFile: paths[0], encoding: .utf8).replacingOccurrences(of: "Restart=", with: "Restrat=")
      .write(toFile: paths[0], atomically: true, encoding: .utf8)
    let bad = try HerdBinary.runCommand(try #require(which("systemd-analyze")), ["verify", paths[0]], timeout: 60)
    #expect((bad.stdout + bad.stderr).contains("Restrat"))
  }

  @Test(.enabled(if: which("kubernetes-validate") != nil || requireTools, "needs kubernetes-validate (pip)"))
  func kubernetesManifestsValidate() throws {
    let validate = try #require(which("kubernetes-validate"), "kubernetes-validate is not installed")
    let manifests = repositoryFiles("deploy/kubernetes", [".yaml"]).filter { !$0.hasSuffix("kustomization.yaml") }
    #expect(manifests.count >= 5)
    let r = try HerdBinary.runCommand(validate, ["--strict", "--quiet"] + manifests, timeout: 120)
    #expect(r.status == 0, "kubernetes-validate:\n\(r.stdout)\(r.stderr)")
    // Every kind the recipe promises is there.
    let all = try manifests.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()
    for kind in ["StatefulSet", "Service", "Deployment", "ConfigMap", "Secret"] { #expect(all.contains("kind: \(kind)\n")) }
    #expect(all.contains("path: /healthz") && all.contains("livenessProbe") && all.contains("readinessProbe"))
    // The kustomization lists exactly the manifests.
    let kustomization = try String(contentsOfFile: repositoryRoot + "/deploy/kubernetes/kustomization.yaml", encoding: .utf8)
    for m in manifests { #expect(kustomization.contains("- " + URL(fileURLWithPath: m).lastPathComponent)) }
    // A broken manifest fails: the validator can say no.
    let broken = HerdBinary.tempDir("k8s") + ".yaml"
    defer { try? FileManager.default.removeItem(atPath: broken) }
    try String(contentsOfFile: repositoryRoot + "/deploy/kubernetes/workers.yaml", encoding: .utf8)
      .replacingOccurrences(of: "replicas: 4", with: "replicas: four").write(toFile: broken, atomically: true, encoding: .utf8)
    #expect(try HerdBinary.runCommand(validate, ["--strict", "--quiet", broken], timeout: 60).status != 0)
  }

  /// The Dockerfile cannot be built here (no Docker engine); check what can be: the
  /// runtime packages exist in Debian and the build copies the herd product.
  @Test func dockerfileNamesRealPackages() throws {
    let text = try String(contentsOfFile: repositoryRoot + "/deploy/docker/Dockerfile", encoding: .utf8)
    #expect(text.contains("--product herd") && text.contains("COPY --from=build /out/herd /usr/local/bin/herd"))
    #expect(!text.contains("target-cpu"), "the image must not be tuned to the build host's CPU")
    guard let aptCache = which("apt-cache") else { return }
    for package in ["libzmq5", "libopenblas0"] {
      #expect(text.contains(package))
      let r = try HerdBinary.runCommand(aptCache, ["show", package], timeout: 30)
      #expect(r.status == 0 && r.stdout.contains("Package: \(package)"), "\(package) is not a Debian package here")
    }
  }
}
