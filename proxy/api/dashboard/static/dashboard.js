// MegaRouter dashboard pages. Reads /dashboard/api/* with the session cookie (sent by the browser, never
// visible here) and draws with MRCharts. Text from the server goes in with textContent only.
"use strict";
(function () {
  const C = window.MRCharts;
  const RANGES = { "24h": [86400, "hour"], "7d": [7 * 86400, "day"], "30d": [30 * 86400, "day"] };
  const HEALTH_REFRESH_MS = 10000;
  const state = { range: "24h", groupBy: "model", session: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) { window.location.assign("/dashboard/login"); throw new Error("signed out"); }
    const body = await response.json();
    if (!response.ok) {
      const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // Display only: amounts arrive as integer nano-USD and are never added up here for anything but a chart.
  function usd(nano) {
    const value = Number(nano) / 1e9;
    if (value === 0) return "$0";
    if (Math.abs(value) < 1e-6) return "$" + value.toFixed(9).replace(/0+$/, ""); // JS would write 1e-7.
    if (Math.abs(value) < 0.01) return "$" + String(Number(value.toPrecision(3)));
    return "$" + value.toLocaleString("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  }
  // Enough decimals to see a balance move by a single request's cost.
  const usdFine = (nano) => "$" + (Number(nano) / 1e9).toFixed(6);
  const count = (v) => Number(v).toLocaleString("en-US", { maximumFractionDigits: 0 });
  const ms = (v) => (Number(v) < 10 && Number(v) !== 0 ? `${Number(v).toFixed(1)} ms` : `${Math.round(Number(v))} ms`);
  const pct = (v) => `${(Number(v) * 100).toFixed(1)}%`;
  function timeLabel(unixS, bucket) {
    const d = new Date(unixS * 1000);
    const iso = d.toISOString();
    return bucket === "hour" ? iso.slice(11, 16) : iso.slice(5, 10);
  }

  function panel(id, title) {
    const section = el("section", null, "panel");
    section.id = id;
    section.appendChild(el("h2", title));
    const body = el("div", null, "panel-body");
    section.appendChild(body);
    $("panels").appendChild(section);
    return body;
  }

  function failed(body, error) {
    if (error.status === 204) return C.empty(body, error.message);
    C.empty(body, error.status === 404 ? "not available on this server" : `could not load: ${error.message}`);
  }

  // ----- analytics (overview) -----
  // A dimension that does not apply to a row (no model served, no key used) comes as null.
  function groupName(row, dimension) {
    const value = (row.group || {})[dimension];
    if (value === null || value === undefined) return dimension === "key" ? "(no key: x402)" : "(none)";
    if (dimension === "key") return (state.keyNames || {})[value] || `key ${value}`;
    return String(value);
  }

  function pivot(rows, dimension, field, bucketLabels) {
    const index = new Map(bucketLabels.map((t, i) => [t, i]));
    const byName = new Map();
    for (const row of rows) {
      const name = groupName(row, dimension);
      if (!byName.has(name)) byName.set(name, bucketLabels.map(() => 0));
      const i = index.get(row.bucket_start);
      if (i !== undefined) byName.get(name)[i] += Number(row[field] || 0);
    }
    // A group with nothing in this measure (e.g. no spend: requests that failed before any model served)
    // would only add an empty legend entry.
    const series = [...byName.entries()].map(([name, values]) => ({ name, values }))
      .filter((s) => s.values.some((v) => v > 0));
    series.sort((a, b) => b.values.reduce((x, y) => x + y, 0) - a.values.reduce((x, y) => x + y, 0));
    return series.slice(0, 9);
  }

  function bucketsOf(start, end, bucket) {
    const step = bucket === "hour" ? 3600 : 86400;
    const out = [];
    for (let t = Math.floor(start / step) * step; t < end; t += step) out.push(t);
    return out;
  }

  async function analytics(groupBy) {
    const [span, bucket] = RANGES[state.range];
    // Whole buckets, the current one last: always the same number of buckets for a range.
    const step = bucket === "hour" ? 3600 : 86400;
    const end = (Math.floor(Date.now() / 1000 / step) + 1) * step;
    const start = end - span;
    const query = new URLSearchParams({ start, end, bucket, group_by: groupBy });
    const answer = await api(`/dashboard/api/analytics?${query}`);
    state.keyNames = Object.assign(state.keyNames || {}, answer.key_names || {});
    return { rows: answer.data, buckets: bucketsOf(start, end, bucket), bucket };
  }

  async function drawOverview() {
    const controls = $("controls");
    controls.hidden = false;
    const spend = panel("spend", "Spend over time");
    const byKey = panel("spend-by-key", "Spend by key");
    const requests = panel("requests", "Requests and errors");
    const latency = panel("latency", "Latency percentiles");
    const recent = panel("recent", "Latest requests: latency");
    const recentUsage = api("/dashboard/api/usage").catch((e) => e);
    try {
      const a = await analytics(state.groupBy);
      if (!a.rows.length) throw Object.assign(new Error("no requests in this range"), { status: 204 });
      const labels = a.buckets.map((t) => timeLabel(t, a.bucket));
      C.stacked(spend, { labels, series: pivot(a.rows, state.groupBy, "spend_nano_usd", a.buckets), format: usd });
      const perBucket = (field) => a.buckets.map((t) => a.rows.filter((r) => r.bucket_start === t)
        .reduce((sum, r) => sum + Number(r[field] || 0), 0));
      C.lines(requests, { labels, series: [{ name: "requests", values: perBucket("requests") },
        { name: "errors", values: perBucket("errors") }], format: count, whole: true });
      drawLatency(latency, a, labels);
    } catch (error) { for (const body of [spend, requests, latency]) failed(body, error); }
    try {
      const k = await analytics("key");
      const labels = k.buckets.map((t) => timeLabel(t, k.bucket));
      C.stacked(byKey, { labels, series: pivot(k.rows, "key", "spend_nano_usd", k.buckets), format: usd });
    } catch (error) { failed(byKey, error); }
    const usage = await recentUsage;
    if (usage instanceof Error) return failed(recent, usage);
    C.scatter(recent, {
      points: usage.data.map((e, i) => ({ x: usage.data.length - i, y: e.latency_ms, group: e.outcome,
        label: `${e.model || "?"} ${e.cost_usd} USD` })),
      format: ms, xFormat: (x) => `#${Math.round(x)}`,
    });
  }

  function drawLatency(body, a, labels) {
    // Percentiles cannot be merged across groups: show the busiest group's, with a choice of group.
    const totals = new Map();
    for (const r of a.rows) {
      const name = groupName(r, state.groupBy);
      totals.set(name, (totals.get(name) || 0) + Number(r.requests || 0));
    }
    const names = [...totals.keys()].sort((x, y) => totals.get(y) - totals.get(x));
    if (!names.length) return C.empty(body, "no data in this range");
    const select = el("select");
    select.id = "latency-group";
    for (const name of names) select.appendChild(el("option", name));
    const holder = el("div");
    const draw = () => {
      const mine = a.rows.filter((r) => groupName(r, state.groupBy) === select.value);
      const at = (p) => a.buckets.map((t) => {
        const row = mine.find((r) => r.bucket_start === t);
        return row && row.latency_ms ? row.latency_ms[p] : null;
      });
      C.lines(holder, { labels, series: ["p50", "p95", "p99"].map((p) => ({ name: p, values: at(p) })), format: ms });
    };
    select.addEventListener("change", draw);
    body.appendChild(select);
    body.appendChild(holder);
    draw();
  }

  // ----- health -----
  async function drawHealth() {
    const grid = panel("deployments", "Deployments: health and breakers");
    const breakers = panel("breakers", "Breaker states");
    const errors = panel("error-rates", "Error rate by deployment");
    const gauges = state.session.kind === "operator" ? panel("gauges", "Holds, settlements, failovers") : null;
    const alerts = state.session.kind === "operator" ? panel("alerts", "Recent alerts") : null;
    const refresh = async () => {
      try {
        const d = await api("/dashboard/api/deployments");
        drawDeployments(grid, breakers, errors, d.data);
      } catch (error) { failed(grid, error); }
      if (gauges) {
        try { drawGauges(gauges, (await api("/dashboard/api/metrics")).data); } catch (error) { failed(gauges, error); }
      }
      if (alerts) {
        try { drawAlerts(alerts, (await api("/dashboard/api/alerts")).data); } catch (error) { failed(alerts, error); }
      }
    };
    await refresh();
    window.setInterval(refresh, HEALTH_REFRESH_MS);
  }

  function drawDeployments(grid, breakers, errors, data) {
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    const seen = data.filter((d) => d.health.successes_total + d.health.failures_total > 0);
    const shown = seen.length ? seen : data.slice(0, 12);
    const tiles = el("div", null, "tiles");
    for (const d of shown) {
      const h = d.health;
      const tile = el("div", null, `tile breaker-${h.breaker}`);
      tile.appendChild(el("strong", d.id));
      tile.appendChild(el("span", `breaker ${h.breaker.replace("_", "-")}`, "state"));
      tile.appendChild(el("span", `errors ${pct(h.error_rate)} · ${h.successes_total} ok / ${h.failures_total} failed`));
      tile.appendChild(el("span", `latency ${h.latency_ewma_s === null ? "–" : ms(h.latency_ewma_s * 1000)}`
        + ` · ttft ${h.ttft_ewma_s === null ? "–" : ms(h.ttft_ewma_s * 1000)}`));
      tiles.appendChild(tile);
    }
    grid.appendChild(tiles);
    grid.appendChild(el("p", `${data.length} deployments configured, ${seen.length} have served traffic`, "note"));
    const states = ["closed", "half_open", "open"];
    const colors = { closed: "#59a14f", half_open: "#edc948", open: "#e15759" };
    // Deployments that never served are all closed; the ones with traffic are the ones to watch.
    C.hbars(breakers, { items: states.map((s) => ({ label: s.replace("_", "-"), color: colors[s],
      value: seen.filter((d) => d.health.breaker === s).length })), format: count });
    C.hbars(errors, { items: seen.map((d) => ({ label: d.id, value: d.health.error_rate,
      color: d.health.error_rate > 0 ? "#e15759" : "#59a14f" })), format: pct });
  }

  function drawGauges(body, samples) {
    while (body.firstChild) body.removeChild(body.firstChild);
    const tiles = el("div", null, "tiles");
    const add = (label, value) => {
      const tile = el("div", null, "tile gauge");
      tile.appendChild(el("span", label, "label"));
      tile.appendChild(el("strong", value));
      tiles.appendChild(tile);
    };
    const one = (name) => samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);
    add("open holds", count(one("megarouter_open_holds")));
    add("held", usd(one("megarouter_open_holds_nano_usd")));
    add("failovers", count(one("megarouter_failovers_total")));
    add("requests served", count(one("megarouter_requests_total")));
    for (const s of samples.filter((x) => x.name === "megarouter_settlement_intents")) {
      add(`settlements ${Object.values(s.labels).join(" ")}`, count(s.value));
    }
    body.appendChild(tiles);
  }

  function drawAlerts(body, alerts) {
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!alerts.length) { body.appendChild(el("p", "no alerts", "empty")); return; }
    const list = el("ul", null, "alerts");
    for (const a of alerts) {
      const item = el("li");
      item.appendChild(el("time", new Date(Number(a.created_at) * 1000).toISOString().replace("T", " ").slice(0, 19)));
      item.appendChild(el("strong", a.kind));
      item.appendChild(el("span", a.subject));
      // The alert history answers a delivery state ("delivered", "pending", "failed", …) or a flag.
      const delivery = a.delivery && a.delivery.state ? String(a.delivery.state) : a.delivered ? "delivered" : "pending";
      item.appendChild(el("span", delivery, delivery === "delivered" ? "ok" : "warn"));
      list.appendChild(item);
    }
    body.appendChild(list);
  }

  // ----- money -----
  async function drawMoney() {
    const burn = panel("burn-down", "Credit burn-down");
    const budgetPanel = state.session.features.budgets ? panel("budgets", "Budgets") : null;
    const operator = state.session.kind === "operator";
    const balances = operator ? panel("balances", "Ledger balances") : null;
    const recon = operator ? panel("reconciliation", "Last reconciliation") : null;
    await drawBurnDown(burn, "");
    if (budgetPanel) {
      try { drawBudgets(budgetPanel, (await api("/dashboard/api/budgets")).data); }
      catch (error) { budgetPanel.parentElement.hidden = true; }
    }
    if (operator) {
      try {
        const ledger = await api("/dashboard/api/ledger");
        // Only accounts kept in nano-USD share the chart; gas (native coin, in wei) is listed apart.
        const dollars = ledger.balances.filter((b) => b.unit === "nano_usd" && b.posted !== 0);
        C.hbars(balances, { items: dollars.slice(0, 25).map((b) => ({ label: b.account, value: b.posted,
          color: b.posted < 0 ? "#e15759" : undefined })), format: usd });
        for (const b of ledger.balances.filter((x) => x.unit !== "nano_usd" && x.posted !== 0)) {
          balances.appendChild(el("p", `${b.account}: ${(Number(b.posted) / 1e18).toPrecision(6)} (native coin, ${b.unit} / 1e18)`, "note"));
        }
        balances.appendChild(el("p", `${ledger.accounts_total} accounts; the 25 largest in USD shown`, "note"));
        drawReconciliation(recon, ledger.last_reconciliation);
      } catch (error) { failed(balances, error); failed(recon, error); }
    }
  }

  async function drawBurnDown(body, account) {
    let credit;
    try { credit = await api(`/dashboard/api/credit${account ? "?account=" + encodeURIComponent(account) : ""}`); }
    catch (error) { return failed(body, error); }
    while (body.firstChild) body.removeChild(body.firstChild);
    if (credit.accounts.length) {
      const select = el("select");
      select.id = "credit-account";
      for (const name of credit.accounts) {
        const option = el("option", name);
        option.selected = name === credit.account;
        select.appendChild(option);
      }
      select.addEventListener("change", () => drawBurnDown(body, select.value));
      body.appendChild(select);
    }
    if (!credit.account) return body.appendChild(el("p", "no credit accounts yet", "empty"));
    const b = credit.balance;
    body.appendChild(el("p", `${credit.account}: available ${usd(b.available_nano_usd)}, held ${usd(b.pending_nano_usd)}`, "note"));
    const moves = [...credit.movements].reverse(); // oldest first
    const holder = el("div");
    body.appendChild(holder);
    const labels = moves.map((m) => new Date(m.created_at_unix_ms).toISOString().slice(5, 16).replace("T", " "));
    C.lines(holder, { labels, series: [{ name: "balance", values: moves.map((m) => m.balance_after_nano_usd) }],
      format: usdFine, zoom: true });
    body.appendChild(el("p", runOut(moves, b.available_nano_usd), "note"));
  }

  // How long the available credit lasts at the spending rate of the movements shown (an hour at least).
  function runOut(moves, availableNano) {
    const spent = moves.filter((m) => m.amount_nano_usd < 0);
    if (spent.length < 2) return "not enough spending yet to project a run-out";
    const spanMs = spent[spent.length - 1].created_at_unix_ms - spent[0].created_at_unix_ms;
    if (spanMs < 3600000) return `${spent.length} charges, all within the last hour: too little history to project a run-out`;
    const perDay = (-spent.reduce((sum, m) => sum + m.amount_nano_usd, 0) * 86400000) / spanMs;
    return `spending ${usd(perDay)}/day: the available credit lasts about ${(availableNano / perDay).toFixed(1)} days`;
  }

  function drawBudgets(body, budgets) {
    C.hbars(body, { items: budgets.map((b) => ({ label: String(b.name || b.id),
      value: Number(b.amount_nano_usd) > 0 ? Number(b.spent_nano_usd || 0) / Number(b.amount_nano_usd) : 0,
      color: "#f28e2b" })), format: pct });
  }

  function drawReconciliation(body, run) {
    if (!run) { body.appendChild(el("p", "no reconciliation has run yet (megarouter ledger reconcile)", "empty")); return; }
    const tile = el("div", null, `tile ${run.breaks_count ? "breaker-open" : "breaker-closed"}`);
    tile.appendChild(el("strong", run.breaks_count ? `${run.breaks_count} breaks` : "clean"));
    tile.appendChild(el("span", `run #${run.id} at ${new Date(run.started_at_unix_ms).toISOString().replace("T", " ").slice(0, 19)} UTC`));
    tile.appendChild(el("span", `${run.matched_count} of ${run.movements_count} movements matched`));
    body.appendChild(tile);
    if (run.breaks.length) {
      const list = el("ul", null, "alerts");
      for (const b of run.breaks) list.appendChild(el("li", `${b.kind}: ${b.detail}`));
      body.appendChild(list);
    }
  }

  // ----- shell -----
  async function main() {
    state.session = await api("/dashboard/api/session");
    $("who").textContent = state.session.kind === "operator" ? "operator" : `wallet ${state.session.wallet}`;
    const path = window.location.pathname.replace(/\/$/, "");
    for (const link of document.querySelectorAll("nav a")) {
      if (link.getAttribute("href") === path) link.classList.add("current");
    }
    $("logout").addEventListener("click", async () => {
      await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin" });
      window.location.assign("/dashboard/login");
    });
    for (const [id, key] of [["range", "range"], ["group-by", "groupBy"]]) {
      $(id).addEventListener("change", (event) => {
        state[key] = event.target.value;
        while ($("panels").firstChild) $("panels").removeChild($("panels").firstChild);
        drawOverview().finally(done);
      });
    }
    const page = path === "/dashboard/health" ? drawHealth : path === "/dashboard/money" ? drawMoney : drawOverview;
    await page();
  }

  function done() { document.body.setAttribute("data-ready", "true"); }

  document.addEventListener("DOMContentLoaded", () => { main().catch((error) => {
    const p = el("p", `could not draw the dashboard: ${error.message}`, "empty");
    $("panels").appendChild(p);
  }).finally(done); });
})();
