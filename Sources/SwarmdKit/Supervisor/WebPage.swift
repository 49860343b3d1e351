import Shared

/// `GET /`: one self-contained page (no CDN, no build step). The table is
/// rendered on the server, so it reads without JavaScript (and refreshes
/// itself every 5 s by a meta tag); with JavaScript it refreshes every
/// second from `/status.json` (the schema of `swarmctl status --json`) and
/// draws msg/s and lag per node over the last 15 minutes from
/// `/history.json` as inline SVG.
enum WebPage {
    static func html(_ s: SwarmStatus, title: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <noscript><meta http-equiv="refresh" content="5"></noscript>
        <title>swarm \(escape(title))</title>
        <style>
        body{font:14px system-ui,sans-serif;margin:1em;color:#222}
        h1{font-size:1.2em;margin:0 0 .3em}
        #summary{margin:.3em 0 1em;color:#444}
        .wrap{overflow-x:auto}
        table{border-collapse:collapse;min-width:100%}
        th,td{padding:.25em .6em;text-align:right;white-space:nowrap;border-bottom:1px solid #ddd}
        th{background:#f4f4f4;position:sticky;top:0}
        td.l,th.l{text-align:left}
        .ok{color:#070}.joining{color:#a60}.degraded,.unhealthy,.down{color:#b00;font-weight:bold}
        .charts{display:flex;flex-wrap:wrap;gap:1em;margin-top:1em}
        .chart{flex:1 1 320px}
        svg{width:100%;height:160px;background:#fafafa;border:1px solid #ddd}
        .legend span{margin-right:.8em;white-space:nowrap}
        </style></head><body>
        <h1>swarm \(escape(title))</h1>
        <div id="summary">\(escape(summary(s)))</div>
        <div class="wrap"><table id="nodes"><thead><tr>
        <th>slot</th><th>pid</th><th class="l">state</th><th class="l">health</th><th class="l">kafka</th><th>uptime</th>
        <th>restarts</th><th>RSS</th><th>handled</th><th>msg/s</th><th>partitions</th><th>lag</th><th class="l">last exit</th>
        </tr></thead><tbody>
        \(s.nodes.map(row).joined(separator: "\n"))
        </tbody></table></div>
        <div id="cluster">\(s.cluster.map(cluster) ?? "")</div>
        <div class="charts">
        <div class="chart"><b>msg/s per node</b><svg id="rate" viewBox="0 0 600 160" preserveAspectRatio="none"></svg><div class="legend" id="rate-legend"></div></div>
        <div class="chart"><b>lag per node</b><svg id="lag" viewBox="0 0 600 160" preserveAspectRatio="none"></svg><div class="legend" id="lag-legend"></div></div>
        </div>
        <script>
        \(script)
        </script>
        </body></html>
        """
    }

    /// The group from the status topic (`[cluster]`): one row per swarm, stale ones marked.
    static func cluster(_ c: ClusterView) -> String {
        let rows = c.swarms.map { s in
            let r = s.record
            let state = s.stale ? "STALE" : r.state
            return "<tr><td class=\"l\">\(escape(r.host))</td><td class=\"l\">\(escape(r.prefix))</td><td class=\"l\(s.stale ? " down" : "")\">\(escape(state))</td>"
                + "<td>\(r.running)/\(r.wanted)</td><td>\(r.healthy)</td><td>\(Int(saturating: r.rate.rounded()))</td><td>\(r.lag)</td><td>\(Int(saturating: s.ageS.rounded()))s</td></tr>"
        }
        return "<h2 style=\"font-size:1.05em;margin:1em 0 .3em\">cluster: group \(escape(c.group)), lag \(c.lag), \(c.unowned.count) unowned partition(s)</h2>"
            + "<div class=\"wrap\"><table id=\"swarms\"><thead><tr><th class=\"l\">host</th><th class=\"l\">prefix</th><th class=\"l\">state</th>"
            + "<th>nodes</th><th>healthy</th><th>msg/s</th><th>lag</th><th>age</th></tr></thead><tbody>" + rows.joined() + "</tbody></table></div>"
    }

    static func summary(_ s: SwarmStatus) -> String {
        "pid \(s.pid), \(s.state.rawValue): \(s.running)/\(s.wanted) running, \(s.healthy) healthy, "
            + "\(s.handled) handled, \(s.failed) failed, \(s.rate) msg/s, \(s.restarts) restarts"
    }

    static func row(_ n: NodeStatus) -> String {
        let health = n.health.rawValue + (n.reason.map { ": " + escape($0) } ?? "")
        let cells = [
            "<td>\(n.slot)</td>", "<td>\(n.pid.map(String.init) ?? "-")</td>", "<td class=\"l\">\(n.state.rawValue)</td>",
            "<td class=\"l \(n.health.rawValue)\">\(health)</td>", "<td class=\"l\">\(escape(n.kafka ?? "-"))</td>",
            "<td>\(Int(saturating: n.uptimeS))s</td>", "<td>\(n.restarts)</td>", "<td>\(n.rssBytes.map { "\($0 / 1_048_576)M" } ?? "-")</td>",
            "<td>\(n.handled)</td>", "<td>\(n.rate)</td>", "<td>\(n.partitions)</td>", "<td>\(n.lag.map(String.init) ?? "-")</td>",
            "<td class=\"l\">\(escape(n.lastExit ?? "-"))</td>",
        ]
        return "<tr data-slot=\"\(n.slot)\">" + cells.joined() + "</tr>"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// The page's script: the same table built client-side, and two SVG charts.
    static let script = #"""
    const colors = ["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
    const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
    function row(n) {
      const health = esc(n.health) + (n.reason ? ": " + esc(n.reason) : "");
      const cells = [n.slot, n.pid ?? "-", [n.state, "l"], [health, "l " + esc(n.health)], [n.kafka ?? "-", "l"],
        Math.floor(n.uptime_s) + "s", n.restarts, n.rss_bytes ? Math.floor(n.rss_bytes / 1048576) + "M" : "-",
        n.handled, n.rate, n.partitions, n.lag ?? "-", [n.last_exit ?? "-", "l"]];
      return '<tr data-slot="' + n.slot + '">' + cells.map(c => Array.isArray(c)
        ? '<td class="' + c[1] + '">' + (c[1].startsWith("l ") ? c[0] : esc(c[0])) + '</td>' : '<td>' + esc(c) + '</td>').join("") + '</tr>';
    }
    function chart(id, slots, key) {
      const svg = document.getElementById(id), legend = document.getElementById(id + "-legend");
      let max = 1, lines = "", keys = Object.keys(slots);
      for (const k of keys) for (const v of slots[k][key]) if (v !== null && v > max) max = v;
      keys.forEach((k, i) => {
        const values = slots[k][key], step = 600 / Math.max(1, values.length - 1);
        let d = "", pen = "M";
        values.forEach((v, j) => { if (v === null) { pen = "M"; return; }
          d += pen + (j * step).toFixed(1) + " " + (155 - v / max * 150).toFixed(1) + " "; pen = "L"; });
        lines += '<path fill="none" stroke-width="1.5" stroke="' + colors[i % colors.length] + '" d="' + d + '"/>';
      });
      svg.innerHTML = '<text x="4" y="12" font-size="11" fill="#666">' + Math.round(max) + '</text>' + lines;
      legend.innerHTML = keys.map((k, i) => '<span style="color:' + colors[i % colors.length] + '">slot ' + esc(k) + '</span>').join("");
    }
    async function refresh() {
      try {
        const s = await (await fetch("status.json", {cache: "no-store"})).json();
        document.getElementById("summary").textContent = "pid " + s.pid + ", " + s.state + ": " + s.running + "/" + s.wanted +
          " running, " + s.healthy + " healthy, " + s.handled + " handled, " + s.failed + " failed, " + s.rate + " msg/s, " + s.restarts + " restarts";
        document.querySelector("#nodes tbody").innerHTML = s.nodes.map(row).join("");
        if (s.cluster) {
          const c = s.cluster;
          document.getElementById("cluster").innerHTML = '<h2 style="font-size:1.05em;margin:1em 0 .3em">cluster: group ' + esc(c.group) +
            ', lag ' + c.lag + ', ' + c.unowned.length + ' unowned partition(s)</h2><div class="wrap"><table id="swarms"><thead><tr>' +
            '<th class="l">host</th><th class="l">prefix</th><th class="l">state</th><th>nodes</th><th>healthy</th><th>msg/s</th><th>lag</th><th>age</th>' +
            '</tr></thead><tbody>' + c.swarms.map(w => '<tr><td class="l">' + esc(w.record.host) + '</td><td class="l">' + esc(w.record.prefix) +
            '</td><td class="l' + (w.stale ? ' down' : '') + '">' + (w.stale ? "STALE" : esc(w.record.state)) + '</td><td>' + w.record.running + '/' +
            w.record.wanted + '</td><td>' + w.record.healthy + '</td><td>' + Math.round(w.record.rate) + '</td><td>' + w.record.lag + '</td><td>' +
            Math.round(w.age_s) + 's</td></tr>').join("") + '</tbody></table></div>';
        }
      } catch (e) { document.getElementById("summary").textContent = "swarmd does not answer: " + e; }
    }
    async function refreshCharts() {
      try {
        const h = await (await fetch("history.json", {cache: "no-store"})).json();
        chart("rate", h.slots, "rate"); chart("lag", h.slots, "lag");
      } catch (e) {}
    }
    refresh(); refreshCharts();
    setInterval(refresh, 1000); setInterval(refreshCharts, 5000);
    """#
}
