// The live view: polls /api/state every second and updates the tables in place (rows are
// kept by key, so a form being typed into is not thrown away). Admin controls are drawn only
// for admins; the server checks the role and the CSRF token again on every action.
"use strict";
(function () {
  var session = null;
  var rows = {};      // server key -> {tr, cells, canvas}
  var blocks = {};    // service id -> {div, tbody}

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(n);
  }
  function isAdmin() { return session && session.role === "admin"; }

  function showResult(ok, text) {
    var r = document.getElementById("result");
    r.hidden = false;
    r.className = ok ? "ok" : "error";
    r.textContent = text;
  }

  function act(name, body) {
    return fetch("/api/action/" + name, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        showResult(!!j.ok, j.ok ? j.message : ("Error: " + j.error));
        refresh();
      });
    }).catch(function (e) { showResult(false, "Error: " + e); });
  }

  function drawChart(canvas, hist) {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    var series = [[hist.bps, "#2a6fdb"], [hist.cps, "#d9822b"]];
    series.forEach(function (s) {
      var data = s[0];
      if (!data || data.length < 2) return;
      var max = Math.max.apply(null, data.concat([1]));
      ctx.strokeStyle = s[1];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      data.forEach(function (v, i) {
        var x = w - (data.length - 1 - i) * (w / 299);
        var y = h - 2 - (v / max) * (h - 4);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }

  function serverRow(svc, s, tbody) {
    var key = svc.id + " " + s.id;
    var r = rows[key];
    if (!r) {
      var tr = el("tr", { "data-server": s.id, "data-service": svc.id });
      var cells = {};
      ["id", "health", "check", "weight", "active", "inactive", "cps", "pps", "bps"].forEach(function (c) {
        cells[c] = el("td", { "class": c });
        tr.appendChild(cells[c]);
      });
      var chartCell = el("td", { "class": "chart" });
      var canvas = el("canvas", { width: "160", height: "32", title: "last 5 minutes: bytes/s (blue), connections/s (orange)" });
      chartCell.appendChild(canvas);
      tr.appendChild(chartCell);
      var ctl = el("td", { "class": "controls" });
      if (isAdmin()) {
        var wIn = el("input", { type: "number", min: "0", max: "65535", "class": "weight-input", size: "4", "aria-label": "new weight" });
        var wBtn = el("button", { "class": "set-weight", type: "button" }, "Set weight");
        wBtn.addEventListener("click", function () {
          act("weight", { service: svc.id, server: s.id, weight: parseInt(wIn.value, 10) });
        });
        var drain = el("button", { "class": "drain", type: "button", title: "weight 0: no new connections" }, "Drain");
        drain.addEventListener("click", function () { act("drain", { service: svc.id, server: s.id }); });
        var mOn = el("button", { "class": "maint-on", type: "button" }, "Maintenance on");
        mOn.addEventListener("click", function () { act("maintenance", { service: svc.id, server: s.id, on: true }); });
        var mOff = el("button", { "class": "maint-off", type: "button" }, "Maintenance off");
        mOff.addEventListener("click", function () { act("maintenance", { service: svc.id, server: s.id, on: false }); });
        var rm = el("button", { "class": "remove-server", type: "button" }, "Remove");
        rm.addEventListener("click", function () {
          if (window.confirm("Remove " + s.id + " from " + svc.id + "?")) act("remove-server", { service: svc.id, server: s.id });
        });
        [wIn, wBtn, drain, mOn, mOff, rm].forEach(function (x) { ctl.appendChild(x); });
      }
      tr.appendChild(ctl);
      tbody.appendChild(tr);
      r = rows[key] = { tr: tr, cells: cells, canvas: canvas };
    }
    r.seen = true;
    r.cells.id.textContent = s.id + " (" + s.fwd + ")";
    r.cells.health.textContent = s.health;
    r.cells.health.className = "health health-" + s.health;
    var chk = s.last_check;
    r.cells.check.textContent = chk ? ((chk.ok === null ? "pending" : (chk.ok ? "ok" : "failed")) + (chk.detail ? ": " + chk.detail : "")) : "not monitored";
    r.cells.weight.textContent = s.weight;
    r.cells.active.textContent = s.active_conns;
    r.cells.inactive.textContent = s.inactive_conns;
    r.cells.cps.textContent = fmt(s.rates.cps);
    r.cells.pps.textContent = fmt(s.rates.in_pps + s.rates.out_pps);
    r.cells.bps.textContent = fmt(s.rates.in_bps + s.rates.out_bps);
    drawChart(r.canvas, s.history);
  }

  function serviceBlock(svc, container) {
    var b = blocks[svc.id];
    if (!b) {
      var div = el("div", { "class": "service", "data-service": svc.id });
      var h = el("h3");
      div.appendChild(h);
      var table = el("table", { "class": "servers" });
      var head = el("tr");
      ["Real server", "Health", "Last check", "Weight", "ActiveConn", "InActConn", "Conn/s", "Pkt/s", "Bytes/s", "Last 5 min", ""].forEach(function (t) { head.appendChild(el("th", null, t)); });
      var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
      var tbody = el("tbody"); table.appendChild(tbody);
      div.appendChild(table);
      if (isAdmin()) {
        var f = el("form", { "class": "add-server" });
        f.appendChild(el("input", { name: "server", placeholder: "RS:PORT", required: "", size: "20" }));
        f.appendChild(el("input", { name: "weight", type: "number", min: "0", max: "65535", value: "1", size: "4" }));
        var sel = el("select", { name: "fwd" });
        [["nat", "NAT"], ["dr", "DR"], ["tun", "TUN"]].forEach(function (o) { sel.appendChild(el("option", { value: o[0] }, o[1])); });
        f.appendChild(sel);
        f.appendChild(el("button", { type: "submit" }, "Add real server"));
        var rmSvc = el("button", { type: "button", "class": "remove-service" }, "Remove service");
        rmSvc.addEventListener("click", function () {
          if (window.confirm("Remove " + svc.id + " and its real servers?")) act("remove-service", { service: svc.id });
        });
        f.appendChild(rmSvc);
        f.addEventListener("submit", function (ev) {
          ev.preventDefault();
          act("add-server", { service: svc.id, server: f.server.value, weight: parseInt(f.weight.value, 10), fwd: f.fwd.value });
        });
        div.appendChild(f);
      }
      container.appendChild(div);
      b = blocks[svc.id] = { div: div, h: h, tbody: tbody };
    }
    b.seen = true;
    b.h.textContent = svc.protocol + " " + svc.address + "  scheduler " + svc.scheduler +
      (svc.flags ? " flags " + svc.flags : "") + (svc.persistent ? " persistent " + svc.persistent + " s" : "") +
      "  conns " + fmt(svc.stats.conns) + "  " + fmt(svc.rates.cps) + " conn/s";
    svc.servers.forEach(function (s) { serverRow(svc, s, b.tbody); });
  }

  function renderDirectors(st) {
    var tb = document.querySelector("#directors tbody");
    tb.textContent = "";
    st.directors.forEach(function (d) {
      var tr = el("tr");
      tr.appendChild(el("td", null, d.name));
      var role = d.reachable ? (d.role || "") : "unreachable: " + (d.error || "");
      if (d.ha_state) role += (role ? ", " : "") + "heartbeat " + d.ha_state + (d.fault_reason ? " (" + d.fault_reason + ")" : "");
      if (d.holds_vips !== null && d.holds_vips !== undefined) role += d.holds_vips ? ", holds the VIPs" : "";
      if (d.sync) role += "; sync " + (d.sync.active ? "sending" : "receiving") + (d.sync.synced ? ", synced" : ", NOT synced");
      tr.appendChild(el("td", { "class": "role" }, role || "?"));
      tr.appendChild(el("td", null, d.epoch === null ? "n/a" : String(d.epoch)));
      tr.appendChild(el("td", null, d.vips.join(", ")));
      tr.appendChild(el("td", null, d.media.length ? d.media.map(function (m) { return m.name + ": " + (m.up ? "up" : "DOWN") + " (" + m.detail + ")"; }).join("; ") : "n/a"));
      tr.appendChild(el("td", null, d.conn_count === null ? "" : d.conn_count + " / " + d.conn_table_size));
      tr.appendChild(el("td", null, st.sources.map(function (s) { return s.daemon + (s.ok ? " ok" : " away"); }).join(", ")));
      tb.appendChild(tr);
    });
  }

  function renderLockmgr(l) {
    var d = document.getElementById("lockmgr");
    d.textContent = "";
    if (!l.reachable) { d.appendChild(el("p", { "class": "muted" }, "lvs-lockmgr: " + (l.error || "unreachable"))); return; }
    d.appendChild(el("p", null, "Mode " + l.mode + ", node " + l.node + ", members [" + l.members.join(", ") + "], leader " +
      (l.leader === null ? "unknown" : l.leader) + ". " + Object.keys(l.counts).sort().map(function (k) { return k + " " + l.counts[k]; }).join(", ")));
    if (l.resources.length) {
      var t = el("table"); var h = el("tr");
      ["Lockspace", "Resource", "Holders", "Waiting"].forEach(function (x) { h.appendChild(el("th", null, x)); });
      t.appendChild(h);
      l.resources.forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(el("td", null, r.lockspace));
        tr.appendChild(el("td", null, r.name));
        tr.appendChild(el("td", null, r.granted.map(function (g) { return "node " + g.node + "/session " + g.session + " " + g.mode + " token " + g.token; }).join("; ")));
        tr.appendChild(el("td", null, String(r.waiting.length)));
        t.appendChild(tr);
      });
      d.appendChild(t);
    }
  }

  function renderEvents(evs) {
    var ol = document.getElementById("events");
    ol.textContent = "";
    evs.slice(-30).reverse().forEach(function (e) {
      ol.appendChild(el("li", null, new Date(e.time_ms).toLocaleTimeString() + " [" + e.source + "] " + e.text));
    });
  }

  function render(st) {
    renderDirectors(st);
    Object.keys(rows).forEach(function (k) { rows[k].seen = false; });
    Object.keys(blocks).forEach(function (k) { blocks[k].seen = false; });
    var c = document.getElementById("services");
    st.services.forEach(function (svc) { serviceBlock(svc, c); });
    Object.keys(rows).forEach(function (k) { if (!rows[k].seen) { rows[k].tr.remove(); delete rows[k]; } });
    Object.keys(blocks).forEach(function (k) { if (!blocks[k].seen) { blocks[k].div.remove(); delete blocks[k]; } });
    if (!st.services.length) {
      if (!document.getElementById("no-services")) c.appendChild(el("p", { id: "no-services", "class": "muted" }, "No virtual services."));
    } else {
      var n = document.getElementById("no-services"); if (n) n.remove();
    }
    renderLockmgr(st.lockmgr);
    renderEvents(st.events);
    document.getElementById("updated").textContent = "updated " + new Date(st.time_ms).toLocaleTimeString();
  }

  function refresh() {
    return fetch("/api/state", { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { window.location = "/login"; return null; }
      return r.json();
    }).then(function (st) { if (st) render(st); })
      .catch(function () { document.getElementById("updated").textContent = "console unreachable"; });
  }

  fetch("/api/session", { credentials: "same-origin" }).then(function (r) {
    if (r.status === 401) { window.location = "/login"; return null; }
    return r.json();
  }).then(function (s) {
    if (!s) return;
    session = s;
    document.getElementById("whoami").textContent = s.user + " (" + s.role + ")";
    document.getElementById("logout-csrf").value = s.csrf;
    if (isAdmin()) {
      var f = document.getElementById("add-service");
      f.hidden = false;
      f.addEventListener("submit", function (ev) {
        ev.preventDefault();
        act("add-service", { service: f.proto.value + "/" + f.vip.value, scheduler: f.scheduler.value || "wlc" });
      });
    }
    refresh();
    window.setInterval(refresh, 1000);
  });
})();
