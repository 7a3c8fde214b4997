// The cxeb router dashboard. Polls GET /v1/ui/overview once a second and draws it; no libraries.
// The ingest key is asked for once, kept in sessionStorage (this tab only) and sent only in the
// Authorization header. Everything from the router is written with textContent, never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "cxeb-router-key";
  const POLL_MS = 1000;
  const COLORS = { accepted: "#0969da", delivered: "#1a7f37", dead: "#cf222e", p50: "#0969da", p99: "#bf3989",
                   pending: "#9a6700", leased: "#0969da" };
  let key = sessionStorage.getItem(KEY_STORAGE);
  let timer = null;
  let lastDeadSignature = null;
  let latest = null;

  class Unauthorized extends Error {}

  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) throw new Unauthorized("the router refused the key");
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.message) || response.statusText);
    return data;
  }

  // -- formatting -------------------------------------------------------------------------------

  function fmtRate(value) {
    return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, seconds);
    if (seconds < 1) return (seconds * 1000).toFixed(0) + " ms";
    if (seconds < 90) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    if (seconds < 5400) return (seconds / 60).toFixed(0) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  // The API writes times as ISO-8601 strings; the page computes with Unix seconds.
  function secs(iso) {
    return iso === null || iso === undefined ? null : Date.parse(iso) / 1000;
  }

  function fmtTime(iso) {
    return iso.replace("T", " ").slice(0, 19) + "Z";
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text === null || text === undefined ? "–" : String(text);
    row.appendChild(td);
    return td;
  }

  // -- charts -----------------------------------------------------------------------------------

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function drawChart(canvas, times, series, options) {
    const minMax = (options && options.minMax) || 0;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight || 180;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 46, right = 8, top = 8, bottom = 20;
    const plotW = width - left - right, plotH = height - top - bottom;
    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    max = niceMax(Math.max(max, minMax));
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#656d76";
    ctx.strokeStyle = "#eaeef2";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + plotW, y + 0.5); ctx.stroke();
      const label = (max * i) / 4;
      ctx.fillText(label >= 10 || label === 0 ? label.toFixed(0) : label.toFixed(1), left - 6, y);
    }
    const n = times.length;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    if (n > 1) {
      const span = times[n - 1] - times[0];
      const step = span > 180 ? 60 : span > 90 ? 30 : 15;
      for (let ago = 0; ago <= span; ago += step) {
        const x = left + plotW * (1 - ago / span);
        ctx.textAlign = ago === 0 ? "right" : "center";
        ctx.fillText(ago === 0 ? "now" : "-" + (ago >= 60 && ago % 60 === 0 ? ago / 60 + " min" : ago + " s"), x, top + plotH + 5);
      }
    }
    const counts = {};
    let nonzero = 0;
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      let pen = false, points = 0;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        points += 1;
        if (v > 0) nonzero += 1;
        const x = left + (n > 1 ? (plotW * i) / (n - 1) : plotW);
        const y = top + plotH - (plotH * v) / max;
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.stroke();
      counts[s.name] = points;
    }
    // For tests and curious people: how many points each series drew, and how many were above zero.
    canvas.dataset.points = JSON.stringify(counts);
    canvas.dataset.nonzero = String(nonzero);
    const legend = document.querySelector('.legend[data-for="' + canvas.id + '"]');
    if (legend && !legend.childElementCount) {
      for (const s of series) {
        const item = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = s.color;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(s.name));
        legend.appendChild(item);
      }
    }
  }

  // Seconds before the first sign of life are left out, so a young router's charts are not a flat line
  // with a spike at the end; at least a minute is shown.
  function firstActiveIndex(tl, upTo) {
    const columns = ["accepted", "delivered", "dead", "attempts", "queuePending", "queueLeased", "queueDead"];
    for (let i = 0; i < upTo; i++) {
      if (columns.some((name) => tl[name][i] !== null && tl[name][i] > 0)) return Math.max(0, Math.min(i, upTo - 60));
    }
    return Math.max(0, upTo - 60);
  }

  function drawCharts(data) {
    const tl = data.timeline;
    const upTo = tl.t.length - 1; // the current second is still filling up: leave it out
    const from = firstActiveIndex(tl, upTo);
    const cut = (name) => tl[name].slice(from, upTo);
    const t = tl.t.slice(from, upTo).map(secs);
    drawChart($("chart-throughput"), t, [
      { name: "accepted", color: COLORS.accepted, values: cut("accepted") },
      { name: "delivered", color: COLORS.delivered, values: cut("delivered") },
      { name: "dead-lettered", color: COLORS.dead, values: cut("dead") },
    ], { minMax: 4 });
    drawChart($("chart-latency"), t, [
      { name: "p50", color: COLORS.p50, values: cut("p50Ms") },
      { name: "p99", color: COLORS.p99, values: cut("p99Ms") },
    ]);
    drawChart($("chart-queue"), t, [
      { name: "pending", color: COLORS.pending, values: cut("queuePending") },
      { name: "leased", color: COLORS.leased, values: cut("queueLeased") },
      { name: "dead letters", color: COLORS.dead, values: cut("queueDead") },
    ], { minMax: 4 });
  }

  // -- tiles and tables -------------------------------------------------------------------------

  function lastSeconds(values, count) {
    const window = values.slice(Math.max(0, values.length - 1 - count), values.length - 1);
    return window.length ? window.reduce((a, b) => a + b, 0) / window.length : 0;
  }

  function renderTiles(data) {
    const tl = data.timeline;
    $("tile-accepted").textContent = fmtRate(lastSeconds(tl.accepted, 10));
    $("tile-delivered").textContent = fmtRate(lastSeconds(tl.delivered, 10));
    const recent = tl.p99Ms.slice(-11, -1).filter((v) => v !== null);
    $("tile-p99").textContent = recent.length ? Math.max(...recent).toFixed(1) + " ms" : "–";
    $("tile-pending").textContent = String(data.queue.pending);
    const oldest = data.queue.oldestPendingAt;
    $("tile-oldest").textContent = oldest === null ? "–" : fmtDuration(secs(data.now) - secs(oldest));
    $("tile-dead").textContent = String(data.queue.dead);
  }

  function lastAnswer(row, now) {
    if (row.lastAttemptAt === null || row.lastAttemptAt === undefined) return "no attempt yet";
    const what = row.lastStatus !== null ? "status " + row.lastStatus : row.lastError || "no answer";
    return what + ", " + fmtDuration(secs(now) - secs(row.lastAttemptAt)) + " ago";
  }

  function renderTargets(data) {
    const body = $("targets").tBodies[0];
    const rows = [];
    for (const t of data.targets) {
      const tr = document.createElement("tr");
      tr.dataset.target = t.target;
      cell(tr, t.target);
      const circuit = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "badge " + t.circuit;
      badge.textContent = t.circuit.replace("_", "-");
      circuit.appendChild(badge);
      if (t.circuit !== "closed") {
        const why = document.createElement("span");
        why.className = "why";
        const next = t.circuitUntil !== null ? "next probe in " + fmtDuration(secs(t.circuitUntil) - secs(data.now)) : "probing";
        why.textContent = next + (t.circuitReason ? " — " + t.circuitReason : "");
        circuit.appendChild(why);
      }
      cell(tr, t.delivered, "num");
      cell(tr, t.retrying, "num");
      cell(tr, t.failed, "num");
      cell(tr, t.pending, "num");
      cell(tr, (t.p50Ms === null ? "–" : t.p50Ms.toFixed(1)) + " / " + (t.p99Ms === null ? "–" : t.p99Ms.toFixed(1)), "num");
      cell(tr, lastAnswer(t, data.now), "detail");
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderDeadLetters(data) {
    const letters = data.deadLetters;
    $("dead-count").textContent = data.queue.dead > letters.length
      ? "(newest " + letters.length + " of " + data.queue.dead + ")" : "(" + letters.length + ")";
    $("no-dead").hidden = letters.length > 0;
    $("replay-all").disabled = $("purge-all").disabled = letters.length === 0;
    const signature = letters.map((d) => d.deliveryId).join(",");
    if (signature === lastDeadSignature) return; // keep the buttons under the pointer stable
    lastDeadSignature = signature;
    const rows = letters.map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.deliveryId = d.deliveryId;
      tr.dataset.eventId = d.eventId;
      cell(tr, fmtTime(d.deadAt));
      cell(tr, d.target);
      const event = cell(tr, "");
      const code = document.createElement("code");
      code.textContent = d.eventId;
      const link = document.createElement("button");
      link.type = "button";
      link.className = "link";
      link.title = "show this event's history";
      link.appendChild(code);
      link.addEventListener("click", () => showHistory(d.eventId));
      event.appendChild(link);
      cell(tr, d.reason);
      cell(tr, d.attempts, "num");
      cell(tr, d.lastStatus !== null ? "status " + d.lastStatus : d.lastError, "detail");
      const actions = cell(tr, "");
      for (const [action, label] of [["replay", "Replay"], ["purge", "Purge"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        button.dataset.action = action;
        if (action === "purge") button.className = "danger";
        button.addEventListener("click", () => act(action, [d.deliveryId], button));
        actions.appendChild(button);
      }
      return tr;
    });
    $("dead-letters").tBodies[0].replaceChildren(...rows);
  }

  async function act(action, ids, button) {
    const what = ids === null ? "every dead letter" : ids.length + " dead letter(s)";
    if (action === "purge" && !window.confirm("Delete " + what + " for good?")) return;
    if (button) button.disabled = true;
    try {
      const result = await api("POST", "/v1/dead-letters/" + action, ids === null ? {} : { deliveryIds: ids });
      const count = action === "replay" ? result.replayed : result.purged;
      $("action-result").textContent = (action === "replay" ? "replayed " : "purged ") + count;
      lastDeadSignature = null; // redraw the rows whatever comes back
      await refresh();
    } catch (error) {
      $("action-result").textContent = action + " failed: " + error.message;
      if (button) button.disabled = false;
      if (error instanceof Unauthorized) askForKey(error.message);
    }
  }

  // -- one event's history (GET /v1/events/{id}) -------------------------------------------------

  async function showHistory(eventId) {
    $("history-input").value = eventId;
    $("history-error").textContent = "";
    try {
      renderHistory(await api("GET", "/v1/events/" + encodeURIComponent(eventId)));
    } catch (error) {
      $("history").hidden = true;
      $("history-summary").hidden = true;
      $("history-error").textContent = error.message;
      if (error instanceof Unauthorized) askForKey(error.message);
    }
    $("history-panel").scrollIntoView({ block: "nearest" });
  }

  function renderHistory(h) {
    const summary = $("history-summary");
    const count = h.deliveries.length + (h.deliveries.length === 1 ? " delivery" : " deliveries");
    const parts = ["event " + h.eventId, "accepted " + (h.acceptedAt || "(pruned)"), count];
    if (h.replayOf) parts.push("a replay of " + h.replayOf);
    if (!h.attemptsRecorded) parts.push("attempts are recorded with --archive-days");
    summary.textContent = parts.join(" · ");
    summary.hidden = false;
    const rows = [];
    for (const d of h.deliveries) {
      const attempts = d.history.length ? d.history : [null];
      attempts.forEach((a, index) => {
        const tr = document.createElement("tr");
        if (index === 0) {
          cell(tr, d.target);
          const id = cell(tr, "");
          const code = document.createElement("code");
          code.textContent = d.deliveryId;
          id.appendChild(code);
          if (d.replayId) {
            const mark = document.createElement("span");
            mark.className = "badge replay";
            mark.textContent = "replay " + d.replayId;
            id.appendChild(mark);
          }
          cell(tr, d.state + (d.reason ? " (" + d.reason + ")" : ""));
        } else {
          cell(tr, ""); cell(tr, ""); cell(tr, "");
        }
        if (a === null) {
          cell(tr, d.attempts ? d.attempts + " made" : "none yet");
          cell(tr, d.doneAt); cell(tr, ""); cell(tr, d.lastStatus, "num"); cell(tr, ""); cell(tr, d.lastError, "detail");
        } else {
          cell(tr, "#" + a.attempt);
          cell(tr, a.at);
          cell(tr, a.outcome);
          cell(tr, a.status, "num");
          cell(tr, a.latencyMs.toFixed(1), "num");
          cell(tr, [a.category, a.error].filter(Boolean).join(": ") || null, "detail");
        }
        rows.push(tr);
      });
    }
    $("history").tBodies[0].replaceChildren(...rows);
    $("history").hidden = rows.length === 0;
  }

  // -- the loop ---------------------------------------------------------------------------------

  function setLive(ok, text) {
    const live = $("live");
    live.className = "live " + (ok ? "ok" : "bad");
    live.textContent = text;
  }

  async function refresh() {
    try {
      const data = await api("GET", "/v1/ui/overview");
      latest = data;
      $("key-panel").hidden = true;
      $("main").hidden = false;
      $("forget-key").hidden = !key;
      renderTiles(data);
      drawCharts(data);
      renderTargets(data);
      renderDeadLetters(data);
      setLive(true, "live · " + fmtTime(data.now));
    } catch (error) {
      if (error instanceof Unauthorized) {
        askForKey(key ? "the router refused this key" : "");
        return;
      }
      setLive(false, "router unreachable: " + error.message);
    }
  }

  function askForKey(message) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    $("main").hidden = true;
    $("key-panel").hidden = false;
    $("key-error").textContent = message || "";
    setLive(false, "key needed");
    $("key-input").focus();
  }

  function start() {
    if (timer !== null) clearInterval(timer);
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      key = $("key-input").value.trim();
      $("key-input").value = "";
      sessionStorage.setItem(KEY_STORAGE, key);
      start();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      key = null;
      askForKey("");
    });
    $("history-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("history-input").value.trim();
      if (id) showHistory(id);
    });
    $("replay-all").addEventListener("click", (e) => act("replay", null, e.target));
    $("purge-all").addEventListener("click", (e) => act("purge", null, e.target));
    window.addEventListener("resize", () => { if (latest) drawCharts(latest); });
    start();
  });
})();
