/// The page served at `/`: self-contained (inline style and script, no fetches but
/// the learner's own /stats and /history), so it works offline and through an ssh
/// tunnel. It redraws every two seconds: learning curves on canvases, the worker
/// table and the drop counters. A token, when the endpoint needs one, is read from
/// the page's fragment (`/#token=...`, never sent to the server as part of the URL).
enum Dashboard {
  static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>herd</title>
    <style>
      :root { --fg: #1d2430; --muted: #6b7482; --line: #e3e6ea; --bg: #f6f7f9; --card: #fff; }
      * { box-sizing: border-box; }
      body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
      header { display: flex; flex-wrap: wrap; gap: 18px; align-items: baseline; padding: 14px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
      header h1 { font-size: 18px; margin: 0; }
      .badge { padding: 2px 10px; border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; background: #8a94a3; }
      .badge.training { background: #1f9d55; } .badge.starting { background: #d69e2e; }
      .badge.stalled { background: #e53e3e; } .badge.stopped { background: #4a5568; }
      .kv { color: var(--muted); } .kv b { color: var(--fg); font-variant-numeric: tabular-nums; }
      main { padding: 16px 20px; display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
      section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
      section h2 { font-size: 13px; margin: 0 0 6px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
      canvas { width: 100%; height: 220px; display: block; }
      .legend span { margin-right: 12px; font-size: 12px; color: var(--muted); }
      .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
      table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
      th, td { text-align: right; padding: 4px 6px; border-bottom: 1px solid var(--line); }
      th:nth-child(2), td:nth-child(2), th:last-child, td:last-child { text-align: left; }
      .wide { grid-column: 1 / -1; }
      .lost { color: #e53e3e; } .left { color: var(--muted); }
      #error { display: none; background: #fff5f5; color: #c53030; padding: 8px 20px; border-bottom: 1px solid #fed7d7; }
      #reason { color: var(--muted); }
    </style>
    </head>
    <body>
    <header>
      <h1>herd <span id="env"></span></h1>
      <span class="badge" id="status">loading</span>
      <span id="reason"></span>
      <span class="kv">policy <b id="version">-</b></span>
      <span class="kv">env steps <b id="steps">-</b></span>
      <span class="kv">sampled/s <b id="sps">-</b></span>
      <span class="kv">trained/s <b id="tps">-</b></span>
      <span class="kv">return <b id="ret">-</b></span>
      <span class="kv">uptime <b id="uptime">-</b></span>
    </header>
    <div id="error"></div>
    <main>
      <section><h2>Mean return (last 100 episodes) vs env steps</h2><canvas id="c-return"></canvas><div class="legend" id="l-return"></div></section>
      <section><h2>Env steps per second</h2><canvas id="c-sps"></canvas><div class="legend" id="l-sps"></div></section>
      <section><h2>Losses</h2><canvas id="c-loss"></canvas><div class="legend" id="l-loss"></div></section>
      <section><h2>Policy lag (updates)</h2><canvas id="c-lag"></canvas><div class="legend" id="l-lag"></div></section>
      <section id="s-info" style="display:none"><h2>Episode info (means over the last 100 episodes) vs env steps</h2><canvas id="c-info"></canvas><div class="legend" id="l-info"></div></section>
      <section class="wide"><h2>Workers</h2>
        <table><thead><tr><th>id</th><th>host</th><th>pid</th><th>envs</th><th>env steps</th><th>steps/s</th>
        <th>episodes</th><th>mean return</th><th>policy</th><th>heartbeat</th><th>state</th></tr></thead>
        <tbody id="workers"><tr><td colspan="11">no workers yet</td></tr></tbody></table>
      </section>
      <section class="wide"><h2>Learner</h2><table><tbody id="learner"></tbody></table></section>
    </main>
    <script>
    "use strict";
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    const opts = token ? { headers: { Authorization: "Bearer " + token } } : {};
    const $ = (id) => document.getElementById(id);
    function si(v) {
      if (v === null || v === undefined || !isFinite(v)) return "-";
      const a = Math.abs(v);
      if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
      if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
      if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
      if (a >= 100) return v.toFixed(0);
      if (a >= 1) return v.toFixed(2);
      if (a === 0) return "0";
      return v.toPrecision(3);
    }
    function duration(s) {
      s = Math.floor(s); const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
      return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
    }
    function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

    // A line chart: xs, series [{name, ys, color}]; nulls leave gaps.
    function chart(id, xs, series, xfmt) {
      const c = $("c-" + id), r = window.devicePixelRatio || 1;
      const w = c.clientWidth, h = c.clientHeight;
      c.width = w * r; c.height = h * r;
      const g = c.getContext("2d"); g.scale(r, r); g.clearRect(0, 0, w, h);
      $("l-" + id).innerHTML = series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join("");
      const L = 54, R = 10, T = 8, B = 22;
      let lo = Infinity, hi = -Infinity;
      for (const s of series) for (const y of s.ys) if (y !== null && isFinite(y)) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
      g.font = "11px system-ui, sans-serif"; g.fillStyle = "#6b7482"; g.strokeStyle = "#e3e6ea";
      if (xs.length < 2 || lo === Infinity) { g.fillText("waiting for data", L, h / 2); return; }
      if (hi === lo) { hi += Math.abs(hi) * 0.1 + 1; lo -= Math.abs(lo) * 0.1 + 1; }
      // Round ticks (1, 2 or 5 times a power of ten); a non-negative series keeps 0 as its floor.
      const raw = (hi - lo) / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
      const nonNegative = lo >= 0;
      lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
      if (nonNegative && lo < 0) lo = 0;
      const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
      const X = (x) => L + (x - x0) / (x1 - x0) * (w - L - R), Y = (y) => T + (hi - y) / (hi - lo) * (h - T - B);
      g.lineWidth = 1; g.textAlign = "right";
      for (let y = lo; y <= hi + step / 2; y += step) {
        const py = Math.round(Y(y)) + 0.5;
        g.beginPath(); g.moveTo(L, py); g.lineTo(w - R, py); g.stroke();
        g.fillText(step >= 1 && Math.abs(y) < 1e4 ? y.toFixed(0) : si(y), L - 6, py + 4);
      }
      for (let i = 0; i <= 4; i++) {
        const x = x0 + (x1 - x0) * i / 4;
        g.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
        g.fillText(xfmt(x), X(x), h - 6);
      }
      g.lineWidth = 1.8;
      for (const s of series) {
        g.strokeStyle = s.color; g.beginPath(); let pen = false;
        s.ys.forEach((y, i) => {
          if (y === null || !isFinite(y)) { pen = false; return; }
          if (pen) g.lineTo(X(xs[i]), Y(y)); else { g.moveTo(X(xs[i]), Y(y)); pen = true; }
        });
        g.stroke();
      }
    }

    function render(s, hist) {
      $("env").textContent = s["run/env"] + " · " + s["run/dir"];
      const b = $("status"); b.textContent = s["run/status"]; b.className = "badge " + s["run/status"];
      $("reason").textContent = s["run/status_reason"];
      $("version").textContent = s["learner/policy_version"];
      $("steps").textContent = si(s["env_steps/sampled"]);
      $("sps").textContent = si(s["throughput/sampled_per_second"]);
      $("tps").textContent = si(s["throughput/trained_per_second"]);
      $("ret").textContent = si(s["episode_return/mean"]);
      $("uptime").textContent = duration(s["run/uptime_seconds"]);
      document.title = "herd " + s["run/env"] + " " + si(s["episode_return/mean"]);
      const t = hist["run/wall_seconds"], tf = (x) => duration(x);
      const evals = (hist["evaluation/return_mean"] || []).some((y) => y !== null)
        ? [{ name: "evaluation", ys: hist["evaluation/return_mean"], color: "#c05621" }] : [];
      chart("return", hist["env_steps/sampled"], [{ name: "mean return", ys: hist["episode_return/mean"], color: "#2b6cb0" }, ...evals], si);
      chart("sps", t, [{ name: "sampled", ys: hist["throughput/sampled_per_second"], color: "#2f855a" },
                       { name: "trained", ys: hist["throughput/trained_per_second"], color: "#c05621" }], tf);
      chart("loss", t, [{ name: "pg", ys: hist["losses/pg"], color: "#6b46c1" },
                        { name: "baseline", ys: hist["losses/baseline"], color: "#2b6cb0" },
                        { name: "entropy", ys: hist["losses/entropy"], color: "#b83280" }], tf);
      chart("lag", t, [{ name: "p50", ys: hist["policy_lag/p50"], color: "#2f855a" },
                       { name: "p95", ys: hist["policy_lag/p95"], color: "#c53030" }], tf);
      const info = Object.keys(hist.episode_info || {}).sort(), palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#c53030"];
      $("s-info").style.display = info.length ? "" : "none";
      if (info.length) chart("info", hist["env_steps/sampled"], info.map((k, i) => ({ name: k, ys: hist.episode_info[k], color: palette[i % palette.length] })), si);
      const rows = s.workers.map((w) => `<tr class="${w.state}"><td>${w.id}</td><td>${esc(w.host)}</td><td>${w.pid}</td>
        <td>${w.envs}</td><td>${si(w.env_steps)}</td><td>${si(w.steps_per_second)}</td><td>${w.episodes}</td>
        <td>${si(w.mean_return)}</td><td>${w.policy_version}</td><td>${w.seconds_since_heartbeat.toFixed(1)} s</td>
        <td>${w.state}</td></tr>`);
      $("workers").innerHTML = rows.length ? rows.join("") : '<tr><td colspan="11">no workers yet</td></tr>';
      const dropped = Object.entries(s.dropped).filter(([, v]) => v > 0).map(([k, v]) => k + " " + v).join(", ") || "none";
      const kv = [["updates", s["learner/updates"]], ["env steps trained", si(s["env_steps/trained"])],
        ["sample reuse", si(s["learner/sample_reuse"]) + "x (" + si(s["env_steps/reused"]) + " reused)"],
        ["episodes", s["episodes/total"]], ["return min / max", si(s["episode_return/min"]) + " / " + si(s["episode_return/max"])],
        ["episode length", si(s["episode_length/mean"])],
        ...(s["evaluation/latest"] ? [["evaluation", si(s["evaluation/latest"].return_mean) + " over " + s["evaluation/latest"].episodes
          + (s["evaluation/latest"].greedy ? " greedy" : " sampled") + " episodes at " + si(s["evaluation/latest"].env_steps)
          + " env steps; best " + si(s["evaluation/best"].return_mean) + " (" + s["evaluation/count"] + " evaluations)"]] : []),
        ...Object.entries(s.episode_info || {}).map(([k, v]) => ["info " + k, si(v)]),
        ["loss pg / baseline / entropy", [s["losses/pg"], s["losses/baseline"], s["losses/entropy"]].map(si).join(" / ")],
        ["entropy (weight)", si(s["learner/entropy"]) + " (" + si(s["learner/entropy_coeff"]) + ")"], ["grad norm", si(s["learner/grad_norm"])], ["learning rate", si(s["learner/lr"])],
        ["policy lag p50 / p95 / max", [s["policy_lag/p50"], s["policy_lag/p95"], s["policy_lag/max"]].join(" / ")],
        ["queue", s["queue/depth"] + " / " + s["queue/capacity"] + " fragments, " + (s["queue/bytes"] / 1048576).toFixed(1) + " MiB"],
        ["replay buffer", s["replay/fragments"] + " fragments, " + (s["replay/bytes"] / 1048576).toFixed(1) + " MiB"], ["dropped", dropped],
        ["endpoints", Object.entries(s.endpoints).map(([k, v]) => k + " " + v).join(", ")]];
      $("learner").innerHTML = kv.map(([k, v]) => `<tr><td style="text-align:left">${esc(k)}</td><td style="text-align:left">${esc(v)}</td></tr>`).join("");
    }

    async function tick() {
      try {
        const [s, h] = await Promise.all([fetch("stats", opts), fetch("history", opts)]);
        if (!s.ok) throw new Error("/stats answered " + s.status + (s.status === 401 ? " (open this page as /#token=TOKEN)" : ""));
        render(await s.json(), await h.json());
        $("error").style.display = "none";
      } catch (e) {
        $("error").textContent = "cannot read the learner's stats: " + e.message + "; retrying";
        $("error").style.display = "block";
      }
      setTimeout(tick, 2000);
    }
    tick();
    </script>
    </body>
    </html>

    """#
}
