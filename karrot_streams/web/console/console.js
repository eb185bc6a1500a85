// karrot-streams operator console: plain JavaScript, no build step, no dependencies.
//
// The page shows nothing until it has a bearer token. The token lives in this tab's
// sessionStorage and goes with every API call; the API decides what it may see. Every value
// from the API is put on the page with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "karrot.console.token";
  const ADMIN_TOKEN_KEY = "karrot.console.adminToken";
  const POLL_MS = 3000;
  const DEAD_LETTERS_EVERY = 2; // reading the DLQ topics costs more: every second poll
  const HISTORY_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const RECENT_LIMIT = 10;
  const REDRIVE_WAIT_MS = 5000; // how long the categories may wait for redriven events
  const TOP_CATEGORIES = 8;
  const STATUSES = ["CREATED", "PUBLISHED", "PROCESSED", "FAILED"];
  const COLORS = ["#ff6f0f", "#0969da", "#1a7f37", "#8250df", "#bf3989", "#9a6700"];

  const numbers = new Intl.NumberFormat("ko-KR");
  const rates = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 1 });
  const kst = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    timer: null,
    tick: 0,
    samples: [],        // {at: ms, processed: {topic: count}} for the rate chart
    stats: null,        // the last /api/v1/monitoring/stats answer
    deadLetters: null,  // the last /api/v1/monitoring/dlq answer
    shownDeadLetters: null, // what the dead-letter tables show now, as JSON
    inspecting: null,   // the dead letter shown in the inspect dialog
    preview: null,      // {topic, filter} of the dry run the confirm button would redrive
  };

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  /** "11-25 09:59:50", short enough for a table cell; the full time goes in its title. */
  function shortTime(iso) {
    return formatTime(iso).slice(5);
  }

  function formatTime(iso) {
    if (!iso) return "—";
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? String(iso) : kst.format(moment);
  }

  function formatDuration(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
    if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  const formatCount = (value) => (value === null || value === undefined ? "—" : numbers.format(value));
  const lastSegment = (name) => String(name || "").split(".").pop();

  class Unauthorized extends Error {}

  /** Calls the API with the token; answers {status, ok, data}. A 401 throws Unauthorized. */
  async function api(path, { method = "GET", body, token = state.token, allow401 = false } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (response.status === 401 && !allow401) throw new Unauthorized(messageOf(data, response.status));
    return { status: response.status, ok: response.ok, data };
  }

  function messageOf(data, status) {
    if (data && typeof data === "object" && data.message) return data.message + " (" + status + ")";
    return "HTTP " + status;
  }

  // ---------------------------------------------------------------- signing in and out

  function showLogin(message) {
    $("login").hidden = false;
    $("app").hidden = true;
    $("session").hidden = true;
    $("login-error").textContent = message || "";
    $("token-input").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("session").hidden = false;
    if (state.timer === null) poll();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    $("login-button").disabled = true;
    $("login-error").textContent = "";
    try {
      // A protected endpoint: anything but a 401 means the middleware accepted the token.
      const answer = await api("/api/v1/categories", { token, allow401: true });
      if (answer.status === 401) {
        $("login-error").textContent = "That token was not accepted.";
        return;
      }
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token-input").value = "";
      showApp();
    } catch (error) {
      $("login-error").textContent = "The worker did not answer: " + error.message;
    } finally {
      $("login-button").disabled = false;
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ADMIN_TOKEN_KEY);
    if (message) {
      // Drop every figure already on the page, then ask again.
      state.token = null;
      clearTimeout(state.timer);
      state.timer = null;
      for (const id of ["throughput-chart", "throughput-legend", "health-components", "store-counts",
        "lag-table", "dlq-topics", "dlq-recent", "top-items", "top-sales", "lookup-result"]) {
        const node = $(id);
        const body = node.tBodies ? node.tBodies[0] : node;
        body.replaceChildren();
      }
      state.samples = [];
      state.shownDeadLetters = null;
      showLogin(message);
    } else {
      window.location.reload();
    }
  }

  // ---------------------------------------------------------------- polling

  async function poll() {
    state.timer = null;
    if (!state.token) return;
    const tick = state.tick++;
    const jobs = [refreshStats(), refreshHealth(), refreshCategories()];
    if (tick % DEAD_LETTERS_EVERY === 0) jobs.push(refreshDeadLetters());
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((result) => result.status === "rejected").map((result) => result.reason);
    if (failed.some((reason) => reason instanceof Unauthorized)) {
      signOut("The worker no longer accepts this token. Sign in again.");
      return;
    }
    $("updated-at").textContent = failed.length
      ? "Update failed: " + failed[0].message
      : "Updated " + kst.format(new Date()).slice(11) + " KST";
    if (state.token) state.timer = setTimeout(poll, POLL_MS);
  }

  async function refreshStats() {
    const answer = await api("/api/v1/monitoring/stats");
    if (!answer.ok) throw new Error("stats: " + messageOf(answer.data, answer.status));
    const stats = answer.data;
    state.stats = stats;
    const processed = {};
    for (const [topic, counts] of Object.entries(stats.topics)) processed[topic] = counts.processed;
    const now = Date.now();
    state.samples.push({ at: now, processed });
    state.samples = state.samples.filter((sample) => sample.at >= now - HISTORY_MS - POLL_MS);
    $("worker-id").textContent = stats.worker.appId + " @ " + stats.worker.url;
    $("throughput-note").textContent = stats.worker.uptimeSeconds === null
      ? "this worker, up to the last 5 minutes"
      : `this worker (counting since its start ${formatDuration(stats.worker.uptimeSeconds)} ago)`;
    renderThroughput();
    renderLag(stats.lag);
    renderStore(stats.eventStore);
    renderDeadLetters();
  }

  async function refreshHealth() {
    const answer = await api("/api/v1/monitoring/health");
    if (answer.status !== 200 && answer.status !== 503) {
      throw new Error("health: " + messageOf(answer.data, answer.status));
    }
    renderHealth(answer.data);
  }

  async function refreshCategories(tokens = []) {
    // With the consistency tokens of a redrive: the figures include the redriven events, or
    // the worker says 409 (not yet, or never: a letter that fails again); then the plain list.
    let answer = null;
    if (tokens.length) {
      const query = new URLSearchParams({ consistencyToken: tokens.join(","), consistencyWaitMs: String(REDRIVE_WAIT_MS) });
      answer = await api("/api/v1/categories?" + query);
      $("redrive-summary").dataset.consistent = String(answer.ok);
      if (!answer.ok) answer = null;
    }
    answer = answer || await api("/api/v1/categories");
    if (!answer.ok) throw new Error("categories: " + messageOf(answer.data, answer.status));
    renderCategories(answer.data.categories);
  }

  async function refreshDeadLetters() {
    const answer = await api("/api/v1/monitoring/dlq?limit=" + RECENT_LIMIT);
    if (!answer.ok) throw new Error("dead letters: " + messageOf(answer.data, answer.status));
    state.deadLetters = answer.data;
    renderDeadLetters();
    fillTopicChoices(Object.keys(answer.data.topics));
  }

  // ---------------------------------------------------------------- throughput chart

  /** Events per second between successive samples, per topic; a restart (counts fall) is skipped. */
  function ratePoints() {
    const points = [];
    for (let i = 1; i < state.samples.length; i++) {
      const before = state.samples[i - 1];
      const after = state.samples[i];
      const seconds = (after.at - before.at) / 1000;
      if (seconds <= 0) continue;
      const values = {};
      for (const [topic, count] of Object.entries(after.processed)) {
        const delta = count - (before.processed[topic] || 0);
        if (delta >= 0) values[topic] = delta / seconds;
      }
      points.push({ at: after.at, values });
    }
    return points;
  }

  /** Gridline step and top of the y axis: 1, 2, 2.5 or 5 times a power of ten, at most five steps. */
  function yAxis(maxValue) {
    const value = Math.max(maxValue, 1);
    const rough = value / 5;
    const power = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
    return { step, top: step * Math.ceil(value / step) };
  }

  function renderThroughput() {
    const box = $("throughput-chart");
    const topics = Object.keys(state.stats.topics);
    const width = Math.max(box.clientWidth, 300);
    const height = Math.max(box.clientHeight, 160);
    const pad = { left: 44, right: 8, top: 8, bottom: 20 };
    const now = Date.now();
    // The last five minutes, or less while the page has been open for less: at least a minute.
    const oldest = state.samples.length ? state.samples[0].at : now;
    const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - oldest));
    const points = ratePoints().filter((point) => point.at >= now - span);
    const axis = yAxis(Math.max(0, ...points.flatMap((point) => Object.values(point.values))));
    const maxRate = axis.top;
    const x = (at) => pad.left + ((at - (now - span)) / span) * (width - pad.left - pad.right);
    const y = (rate) => pad.top + (1 - rate / maxRate) * (height - pad.top - pad.bottom);

    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Events per second per topic" });
    for (let rate = 0; rate <= maxRate + axis.step / 2; rate += axis.step) {
      chart.append(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(rate), y2: y(rate) }));
      const label = svg("text", { class: "axis-label", x: pad.left - 6, y: y(rate) + 4, "text-anchor": "end" });
      label.textContent = rates.format(rate);
      chart.append(label);
    }
    const tick = [10, 15, 30, 60].map((seconds) => seconds * 1000).find((step) => span / step <= 6);
    for (let ago = Math.floor(span / tick) * tick; ago >= 0; ago -= tick) {
      const anchor = ago === 0 ? "end" : x(now - ago) - pad.left < 20 ? "start" : "middle";
      const label = svg("text", { class: "axis-label", x: x(now - ago), y: height - 4, "text-anchor": anchor });
      label.textContent = ago === 0 ? "now" : ago % 60000 === 0 ? `−${ago / 60000} min` : `−${ago / 1000} s`;
      chart.append(label);
    }
    const legend = $("throughput-legend");
    legend.replaceChildren();
    topics.forEach((topic, index) => {
      const color = COLORS[index % COLORS.length];
      const series = points.filter((point) => topic in point.values);
      if (series.length > 0) {
        const path = series.map((point, i) => `${i ? "L" : "M"}${x(point.at).toFixed(1)},${y(point.values[topic]).toFixed(1)}`);
        chart.append(svg("path", { class: "series", d: path.join(" "), stroke: color }));
      }
      const latest = series.length ? series[series.length - 1].values[topic] : null;
      legend.append(el("li", { dataset: { topic } },
        el("span", { className: "swatch", style: { background: color } }),
        el("span", {}, topic),
        el("span", { className: "rate" }, latest === null ? "…" : rates.format(latest) + "/s"),
        el("span", { className: "muted" }, "· " + formatCount(state.stats.topics[topic].processed) + " total")));
    });
    if (points.length === 0) {
      const waiting = svg("text", { class: "axis-label", x: width / 2, y: height / 2, "text-anchor": "middle" });
      waiting.textContent = "Collecting samples…";
      chart.append(waiting);
    }
    box.replaceChildren(chart);
  }

  // ---------------------------------------------------------------- health, store, lag

  function renderHealth(health) {
    const badge = $("health-badge");
    badge.dataset.status = health.status;
    badge.textContent = health.status === "UP" ? "Worker UP" : "Worker DOWN";
    const list = $("health-components");
    list.replaceChildren(...Object.entries(health.components || {}).map(([name, component]) => {
      const up = component.status === "UP";
      return el("li", { title: JSON.stringify(component.details || {}), dataset: { component: name } },
        el("span", {}, name.replace(/_/g, " ")),
        el("span", { className: up ? "up" : "down" }, component.status));
    }));
  }

  function renderStore(store) {
    const box = $("store-counts");
    $("store-error").textContent = store.error ? "Event store unavailable: " + store.error : "";
    if (!store.counts) return;
    box.replaceChildren(...STATUSES.map((status) =>
      el("div", { className: "count", dataset: { status } },
        el("div", { className: "label" }, status),
        el("div", { className: "value" }, formatCount(store.counts[status] || 0)))));
  }

  /** The app's internal topics without the app id in front, greyed: "category-effects". */
  function topicCell(topic) {
    const prefix = state.stats ? state.stats.worker.appId + "." : null;
    if (prefix && topic.startsWith(prefix)) {
      return el("td", { title: topic + " (internal)", className: "muted" }, topic.slice(prefix.length));
    }
    return el("td", { title: topic }, topic);
  }

  function renderLag(rows) {
    const body = $("lag-table").tBodies[0];
    let total = 0;
    body.replaceChildren(...rows.map((row) => {
      total += row.lag || 0;
      return el("tr", { className: row.lag ? "lagging" : null },
        topicCell(row.topic),
        el("td", { className: "num" }, row.partition),
        el("td", { className: "num" }, formatCount(row.highwater)),
        el("td", { className: "num" }, formatCount(row.committed)),
        el("td", { className: "num lag" }, formatCount(row.lag)));
    }));
    $("lag-total").textContent = rows.length ? "total " + formatCount(total) : "no partitions assigned yet";
  }

  // ---------------------------------------------------------------- dead letters

  function renderDeadLetters() {
    const letters = state.deadLetters;
    if (!letters) return;
    const stats = state.stats ? state.stats.topics : {};
    // Unchanged figures are not redrawn, so a row is not replaced under the pointer.
    const shown = JSON.stringify([letters, Object.values(stats).map((topic) => topic.deadLetteredByReason)]);
    if (shown === state.shownDeadLetters) return;
    state.shownDeadLetters = shown;
    $("dlq-topics").tBodies[0].replaceChildren(...Object.entries(letters.topics).map(([topic, info]) => {
      const here = stats[topic.replace(/^dlq\./, "")] || { deadLettered: 0, deadLetteredByReason: {} };
      const reasons = Object.entries(here.deadLetteredByReason)
        .map(([reason, count]) => `${lastSegment(reason)} ×${count}`).join(", ");
      return el("tr", { dataset: { topic } },
        el("td", {}, topic),
        el("td", { className: "num count-in-dlq" }, formatCount(info.count)),
        el("td", { className: "num" }, formatCount(here.deadLettered)),
        el("td", { className: "muted" }, reasons || "—"));
    }));
    const recent = letters.recent || [];
    $("dlq-empty").hidden = recent.length > 0;
    rememberExceptionClasses(recent);
    $("dlq-recent").tBodies[0].replaceChildren(...recent.map((letter) => {
      const headers = letter.headers || {};
      const button = el("button", { type: "button", className: "secondary small" }, "Inspect");
      button.addEventListener("click", () => inspect(letter));
      const origin = headers.original_topic
        ? `from ${headers.original_topic} ${headers.original_partition}:${headers.original_offset}`
        : "";
      return el("tr", { dataset: { topic: letter.topic, partition: letter.partition, offset: letter.offset, key: letter.key ?? "" } },
        el("td", { className: "nowrap", title: (headers.failed_at || letter.timestamp) + " (UTC)" },
          shortTime(headers.failed_at || letter.timestamp)),
        el("td", {}, letter.topic),
        el("td", { className: "mono", title: `key ${letter.key ?? "(none)"} ${origin}` }, `${letter.partition}:${letter.offset}`),
        el("td", { title: headers.exception_class || "" }, lastSegment(headers.exception_class) || "—"),
        el("td", { className: "reason" }, headers.exception_message || "—"),
        el("td", {}, button));
    }));
  }

  /** Offer the exception classes seen so far in the redrive form (the filter wants the full name). */
  function rememberExceptionClasses(recent) {
    const list = $("exception-classes");
    const known = new Set(Array.from(list.options).map((option) => option.value));
    for (const letter of recent) {
      const name = (letter.headers || {}).exception_class;
      if (name && !known.has(name)) {
        known.add(name);
        list.append(el("option", { value: name }));
      }
    }
  }

  /** The path of a dead-letter topic's own endpoints: `/api/v1/dlq/dlq.<topic>/...`. */
  function dlqPath(topic, action) {
    return "/api/v1/dlq/" + encodeURIComponent(topic) + "/" + action;
  }

  async function inspect(letter) {
    state.inspecting = letter;
    const body = $("inspect-body");
    const headerRows = Object.entries(letter.headers || {}).map(([name, value]) =>
      el("tr", {}, el("td", { className: "mono" }, name), el("td", { className: "reason" }, value)));
    const valueBox = el("div", { id: "inspect-value" }, el("p", { className: "muted" }, "Loading the value…"));
    body.replaceChildren(
      el("dl", { className: "fields" },
        el("dt", {}, "Topic"), el("dd", {}, letter.topic),
        el("dt", {}, "Partition / offset"), el("dd", { className: "mono" }, `${letter.partition} / ${letter.offset}`),
        el("dt", {}, "Dead-lettered at"), el("dd", {}, formatTime(letter.timestamp) + " KST"),
        el("dt", {}, "Key"), el("dd", { className: "mono" }, letter.key === null ? "(none)" : letter.key)),
      el("h3", {}, "Headers"),
      el("table", { className: "compact", id: "inspect-headers" },
        el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Value"))),
        el("tbody", {}, headerRows)),
      el("h3", {}, "Value"),
      valueBox);
    $("inspect-dialog").showModal();
    try {
      valueBox.replaceChildren(await letterValue(letter));
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("The worker no longer accepts this token.");
      valueBox.replaceChildren(el("p", { className: "error" }, "The value could not be read: " + error.message));
    }
  }

  /** The decoded value of one dead letter, read with the DLQ messages endpoint. */
  async function letterValue(letter) {
    // partition and offset together: the worker reads that one record, not the topic.
    const query = new URLSearchParams({ partition: String(letter.partition), offset: String(letter.offset) });
    const answer = await api(dlqPath(letter.topic, "messages") + "?" + query);
    if (answer.status === 404 && !(answer.data && answer.data.details)) {
      return el("p", { className: "muted" }, "This worker has no dead-letter message endpoint; only the headers can be shown.");
    }
    if (!answer.ok) throw new Error(messageOf(answer.data, answer.status));
    const found = (answer.data.messages || []).find((message) =>
      message.partition === letter.partition && message.offset === letter.offset);
    if (!found) return el("p", { className: "muted" }, "The message is no longer in the topic.");
    const parts = [];
    if (found.redriven) parts.push(el("p", { className: "badge", dataset: { status: "UP" } }, "Redriven"));
    if (found.value !== null && found.value !== undefined) {
      parts.push(el("pre", { className: "value", id: "inspect-decoded" }, JSON.stringify(found.value, null, 2)));
    } else {
      parts.push(el("p", { className: "muted" }, "The value could not be decoded; its bytes, base64:"));
      parts.push(el("pre", { className: "value mono", id: "inspect-raw" }, found.valueBase64 || "(empty)"));
    }
    return el("div", {}, parts);
  }

  // ---------------------------------------------------------------- redrive

  function fillTopicChoices(topics) {
    const select = $("redrive-topic");
    const current = select.value;
    const known = Array.from(select.options).map((option) => option.value).join();
    if (known === topics.join()) return;
    select.replaceChildren(...topics.map((topic) => el("option", { value: topic }, topic)));
    if (topics.includes(current)) select.value = current;
  }

  function openRedrive(prefill) {
    const values = { partition: "", offset: "", since: "", until: "", exception: "", ...prefill };
    if (values.topic) {
      fillTopicChoices(Array.from(new Set([...Array.from($("redrive-topic").options).map((o) => o.value), values.topic])));
      $("redrive-topic").value = values.topic;
    }
    $("redrive-partition").value = values.partition;
    $("redrive-offset").value = values.offset;
    $("redrive-since").value = values.since;
    $("redrive-until").value = values.until;
    $("redrive-exception").value = values.exception;
    $("redrive-admin-token").value = sessionStorage.getItem(ADMIN_TOKEN_KEY) || "";
    resetPreview();
    $("redrive-error").textContent = "";
    $("redrive-summary").textContent = "";
    $("redrive-list").tBodies[0].replaceChildren();
    $("redrive-dialog").showModal();
  }

  function redriveFilter() {
    const filter = {};
    const whole = (id) => {
      const text = $(id).value.trim();
      return text === "" ? undefined : Number(text);
    };
    const text = (id) => $(id).value.trim() || undefined;
    const fields = {
      partition: whole("redrive-partition"),
      offset: whole("redrive-offset"),
      since: text("redrive-since"),
      until: text("redrive-until"),
      exceptionClass: text("redrive-exception"),
    };
    for (const [name, value] of Object.entries(fields)) if (value !== undefined) filter[name] = value;
    return filter;
  }

  function resetPreview() {
    state.preview = null;
    const confirm = $("redrive-confirm");
    confirm.disabled = true;
    confirm.textContent = "Redrive";
  }

  function adminToken() {
    return $("redrive-admin-token").value.trim() || state.token;
  }

  async function redrive(dryRun) {
    const topic = dryRun ? $("redrive-topic").value : state.preview.topic;
    const filter = dryRun ? redriveFilter() : state.preview.filter;
    const token = adminToken();
    $("redrive-error").textContent = "";
    $("redrive-preview").disabled = true;
    $("redrive-confirm").disabled = true;
    try {
      const answer = await api(dlqPath(topic, "redrive"), {
        method: "POST", body: { ...filter, dryRun }, token, allow401: true,
      });
      if (answer.status === 401 || answer.status === 403) {
        $("redrive-error").textContent = "Redriving needs an admin token: " + messageOf(answer.data, answer.status);
        resetPreview();
        return;
      }
      if (answer.status === 404 && answer.data && answer.data.code === "NOT_FOUND" && !answer.data.details) {
        $("redrive-error").textContent = "This worker has no redrive endpoint.";
        resetPreview();
        return;
      }
      if (!answer.ok) {
        $("redrive-error").textContent = messageOf(answer.data, answer.status);
        resetPreview();
        return;
      }
      if ($("redrive-admin-token").value.trim()) sessionStorage.setItem(ADMIN_TOKEN_KEY, token);
      showRedriveResult(answer.data);
      if (dryRun && answer.data.selected > 0) {
        state.preview = { topic, filter };
        $("redrive-confirm").disabled = false;
        $("redrive-confirm").textContent = `Redrive ${answer.data.selected - (answer.data.alreadyRedriven || 0)} message(s)`;
      } else {
        resetPreview();
      }
      if (!dryRun) {
        refreshDeadLetters().catch(() => {});
        // The categories as they are once the redriven events are in (their tokens).
        const tokens = (answer.data.messages || []).map((m) => m.consistencyToken).filter(Boolean);
        refreshCategories(tokens).catch(() => {});
      }
    } catch (error) {
      $("redrive-error").textContent = "The worker did not answer: " + error.message;
      resetPreview();
    } finally {
      $("redrive-preview").disabled = false;
    }
  }

  function formatTarget(target) {
    if (!target) return "—";
    return `${target.topic} ${target.partition}:${target.offset}`;
  }

  function showRedriveResult(result) {
    const summary = result.dryRun
      ? `Dry run: ${result.selected} selected, ${result.alreadyRedriven || 0} already redriven. Nothing was sent yet.`
      : `Redriven: ${result.redriven} of ${result.selected} selected (${result.alreadyRedriven || 0} had been redriven before).`;
    $("redrive-summary").textContent = summary;
    $("redrive-summary").dataset.dryRun = String(Boolean(result.dryRun));
    $("redrive-list").tBodies[0].replaceChildren(...(result.messages || []).map((message) =>
      el("tr", { dataset: { partition: message.partition, offset: message.offset, status: message.status } },
        el("td", { className: "num" }, message.partition),
        el("td", { className: "num" }, message.offset),
        el("td", { title: message.exceptionClass || "" }, lastSegment(message.exceptionClass) || "—"),
        el("td", {}, formatTime(message.failedAt)),
        el("td", {}, message.status || "—"),
        el("td", { className: "mono" }, formatTarget(message.target)))));
  }

  // ---------------------------------------------------------------- categories and event lookup

  function renderCategories(categories) {
    const bars = (listId, field) => {
      const top = categories.filter((c) => c[field] > 0).sort((a, b) => b[field] - a[field]).slice(0, TOP_CATEGORIES);
      const max = top.length ? top[0][field] : 1;
      const items = top.map((category) => el("li", { dataset: { category: category.category } },
        el("span", { className: "label", title: category.category }, category.category),
        el("span", { className: "track" }, el("span", { className: "fill", style: { width: `${(100 * category[field]) / max}%` } })),
        el("span", { className: "value" }, formatCount(category[field]))));
      $(listId).replaceChildren(...(items.length ? items : [el("li", { className: "muted" }, "No data yet")]));
    };
    bars("top-items", "itemCount");
    bars("top-sales", "soldCount");
  }

  async function lookUp(event) {
    event.preventDefault();
    const id = $("lookup-id").value.trim();
    const out = $("lookup-result");
    if (!id) return;
    out.replaceChildren(el("p", { className: "muted" }, "Looking up…"));
    try {
      const answer = await api("/api/v1/events/" + encodeURIComponent(id));
      if (answer.status === 404) {
        out.replaceChildren(el("p", { className: "muted", id: "lookup-missing" }, "No event with this id."));
        return;
      }
      if (!answer.ok) {
        out.replaceChildren(el("p", { className: "error" }, messageOf(answer.data, answer.status)));
        return;
      }
      const found = answer.data;
      out.replaceChildren(el("dl", { className: "fields", id: "lookup-found", dataset: { status: found.status } },
        el("dt", {}, "Event id"), el("dd", { className: "mono" }, found.eventId),
        el("dt", {}, "Type"), el("dd", {}, found.eventType),
        el("dt", {}, "Aggregate"), el("dd", { className: "mono" }, found.aggregateId),
        el("dt", {}, "Status"), el("dd", { id: "lookup-status" }, found.status),
        el("dt", {}, "Event time"), el("dd", {}, formatTime(found.eventTime) + " KST"),
        el("dt", {}, "Published"), el("dd", {}, found.publishedAt ? formatTime(found.publishedAt) + " KST" : "—"),
        el("dt", {}, "Failure"), el("dd", {}, found.failureReason || "—")));
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("The worker no longer accepts this token.");
      out.replaceChildren(el("p", { className: "error" }, "The worker did not answer: " + error.message));
    }
  }

  // ---------------------------------------------------------------- wiring

  function start() {
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", () => signOut());
    $("lookup-form").addEventListener("submit", lookUp);
    $("redrive-open").addEventListener("click", () => openRedrive({}));
    $("redrive-form").addEventListener("submit", (event) => {
      event.preventDefault();
      redrive(true);
    });
    $("redrive-form").addEventListener("input", (event) => {
      if (event.target.id !== "redrive-admin-token") resetPreview(); // the filter changed
    });
    $("redrive-confirm").addEventListener("click", () => {
      if (state.preview) redrive(false);
    });
    $("inspect-redrive").addEventListener("click", () => {
      const letter = state.inspecting;
      $("inspect-dialog").close();
      if (letter) openRedrive({ topic: letter.topic, partition: letter.partition, offset: letter.offset });
    });
    for (const button of document.querySelectorAll("dialog [data-close]")) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
    window.addEventListener("resize", () => {
      if (state.stats) renderThroughput();
    });
    if (state.token) showApp();
    else showLogin();
  }

  start();
})();
