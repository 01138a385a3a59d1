/* shadowproxy dashboard: a single page over /api/v1, vanilla JS, no dependencies.
 *
 * Safety: every value from traffic reaches the page through textContent or a DOM attribute set
 * by name (never innerHTML, never a URL built from traffic); the page's Content-Security-Policy
 * forbids inline script as a second line of defence. The admin token comes from the URL fragment
 * (#token=...) or the token form, lives in sessionStorage only, and is sent as a Bearer header.
 */
"use strict";

(function () {
  const TOKEN_KEY = "shadowproxy.token";
  const WINDOW_KEY = "shadowproxy.window";
  const REFRESH_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    window: sessionStorage.getItem(WINDOW_KEY) || "1h",
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    route: { name: "overview" },
    fieldSort: { key: "count", asc: false },
    overviewSort: { key: "mismatch_rate", asc: false },
    snippets: {},          // fingerprint -> YAML snippet shown after "mark expected"
    fingerprint: null,     // endpoint view: mismatches filtered by this group
    current: 0,            // mismatch view: index of the difference in focus
    busy: false,
    renderId: 0,
  };

  const view = document.getElementById("view");
  const statusEl = document.getElementById("status");

  // ---- DOM building (text only) -------------------------------------------------------------

  /** Create an element. attrs: class, text, title, on<event> handlers, data-*, other attributes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return el;
  }

  /** An in-page link to a dashboard route (the href is built from encoded parts only). */
  function link(route, ...children) {
    return h("a", { href: routeHash(route) }, ...children);
  }

  function routeHash(route) {
    if (route.name === "endpoint") return "#/endpoint/" + encodeURIComponent(route.endpoint);
    if (route.name === "mismatch") return "#/mismatch/" + encodeURIComponent(route.id);
    return "#/";
  }

  // ---- formatting ---------------------------------------------------------------------------

  const pct = (x) => (x * 100).toFixed(x > 0 && x < 0.0001 ? 3 : 2) + " %";
  const ms = (x) => (x >= 100 ? Math.round(x) : x.toFixed(1)) + " ms";
  const num = (x) => Number(x).toLocaleString("en-US");
  function when(ts) {
    const d = new Date(ts * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 60) return Math.round(s) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }
  /** A path and query as people read it (%D0%A4 → Ф); reserved characters stay encoded. Display
   *  only: the raw form is in the title and in the curl command. */
  function readable(target) {
    try { return decodeURI(target); } catch (e) { return target; }
  }

  function short(value, max) {
    let text = value === undefined ? "—" : JSON.stringify(value);
    if (text === undefined) text = String(value);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function headers(extra) {
    const out = Object.assign({ Accept: "application/json" }, extra || {});
    if (state.token) out.Authorization = "Bearer " + state.token;
    return out;
  }

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") query.set(k, v);
    }
    const qs = query.toString();
    const response = await fetch("/api/v1/" + path + (qs ? "?" + qs : ""), {
      headers: headers(), credentials: "omit", cache: "no-store",
    });
    return decode(response);
  }

  async function post(path, body) {
    const response = await fetch("/api/v1/" + path, {
      method: "POST",
      credentials: "omit",
      headers: headers({ "Content-Type": "application/json", "X-Requested-With": "shadowproxy" }),
      body: JSON.stringify(body),
    });
    return decode(response);
  }

  async function decode(response) {
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (response.status === 401) {
      showTokenBar(true);
      throw new ApiError(401, "This admin listener needs a token: paste it above.");
    }
    if (!response.ok) {
      throw new ApiError(response.status, (payload && payload.error) || "HTTP " + response.status);
    }
    return payload;
  }

  let sayTimer = null;
  function say(message, info) {
    statusEl.textContent = message || "";
    statusEl.classList.toggle("info", Boolean(info));
    clearTimeout(sayTimer);
    // Confirmations fade after a moment; errors stay until the next successful load.
    if (info && message) sayTimer = setTimeout(() => say(""), 4000);
  }

  // ---- token ----------------------------------------------------------------------------------

  function takeTokenFromFragment() {
    const match = /^#token=([^&]*)/.exec(location.hash);
    if (!match) return;
    try { state.token = decodeURIComponent(match[1]); } catch (e) { state.token = match[1]; }
    sessionStorage.setItem(TOKEN_KEY, state.token);
    document.getElementById("tokenbar").hidden = true;
    // Out of the address bar (and the history) at once: it must not be shared by copy-paste.
    history.replaceState(null, "", location.pathname + location.search + "#/");
  }

  function showTokenBar(show) {
    document.getElementById("tokenbar").hidden = !show;
    if (show) document.getElementById("token-input").focus();
  }

  function setupToken() {
    document.getElementById("token-button").addEventListener("click", () => {
      showTokenBar(document.getElementById("tokenbar").hidden);
    });
    document.getElementById("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("token-input");
      state.token = input.value.trim();
      input.value = "";
      sessionStorage.setItem(TOKEN_KEY, state.token);
      showTokenBar(false);
      say("");
      render();
    });
    document.getElementById("token-clear").addEventListener("click", () => {
      state.token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      say("Token forgotten.", true);
    });
  }

  // ---- window selector, live refresh, export --------------------------------------------------

  function setupWindows() {
    const group = document.getElementById("windows");
    for (const button of group.querySelectorAll("button")) {
      button.addEventListener("click", () => {
        state.window = button.dataset.window;
        sessionStorage.setItem(WINDOW_KEY, state.window);
        markWindow();
        render();
      });
    }
    markWindow();
  }

  function markWindow() {
    for (const button of document.querySelectorAll("#windows button")) {
      button.classList.toggle("active", button.dataset.window === state.window);
      button.setAttribute("aria-pressed", String(button.dataset.window === state.window));
    }
  }

  function setupLive() {
    setInterval(() => {
      const live = document.getElementById("live").checked;
      if (!live || document.hidden || state.busy) return;
      if (state.route.name === "overview" || state.route.name === "endpoint") render(true);
    }, REFRESH_MS);
  }

  function setupExport() {
    const toggle = document.getElementById("export-toggle");
    const menu = document.getElementById("export-menu");
    toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      menu.hidden = !menu.hidden;
      toggle.setAttribute("aria-expanded", String(!menu.hidden));
      const endpoint = state.route.name === "endpoint" ? state.route.endpoint : "all endpoints";
      document.getElementById("export-scope").textContent = `Last ${state.window} · ${endpoint}`;
    });
    document.addEventListener("click", () => { menu.hidden = true; });
    for (const button of menu.querySelectorAll("button")) {
      button.addEventListener("click", () => {
        const endpoint = state.route.name === "endpoint" ? state.route.endpoint : null;
        download(button.dataset.format, endpoint);
      });
    }
  }

  /** Fetch a report with the auth header and save it (a plain link could not send the token). */
  async function download(format, endpoint) {
    try {
      const query = new URLSearchParams({ format: format, since: state.window });
      if (endpoint) query.set("endpoint", endpoint);
      say("Preparing the " + format.toUpperCase() + " report…", true);
      const response = await fetch("/api/v1/report?" + query.toString(), {
        headers: headers(), credentials: "omit",
      });
      if (!response.ok) await decode(response);
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const a = h("a", {
        href: URL.createObjectURL(blob),
        download: match ? match[1] : "shadowproxy-report." + format,
      });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      say("");
    } catch (error) {
      say("Export failed: " + error.message);
    }
  }

  // ---- routing ------------------------------------------------------------------------------

  function parseRoute() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [kind, ...rest] = hash.split("/");
    const arg = rest.join("/");
    try {
      if (kind === "endpoint" && arg) return { name: "endpoint", endpoint: decodeURIComponent(arg) };
      if (kind === "mismatch" && arg) return { name: "mismatch", id: decodeURIComponent(arg) };
    } catch (e) { /* a mangled hash shows the overview */ }
    return { name: "overview" };
  }

  function onRoute() {
    if (location.hash.startsWith("#token=")) takeTokenFromFragment();
    const route = parseRoute();
    const changed = JSON.stringify(route) !== JSON.stringify(state.route);
    state.route = route;
    if (changed) {
      state.fingerprint = null;
      state.current = 0;
      window.scrollTo(0, 0);
    }
    render();
  }

  function crumbs() {
    const nav = document.getElementById("crumbs");
    const parts = [h("span", { class: "sep", text: "/" }), link({ name: "overview" }, "Overview")];
    const route = state.route;
    if (route.name === "endpoint") {
      parts.push(h("span", { class: "sep", text: "/" }), h("span", { text: route.endpoint }));
    }
    if (route.name === "mismatch") {
      parts.push(h("span", { class: "sep", text: "/" }), h("span", { text: "Mismatch " + route.id }));
    }
    nav.replaceChildren(...parts);
  }

  /** Render the current route; a refresh keeps the page as it is until new data is in. */
  async function render(refresh) {
    const id = ++state.renderId;
    state.busy = true;
    crumbs();
    if (!refresh) view.replaceChildren(h("p", { class: "muted loading", text: "Loading…" }));
    try {
      let content;
      if (state.route.name === "endpoint") content = await endpointView(state.route.endpoint);
      else if (state.route.name === "mismatch") content = await mismatchView(state.route.id);
      else content = await overview();
      if (id !== state.renderId) return;  // a newer render started meanwhile
      view.replaceChildren(...content.filter(Boolean));
      document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      if (statusEl.textContent && !statusEl.classList.contains("info")) say("");
      if (state.route.name === "mismatch") {
        focusDifference(state.current, false);
        syncPanes();
      }
    } catch (error) {
      if (id !== state.renderId) return;
      say(error.message);
      if (!refresh) view.replaceChildren(h("p", { class: "empty", text: "Could not load: " + error.message }));
    } finally {
      if (id === state.renderId) state.busy = false;
    }
  }

  // ---- overview -----------------------------------------------------------------------------

  const OVERVIEW_COLUMNS = [
    // [label, key, numeric, title]
    ["Endpoint", "endpoint", false, null],
    ["Ready", "ready", false, null],
    ["Compared", "compared", true, null],
    ["Mismatch", "mismatch_rate", true, null],
    ["Shadow err.", "shadow_error_rate", true, null],
    ["p50 P / S", "p50", true, "primary / shadow"],
    ["p95 P / S", "p95", true, "primary / shadow"],
    ["Trend", null, false, "volume per bucket; red: share that mismatched or failed"],
    ["Critical", "critical", true, null],
  ];

  function overviewValue(e, ready, key) {
    if (key === "ready") return ready.get(e.endpoint) && ready.get(e.endpoint).passed ? 1 : 0;
    if (key === "p50") return e.latency_ms.shadow.p50;
    if (key === "p95") return e.latency_ms.shadow.p95;
    return e[key];
  }

  async function overview() {
    const since = state.window;
    const [summary, readiness, trend, fields] = await Promise.all([
      api("summary", { since }),
      api("readiness", { since }),
      api("trend", { since, buckets: 40 }),
      api("fields", { since }),
    ]);
    const ready = new Map(readiness.endpoints.map((r) => [r.endpoint, r]));
    const series = new Map(trend.endpoints.map((t) => [t.endpoint, t.points]));
    const totals = summary.totals;
    const passing = readiness.endpoints.filter((r) => r.passed).length;

    const cards = h("div", { class: "cards" },
      card("Compared", num(totals.compared), "in the last " + since),
      card("Mismatch rate", pct(totals.mismatch_rate), num(totals.mismatches) + " mismatches",
        totals.mismatches > 0 ? "bad" : "ok"),
      card("Shadow errors", pct(totals.shadow_error_rate), num(totals.shadow_errors) + " errors",
        totals.shadow_errors > 0 ? "bad" : "ok"),
      card("Critical", num(totals.critical), "comparisons with critical differences",
        totals.critical > 0 ? "bad" : "ok"),
      card("Ready", passing + " / " + readiness.endpoints.length, "endpoints pass the gate",
        readiness.endpoints.length && passing === readiness.endpoints.length ? "ok" : "bad"),
    );

    // Worst first by default: where the rewrite differs is what the page is for.
    const { key, asc } = state.overviewSort;
    const endpoints = summary.endpoints.slice().sort((a, b) => {
      const x = overviewValue(a, ready, key), y = overviewValue(b, ready, key);
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return (asc ? order : -order) || a.endpoint.localeCompare(b.endpoint);
    });

    const rows = endpoints.map((e) => {
      const r = ready.get(e.endpoint);
      const failures = r ? r.checks.filter((c) => !c.passed) : [];
      const slow = failures.some((c) => c.name === "latency_ratio" || c.name === "shadow_p95");
      return h("tr", {
        class: "clickable",
        "data-endpoint": e.endpoint,
        onclick: (event) => {
          if (event.target.closest("a")) return;
          location.hash = routeHash({ name: "endpoint", endpoint: e.endpoint });
        },
      },
        h("td", { class: "endpoint" }, link({ name: "endpoint", endpoint: e.endpoint }, e.endpoint),
          failures.length ? h("div", { class: "why" }, failures.map((c) => h("div", { text: c.detail }))) : null),
        h("td", null, badge(r && r.passed)),
        h("td", { class: "n", text: num(e.compared) }),
        h("td", { class: "n " + (e.mismatches ? "bad" : "zero"), text: pct(e.mismatch_rate) }),
        h("td", { class: "n " + (e.shadow_errors ? "bad" : "zero"), text: pct(e.shadow_error_rate) }),
        h("td", { class: "n" }, latency(e.latency_ms.primary.p50, e.latency_ms.shadow.p50, false)),
        h("td", { class: "n" }, latency(e.latency_ms.primary.p95, e.latency_ms.shadow.p95, slow)),
        h("td", null, sparkline(series.get(e.endpoint) || [])),
        h("td", { class: "n " + (e.critical ? "bad" : "zero"), text: num(e.critical) }),
      );
    });

    const heads = OVERVIEW_COLUMNS.map(([label, k, numeric, title]) => k === null
      ? h("th", { title, text: label })
      : h("th", {
        class: "sortable" + (numeric ? " n" : "") + (key === k ? " sorted" + (asc ? " asc" : "") : ""),
        "data-sort": k, title, text: label,
        onclick: () => {
          state.overviewSort = { key: k, asc: key === k ? !asc : !numeric };
          render(true);
        },
      }));

    const table = summary.endpoints.length
      ? h("table", { id: "endpoints" }, h("thead", null, h("tr", null, heads)), h("tbody", null, rows))
      : h("p", { class: "empty", text: "No comparisons in the last " + since + "." });

    const c = readiness.criteria;
    return [
      h("div", { class: "pagehead" },
        h("h1", { text: "Overview" }),
        badge(readiness.passed, readiness.passed ? "READY" : "NOT READY"),
        h("span", { class: "sub", text: "last " + since })),
      cards,
      h("section", { class: "panel" }, h("h2", null, "Endpoints",
        h("span", { class: "count", text: String(summary.endpoints.length) })), table),
      topFields(fields),
      h("p", { class: "muted", text:
        `Readiness: mismatch rate < ${pct(c.max_mismatch_rate)}, shadow errors < ` +
        `${pct(c.max_shadow_error_rate)}, ` +
        (c.max_critical ? `at most ${c.max_critical} critical` : "no critical differences") +
        `, shadow p95 < ` +
        `${c.max_latency_ratio}× primary and < ${c.max_shadow_p95_ms} ms, ≥ ${c.min_samples} samples.` }),
    ];
  }

  /** The fields that differ most often, across endpoints: where to look first. */
  function topFields(fields) {
    const all = [];
    for (const section of fields.endpoints) {
      for (const f of section.fields) all.push(Object.assign({ endpoint: section.endpoint }, f));
    }
    all.sort((a, b) => b.share - a.share || b.count - a.count);
    const top = all.slice(0, 10);
    if (!top.length) return null;
    const max = top[0].share;
    return h("section", { class: "panel", id: "top-fields" },
      h("h2", null, "Where the shadow differs most",
        h("span", { class: "count", text: "top " + top.length + " of " + all.length + " fields" })),
      h("table", null,
        h("thead", null, h("tr", null, h("th", { text: "Endpoint" }), h("th", { text: "Field" }),
          h("th", { text: "Kind" }), h("th", { class: "n", text: "Count" }),
          h("th", { class: "n", text: "Share of comparisons" }))),
        h("tbody", null, top.map((f) => h("tr", {
          class: "clickable",
          onclick: () => { location.hash = routeHash({ name: "endpoint", endpoint: f.endpoint }); },
        },
          h("td", { class: "endpoint" }, link({ name: "endpoint", endpoint: f.endpoint }, f.endpoint)),
          h("td", null, h("code", { text: f.template || "(whole body)" })),
          h("td", null, h("span", { class: "badge kind", text: f.kind })),
          h("td", { class: "n", text: num(f.count) }),
          h("td", { class: "n" }, h("div", { class: "share" }, h("span", { text: pct(f.share) }),
            shareBar(f.share, max))))))));
  }

  function card(label, value, hint, tone) {
    return h("div", { class: "card" },
      h("div", { class: "label", text: label }),
      h("div", { class: "value" + (tone ? " " + tone : ""), text: value }),
      hint ? h("div", { class: "hint", text: hint }) : null);
  }

  function badge(passed, text) {
    return h("span", { class: "badge " + (passed ? "pass" : "fail"), text: text || (passed ? "PASS" : "FAIL") });
  }

  function latency(primary, shadow, slow) {
    return h("span", { class: "lat" },
      h("span", { class: "p", text: ms(primary) }), " / ",
      h("span", { class: "s" + (slow ? " slow" : ""), text: ms(shadow) }));
  }

  /** Volume bars (light) with the mismatch + error share of each bucket in red. */
  function sparkline(points) {
    const width = 140, height = 28;
    const el = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    const max = Math.max(1, ...points.map((p) => p.compared));
    const step = points.length ? width / points.length : width;
    points.forEach((p, i) => {
      const vol = (p.compared / max) * (height - 2);
      const bad = p.compared ? ((p.mismatches + p.shadow_errors) / p.compared) * (height - 2) : 0;
      const x = i * step + 0.5;
      const w = Math.max(1, step - 1);
      el.append(svg("rect", { class: "vol", x, y: height - vol, width: w, height: vol }));
      if (bad > 0) {
        el.append(svg("rect", { class: "bad", x, y: height - Math.max(2, bad), width: w, height: Math.max(2, bad) }));
      }
    });
    const title = svg("title");
    const sum = points.reduce((a, p) => a + p.compared, 0);
    const bad = points.reduce((a, p) => a + p.mismatches + p.shadow_errors, 0);
    title.textContent = `${sum} compared, ${bad} mismatched or failed`;
    el.append(title);
    return el;
  }

  // ---- endpoint view ------------------------------------------------------------------------

  async function endpointView(endpoint) {
    const since = state.window;
    const [summary, readiness, fields, groups, mismatches, trend] = await Promise.all([
      api("summary", { since, endpoint }),
      api("readiness", { since, endpoint }),
      api("fields", { since, endpoint }),
      api("groups", { endpoint, limit: 25 }),
      api("mismatches", { since, endpoint, fingerprint: state.fingerprint, limit: 20 }),
      api("trend", { since, endpoint, buckets: 60 }),
    ]);
    const e = summary.endpoints[0] || {
      compared: 0, mismatches: 0, shadow_errors: 0, critical: 0, mismatch_rate: 0,
      shadow_error_rate: 0, latency_ms: { primary: { p50: 0, p95: 0 }, shadow: { p50: 0, p95: 0 } },
    };
    const r = readiness.endpoints[0];
    const section = fields.endpoints[0] || { fields: [], compared: e.compared };

    return [
      h("div", { class: "pagehead" },
        h("h1", { text: endpoint }), r ? badge(r.passed) : null,
        h("span", { class: "sub", text: "last " + since })),
      h("div", { class: "cards" },
        card("Compared", num(e.compared)),
        card("Mismatch rate", pct(e.mismatch_rate), num(e.mismatches) + " mismatches", e.mismatches ? "bad" : "ok"),
        card("Shadow errors", pct(e.shadow_error_rate), num(e.shadow_errors) + " errors", e.shadow_errors ? "bad" : "ok"),
        card("Critical", num(e.critical), null, e.critical ? "bad" : "ok"),
        card("p95 primary / shadow", ms(e.latency_ms.primary.p95) + " / " + ms(e.latency_ms.shadow.p95),
          "p50 " + ms(e.latency_ms.primary.p50) + " / " + ms(e.latency_ms.shadow.p50))),
      trendPanel(trend),
      h("div", { class: "grid2" },
        h("section", { class: "panel", id: "fields" },
          h("h2", null, "Differing fields", h("span", { class: "count", text: String(section.fields.length) })),
          fieldsTable(section.fields)),
        h("section", { class: "panel", id: "readiness" }, h("h2", { text: "Readiness" }),
          r ? h("ul", { class: "checks" }, r.checks.map((c) =>
            h("li", { class: c.passed ? "ok" : "fail", text: c.detail }))) : h("p", { class: "empty", text: "No data." }))),
      h("section", { class: "panel", id: "groups" },
        h("h2", null, "Groups", h("span", { class: "count",
          text: String(groups.items.length) + (groups.next_cursor ? "+" : "") })),
        groupsTable(groups, endpoint)),
      h("section", { class: "panel", id: "mismatches" },
        h("h2", null, state.fingerprint ? "Mismatches of group " + state.fingerprint : "Recent mismatches",
          state.fingerprint ? h("button", { type: "button", class: "ghost", text: "Show all",
            onclick: () => { state.fingerprint = null; render(); } }) : null),
        mismatchList(mismatches, { since, endpoint, fingerprint: state.fingerprint })),
    ];
  }

  /** Volume per bucket (bars) and the share that mismatched or failed (red line, own scale). */
  function trendPanel(trend) {
    const points = trend.endpoints.length ? trend.endpoints[0].points : [];
    const width = 1000, height = 110, pad = 4;
    const chart = svg("svg", {
      class: "trend", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
      role: "img", "aria-label": "trend",
    });
    const maxVol = Math.max(1, ...points.map((p) => p.compared));
    const rates = points.map((p) => (p.compared ? (p.mismatches + p.shadow_errors) / p.compared : null));
    const maxRate = Math.max(0.0001, ...rates.filter((r) => r !== null));
    const step = points.length ? width / points.length : width;
    const line = [];
    points.forEach((p, i) => {
      const vol = (p.compared / maxVol) * (height - pad);
      const w = Math.max(1, step - 2);
      chart.append(svg("rect", { class: "vol", x: i * step + 1, y: height - vol, width: w, height: vol }));
      const failed = p.mismatches + p.shadow_errors;
      if (failed) {
        const tall = Math.max(2, (failed / maxVol) * (height - pad));
        chart.append(svg("rect", { class: "bad", x: i * step + 1, y: height - tall, width: w, height: tall }));
      }
      if (rates[i] !== null) {
        line.push(`${(i + 0.5) * step},${height - pad - (rates[i] / maxRate) * (height - 2 * pad)}`);
      }
    });
    if (line.length > 1) chart.append(svg("polyline", { class: "rate", points: line.join(" ") }));
    const total = points.reduce((a, p) => a + p.compared, 0);
    const bad = points.reduce((a, p) => a + p.mismatches + p.shadow_errors, 0);
    return h("section", { class: "panel", id: "trend" },
      h("h2", null, "Trend", h("span", { class: "count",
        text: `${num(total)} compared · ${num(bad)} mismatched or failed · bucket ${Math.round(trend.bucket_seconds / 60)} min` })),
      h("div", { class: "legend" },
        h("span", { class: "key vol" }), "comparisons per bucket (peak " + num(maxVol) + ")",
        h("span", { class: "key bad" }), "of which mismatched or failed",
        h("span", { class: "key rate" }), "their share (peak " + pct(points.length ? maxRate : 0) + ", own scale)"),
      chart,
      h("div", { class: "axis" }, h("span", { text: when(trend.window.since) }),
        h("span", { text: when(trend.window.until) })));
  }

  function fieldsTable(fields) {
    if (!fields.length) return h("p", { class: "empty", text: "No differing fields in this window." });
    const top = Math.max(...fields.map((f) => f.share));
    const { key, asc } = state.fieldSort;
    const sorted = fields.slice().sort((a, b) => {
      const x = a[key], y = b[key];
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? order : -order;
    });
    const head = (label, k, numeric) => h("th", {
      class: "sortable" + (numeric ? " n" : "") + (key === k ? " sorted" + (asc ? " asc" : "") : ""),
      "data-sort": k,
      text: label,
      onclick: () => {
        state.fieldSort = { key: k, asc: key === k ? !asc : !numeric };
        render(true);
      },
    });
    return h("table", { class: "fieldtable" },
      h("thead", null, h("tr", null, head("Field", "template", false), head("Kind", "kind", false),
        head("Count", "count", true), head("Share", "share", true))),
      h("tbody", null, sorted.map((f) => h("tr", null,
        h("td", null, h("code", { text: f.template || "(whole body)" })),
        h("td", null, h("span", { class: "badge kind", text: f.kind })),
        h("td", { class: "n", text: num(f.count) }),
        h("td", { class: "n" }, h("div", { class: "share" },
          h("span", { text: pct(f.share) }),
          shareBar(f.share, top)))))));
  }

  /** A bar scaled to the largest share in the table, so fields compare at a glance. */
  function shareBar(share, top) {
    const fill = h("span");
    fill.style.width = (top > 0 ? Math.max(2, (share / top) * 100) : 0) + "%";
    return h("div", { class: "bar" }, fill);
  }

  function groupsTable(page, endpoint) {
    if (!page.items.length) return h("p", { class: "empty", text: "No mismatch groups for this endpoint." });
    const body = h("tbody", null, page.items.map(groupRows));
    let cursor = page.next_cursor;
    const more = h("button", { type: "button", id: "more-groups", text: "More groups", onclick: async () => {
      more.disabled = true;
      try {
        const next = await api("groups", { endpoint, cursor, limit: 50 });
        append(body, next.items.map(groupRows));
        cursor = next.next_cursor;
        more.hidden = !cursor;
      } catch (error) { say(error.message); }
      more.disabled = false;
    } });
    more.hidden = !cursor;
    return [h("table", { class: "grouptable" },
      h("thead", null, h("tr", null, h("th", { text: "Differences" }), h("th", { class: "n", text: "Count" }),
        h("th", { text: "Last seen" }), h("th", { text: "State" }), h("th", { text: "Triage" }))),
      body), h("div", { class: "more" }, more)];
  }

  /** A group's row, and below it the rule snippet once it was marked expected. */
  function groupRows(g) {
    return [
      h("tr", { "data-fingerprint": g.fingerprint },
        h("td", null, g.signature.length ? h("div", { class: "sig" }, g.signature.map((s) =>
          h("code", { title: s.kind, text: (s.template || "(whole body)") + " · " + s.kind })))
          : h("span", { class: "muted", text: "Shadow errors (no response to compare)" }),
          g.note ? h("div", { class: "muted", text: "Note: " + g.note }) : null),
        h("td", { class: "n", text: num(g.count) }),
        h("td", { class: "nowrap", title: when(g.last_seen), text: ago(g.last_seen) }),
        h("td", null, h("span", { class: "badge " + g.state, text: g.state })),
        h("td", null, h("div", { class: "actions" },
          h("button", { type: "button", text: "Examples", onclick: () => {
            state.fingerprint = g.fingerprint;
            render().then(() => document.getElementById("mismatches").scrollIntoView());
          } }),
          g.state !== "acknowledged" ? h("button", { type: "button", class: "ack", text: "Acknowledge",
            onclick: () => triage(g, "acknowledged") }) : null,
          g.state !== "expected" ? h("button", { type: "button", class: "expect", text: "Mark expected",
            onclick: () => triage(g, "expected") }) : null,
          g.state !== "open" ? h("button", { type: "button", class: "ghost reopen", text: "Reopen",
            onclick: () => triage(g, "open") }) : null))),
      state.snippets[g.fingerprint] ? h("tr", { class: "snippetrow" }, h("td", { colspan: 5 },
        snippetBox(state.snippets[g.fingerprint]))) : null,
    ];
  }

  function snippetBox(text) {
    return h("div", { class: "snippet" },
      h("div", { class: "hint", text: "Paste into your rules file to silence this group (then reload the rules):" }),
      h("pre", { class: "yaml", text }),
      h("button", { type: "button", class: "copy", text: "Copy", onclick: (ev) => copy(text, ev.target) }));
  }

  async function triage(group, stateName) {
    try {
      const result = await post("groups/" + encodeURIComponent(group.fingerprint) + "/triage",
        { state: stateName, note: group.note || "" });
      if (result.snippet) state.snippets[group.fingerprint] = result.snippet;
      else delete state.snippets[group.fingerprint];
      say("Group marked " + stateName + ".", true);
      await render(true);
    } catch (error) {
      say("Triage failed: " + error.message);
    }
  }

  function mismatchList(page, params) {
    if (!page.items.length) return h("p", { class: "empty", text: "No stored mismatches in this window." });
    const body = h("tbody");
    const addRows = (items) => body.append(...items.map((m) => h("tr", {
      class: "clickable", "data-id": m.id,
      onclick: (event) => {
        if (event.target.closest("a")) return;
        location.hash = routeHash({ name: "mismatch", id: m.id });
      },
    },
      h("td", { class: "nowrap", title: when(m.at), text: ago(m.at) }),
      h("td", { class: "mono", title: m.target }, h("span", { class: "method", text: m.method }),
        link({ name: "mismatch", id: m.id }, readable(m.target))),
      h("td", null, h("span", { class: "badge verdict-" + m.verdict, text: m.verdict.replace("_", " ") })),
      h("td", { class: "n", text: statusText(m.primary_status, null) + " / " + statusText(m.shadow_status, m.shadow_error) }),
      h("td", { class: "n", text: String(m.differences.length) }),
      h("td", null, h("div", { class: "sig" }, m.differences.slice(0, 3).map((d) =>
        h("code", { text: (d.label || d.pointer || "(body)") })),
      m.differences.length > 3 ? h("span", { class: "muted", text: "+" + (m.differences.length - 3) }) : null)))));
    addRows(page.items);
    const more = h("div", { class: "more" });
    let cursor = page.next_cursor;
    const button = h("button", { type: "button", text: "Load more", onclick: async () => {
      button.disabled = true;
      try {
        const next = await api("mismatches", Object.assign({}, params, { cursor, limit: 20 }));
        addRows(next.items);
        cursor = next.next_cursor;
        button.hidden = !cursor;
      } catch (error) { say(error.message); }
      button.disabled = false;
    } });
    button.hidden = !cursor;
    more.append(button);
    return [h("table", { class: "mismatchtable" },
      h("thead", null, h("tr", null, h("th", { text: "When" }), h("th", { text: "Request" }),
        h("th", { text: "Verdict" }), h("th", { class: "n", text: "Status P / S" }),
        h("th", { class: "n", text: "Diffs" }), h("th", { text: "Where" }))), body), more];
  }

  function statusText(status, error) {
    if (error) return error;
    return status === null || status === undefined ? "—" : String(status);
  }

  // ---- mismatch view ------------------------------------------------------------------------

  const BODY_KINDS = new Set(["value", "type", "missing", "extra", "unparseable", "text"]);

  function covers(diffPointer, linePointer) {
    return diffPointer === "" || linePointer === diffPointer || linePointer.startsWith(diffPointer + "/");
  }

  async function mismatchView(id) {
    const m = await api("mismatches/" + encodeURIComponent(id));
    const diffs = m.differences;
    state.mismatch = m;
    if (state.current >= diffs.length) state.current = 0;

    const request = m.request;
    const curlButtons = Object.entries(m.curl || {}).map(([side, command]) =>
      h("button", { type: "button", class: "curl-copy", "data-side": side,
        text: "Copy as curl (" + side + ")", onclick: (ev) => {
          document.getElementById("curl-text").textContent = command;
          copy(command, ev.target);
        } }));
    const firstCurl = Object.values(m.curl || {})[0] || "";

    const requestPanel = h("section", { class: "panel", id: "request" },
      h("h2", null, "Request", h("span", { class: "badge verdict-" + m.verdict, text: m.verdict.replace("_", " ") }),
        m.reason ? h("span", { class: "muted", text: m.reason }) : null),
      h("div", { class: "req" },
        h("div", { class: "k", text: "URL" }),
        h("div", { class: "v mono" }, h("span", { class: "method", text: request.method }),
          h("span", { id: "target", title: request.target, text: readable(request.target) })),
        h("div", { class: "k", text: "Endpoint" }),
        h("div", { class: "v" }, link({ name: "endpoint", endpoint: m.endpoint }, m.endpoint)),
        h("div", { class: "k", text: "When" }), h("div", { class: "v", text: when(m.at) + " (" + ago(m.at) + ")" }),
        h("div", { class: "k", text: "Headers" }),
        h("div", { class: "v" }, request.headers.length ? h("table", { class: "kv" }, h("tbody", null,
          request.headers.map(([k, v]) => h("tr", null, h("td", { text: k }), h("td", { text: v })))))
          : h("span", { class: "muted", text: "none" })),
        request.body.size ? h("div", { class: "k", text: "Body" }) : null,
        request.body.size ? h("div", { class: "v" }, h("pre", { class: "rawbody", text: bodyText(request.body) })) : null,
        h("div", { class: "k", text: "Replay" }),
        h("div", { class: "v" }, h("div", { class: "curlbar" }, curlButtons),
          h("pre", { class: "curl", id: "curl-text", text: firstCurl }))));

    const diffRows = diffs.map((d, i) => h("tr", {
      class: "clickable" + (i === state.current ? " current" : ""), "data-index": i,
      onclick: () => focusDifference(i, true),
    },
      h("td", { class: "n muted", text: String(i + 1) }),
      h("td", null, h("code", { text: d.label || d.pointer || "(whole body)" })),
      h("td", null, h("span", { class: "badge kind", text: d.kind }),
        d.severity === "critical" ? [" ", h("span", { class: "badge critical", text: "critical" })] : null),
      h("td", null, h("span", { class: "val", title: short(d.primary, 2000), text: d.kind === "extra" ? "(absent)" : short(d.primary, 120) })),
      h("td", null, h("span", { class: "val", title: short(d.shadow, 2000), text: d.kind === "missing" ? "(absent)" : short(d.shadow, 120) }))));

    const nav = h("div", { class: "nav" },
      h("button", { type: "button", id: "prev-diff", text: "◀ Prev", onclick: () => focusDifference(state.current - 1, true) }),
      h("span", { id: "diff-pos", text: diffs.length ? `Difference ${state.current + 1} of ${diffs.length}` : "No differences" }),
      h("button", { type: "button", id: "next-diff", text: "Next ▶", onclick: () => focusDifference(state.current + 1, true) }),
      h("span", { class: "muted" }, " keys ", h("span", { class: "kbd", text: "n" }), " ", h("span", { class: "kbd", text: "p" })));

    const diffPanel = h("section", { class: "panel", id: "differences" },
      h("h2", null, "Differences", h("span", { class: "count", text: String(diffs.length) }), h("span", { class: "spacer" }), nav),
      diffs.length ? h("table", { class: "difftable" },
        h("thead", null, h("tr", null, h("th", { class: "n", text: "#" }), h("th", { text: "Where" }),
          h("th", { text: "Kind" }), h("th", { text: "Primary" }), h("th", { text: "Shadow" }))),
        h("tbody", null, diffRows)) : h("p", { class: "empty", text: m.reason || "No differences recorded." }));

    return [
      h("div", { class: "pagehead" }, h("h1", { text: "Mismatch " + m.id }),
        h("span", { class: "sub", text: "ruleset " + (m.ruleset_version || "—") + " · group " + (m.fingerprint || "—") })),
      requestPanel,
      diffPanel,
      statusAndHeaders(m),
      h("div", { class: "sides", id: "sides" }, side("primary", m.primary, diffs), side("shadow", m.shadow, diffs)),
    ];
  }

  function bodyText(body) {
    if (body.text !== null && body.text !== undefined) return body.text;
    return "(binary, " + body.size + " bytes, base64) " + body.base64;
  }

  function statusAndHeaders(m) {
    const p = m.primary, s = m.shadow;
    const compared = new Set(m.differences.filter((d) => d.kind === "header")
      .map((d) => d.pointer.replace(/^\/headers\//, "")));
    const names = [];
    const pv = new Map(), sv = new Map();
    for (const [k, v] of p.headers) { const n = k.toLowerCase(); if (!pv.has(n)) { pv.set(n, v); names.push(n); } }
    for (const [k, v] of s.headers) { const n = k.toLowerCase(); if (!sv.has(n)) { sv.set(n, v); if (!pv.has(n)) names.push(n); } }
    const statusDiffers = p.status !== s.status || Boolean(s.error) || Boolean(p.error);
    return h("section", { class: "panel", id: "headers" },
      h("h2", { text: "Status and headers" }),
      h("p", { class: "muted hint", text: "Only the headers the rules compare count as differences " +
        "(marked “compared”); other differing headers are highlighted lightly, for context." }),
      h("div", { class: "statuscmp" },
        h("span", null, "Primary ", h("span", { class: "code-p", text: statusText(p.status, p.error) }),
          h("span", { class: "muted", text: " · " + ms(p.elapsed_ms) })),
        h("span", { class: statusDiffers ? "neq" : "muted", text: statusDiffers ? "≠" : "=" }),
        h("span", null, "Shadow ", h("span", { class: "code-s", text: statusText(s.status, s.error) }),
          h("span", { class: "muted", text: " · " + ms(s.elapsed_ms) }))),
      names.length ? h("table", { class: "kv hdrs" }, h("thead", null, h("tr", null,
        h("th", { text: "Header" }), h("th", { text: "Primary" }), h("th", { text: "Shadow" }))),
      h("tbody", null, names.map((n) => {
        const a = pv.get(n), b = sv.get(n);
        const css = compared.has(n) ? "compared-diff" : (a !== b ? "differs" : null);
        return h("tr", { "data-header": n },
          h("td", { text: n + (compared.has(n) ? " (compared)" : "") }),
          h("td", { class: css, text: a === undefined ? "—" : a }),
          h("td", { class: css, text: b === undefined ? "—" : b }));
      }))) : null);
  }

  function side(which, response, diffs) {
    const pointers = [];
    diffs.forEach((d, i) => {
      if (!BODY_KINDS.has(d.kind)) return;
      if (which === "primary" && d.kind === "extra") return;
      if (which === "shadow" && d.kind === "missing") return;
      pointers.push([d.pointer, i]);
    });
    const head = h("header", null,
      h("span", { class: "who", text: which === "primary" ? "Primary" : "Shadow" }),
      h("span", { class: "statusline", text: response.error ? "error: " + response.error
        : response.status + " · " + ms(response.elapsed_ms) }),
      response.body.encoding ? h("span", { class: "badge kind", text: response.body.encoding + " decoded" }) : null,
      response.body.cut || response.truncated ? h("span", { class: "badge open", text: "truncated" }) : null);
    let content;
    const body = response.body;
    if (body.lines) {
      content = h("div", { class: "code" });
      body.lines.forEach((line, n) => {
        const hits = pointers.filter(([p]) => covers(p, line.pointer)).map(([, i]) => i);
        content.append(h("div", {
          class: "line" + (hits.length ? " diff" : ""),
          "data-ptr": line.pointer,
          "data-diffs": hits.length ? " " + hits.join(" ") + " " : null,
        }, h("span", { class: "ln", text: String(n + 1) }),
        h("span", { class: "tx", text: "  ".repeat(line.depth) + line.text })));
      });
    } else if (response.error) {
      content = h("p", { class: "empty", text: "No response: " + response.error });
    } else if (!body.size) {
      content = h("p", { class: "empty", text: "(empty body)" });
    } else {
      const whole = pointers.length > 0;
      content = h("div", { class: "code" }, h("div", {
        class: "line" + (whole ? " diff" : ""),
        "data-diffs": whole ? " " + pointers.map(([, i]) => i).join(" ") + " " : null,
      }, h("span", { class: "ln", text: "1" }), h("span", { class: "tx", text: bodyText(body) })));
    }
    return h("section", { class: "side " + which, id: which + "-side" }, head, content);
  }

  function focusDifference(index, scroll) {
    const m = state.mismatch;
    if (!m || !m.differences.length) return;
    const count = m.differences.length;
    state.current = ((index % count) + count) % count;
    for (const row of document.querySelectorAll(".difftable tbody tr")) {
      row.classList.toggle("current", Number(row.dataset.index) === state.current);
    }
    const pos = document.getElementById("diff-pos");
    if (pos) pos.textContent = `Difference ${state.current + 1} of ${count}`;
    for (const line of document.querySelectorAll(".line.current")) line.classList.remove("current");
    const marker = " " + state.current + " ";
    const kind = m.differences[state.current].kind;
    for (const pane of document.querySelectorAll(".side .code")) {
      let first = null;
      for (const line of pane.querySelectorAll(".line[data-diffs]")) {
        if (line.dataset.diffs.includes(marker)) {
          line.classList.add("current");
          if (!first) first = line;
        }
      }
      // The panes always follow the difference in focus; the page itself only on request.
      if (first) {
        quietSyncUntil = performance.now() + 150;
        pane.scrollTop = Math.max(0, first.offsetTop - pane.clientHeight / 3);
      }
    }
    if (scroll && (kind === "status" || kind === "header")) {
      document.getElementById("headers").scrollIntoView({ block: "start", behavior: "smooth" });
    } else if (scroll) {
      document.getElementById("sides").scrollIntoView({ block: "start", behavior: "smooth" });
    }
  }

  // ---- side-by-side scrolling ----------------------------------------------------------------

  let quietSyncUntil = 0;

  /** The first line at or below the pane's top edge (lines are in offset order: bisect). */
  function firstVisibleLine(pane) {
    const lines = pane.children;
    let low = 0, high = lines.length - 1, found = null;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (lines[mid].offsetTop + lines[mid].offsetHeight > pane.scrollTop) {
        found = lines[mid];
        high = mid - 1;
      } else {
        low = mid + 1;
      }
    }
    return found;
  }

  /** Scrolling one body scrolls the other to the same JSON location (by pointer), so the two
   *  stay aligned even where one side has lines the other lacks. */
  function syncPanes() {
    const panes = [...document.querySelectorAll(".side .code")];
    if (panes.length !== 2) return;
    let echo = null;  // the pane we just scrolled ourselves: its scroll event is ours, not the user's
    panes.forEach((pane, i) => {
      const other = panes[1 - i];
      pane.addEventListener("scroll", () => {
        if (echo === pane) { echo = null; return; }
        if (performance.now() < quietSyncUntil) return;
        const line = firstVisibleLine(pane);
        if (!line || line.dataset.ptr === undefined) return;
        const selector = `.line[data-ptr="${CSS.escape(line.dataset.ptr)}"]`;
        const occurrence = [...pane.querySelectorAll(selector)].indexOf(line);
        const matches = other.querySelectorAll(selector);
        const target = matches[occurrence] || matches[0];
        if (!target) return;
        const wanted = Math.max(0, target.offsetTop - (line.offsetTop - pane.scrollTop));
        if (Math.abs(other.scrollTop - wanted) < 1) return;
        echo = other;
        other.scrollTop = wanted;
      }, { passive: true });
    });
  }

  function setupKeys() {
    document.addEventListener("keydown", (event) => {
      if (state.route.name !== "mismatch" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest("input, textarea")) return;
      if (event.key === "n" || event.key === "j") focusDifference(state.current + 1, true);
      if (event.key === "p" || event.key === "k") focusDifference(state.current - 1, true);
    });
  }

  // ---- clipboard ----------------------------------------------------------------------------

  async function copy(text, button) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) {
      const area = h("textarea", { readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
      area.remove();
    }
    if (button) {
      const label = button.textContent;
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { button.textContent = label; }, 1500);
    }
  }

  // ---- start --------------------------------------------------------------------------------

  takeTokenFromFragment();
  setupToken();
  setupWindows();
  setupLive();
  setupExport();
  setupKeys();
  window.addEventListener("hashchange", onRoute);
  state.route = parseRoute();
  render();
})();
