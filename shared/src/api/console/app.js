// The Salesforce integration's settings page. Plain JavaScript, no build step.
// Every data request goes to this origin's integration API (docs/openapi.yaml)
// with the admin's bearer token from Modjo's session. Markup is never built
// from strings: the page only creates elements and sets their text (the
// Content-Security-Policy requires Trusted Types, so it could not anyway).
"use strict";

(function () {
  const TOKEN_KEY = "modjo.salesforce.token";
  const SYNC_POLL_MS = 2000;
  const SYNC_WAIT_MS = 10 * 60 * 1000;

  // ---------------------------------------------------------------- language

  const dictionaries = window.MODJO_I18N || { en: {} };
  const lang = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  const locale = lang.toLowerCase().startsWith("fr") ? "fr" : "en";
  const words = dictionaries[locale] || dictionaries.en;

  function t(key, params) {
    let text = words[key] ?? dictionaries.en[key] ?? key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  const dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
  const timeFormat = new Intl.DateTimeFormat(locale, { timeStyle: "medium" });
  const numberFormat = new Intl.NumberFormat(locale);
  const when = (iso) => (iso ? dateFormat.format(new Date(iso)) : "—");
  const num = (n) => numberFormat.format(n || 0);

  function translatePage() {
    document.documentElement.lang = locale;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    document.title = t("title") + " · Modjo";
  }

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function announce(text) {
    const region = $("announce");
    region.textContent = "";
    // A fresh text node is announced even when the words repeat.
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  function showBanner(text, kind) {
    const banner = $("banner");
    banner.textContent = text;
    banner.className = "banner " + (kind || "error");
    banner.hidden = !text;
  }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  // ---------------------------------------------------------------- API

  class ApiFailure extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
      this.retryAfter = retryAfter ? Number(retryAfter) : null;
    }
  }

  function readToken() {
    const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      // The token never stays in the address bar or the history.
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  const token = readToken();

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiFailure(0, { message: t("error.unavailable") });
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) throw new ApiFailure(response.status, data, response.headers.get("retry-after"));
    return data;
  }

  /// What to tell the admin about a failed request; `null` when the caller says it.
  function explain(failure) {
    if (!(failure instanceof ApiFailure)) return t("error.generic", { message: String(failure) });
    if (failure.status === 401) return t("auth.expired");
    if (failure.status === 403) return t("auth.forbidden");
    if (failure.status === 0 || failure.status === 503 || failure.status >= 500 && failure.status !== 502) {
      return t("error.unavailable");
    }
    return t("error.generic", { message: failure.message });
  }

  function reportFailure(failure) {
    const text = explain(failure);
    showBanner(text, "error");
    announce(text);
  }

  // ---------------------------------------------------------------- state

  const state = {
    status: null,      // GET status, or null when not set up
    settings: null,    // GET settings, or null when not saved
    users: null,       // { modjo, salesforce, mappings, report }
    syncWatch: null,
    callsNext: null,
  };

  // ---------------------------------------------------------------- tabs

  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const loaders = { "tab-users": loadUsers, "tab-sync": loadSync, "tab-calls": () => loadCalls(false) };

  function selectTab(tab, focus) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    const load = loaders[tab.id];
    if (load) load();
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab, false));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = {
        ArrowRight: tabs[(i + 1) % tabs.length],
        ArrowLeft: tabs[(i - 1 + tabs.length) % tabs.length],
        Home: tabs[0],
        End: tabs[tabs.length - 1],
      }[event.key];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });
  }

  // ---------------------------------------------------------------- connection

  async function loadConnection() {
    try {
      state.status = await api("GET", "status");
    } catch (e) {
      if (!(e instanceof ApiFailure && e.status === 404)) throw e;
      state.status = null;
    }
    try {
      state.settings = await api("GET", "settings");
    } catch (e) {
      if (!(e instanceof ApiFailure && e.status === 404)) throw e;
      state.settings = null;
    }
    renderConnection();
    renderSettings();
  }

  function connectionStatus() {
    return state.status ? state.status.status : "none";
  }

  function connectedUser() {
    const s = state.status;
    return (s && s.salesforceUser && (s.salesforceUser.username || s.salesforceUser.id)) || "—";
  }

  function renderConnection() {
    const status = connectionStatus();
    const s = state.status || {};
    const badge = $("connection-badge");
    badge.textContent = t("status." + status);
    badge.className = "badge badge-" + status;
    $("connection-text").textContent = t("connection.text." + status);
    $("summary").textContent = t("summary." + status, { org: s.orgId || "—", user: connectedUser() });
    const details = $("connection-details");
    details.hidden = !s.orgId;
    $("connection-org").textContent = s.orgId || "—";
    $("connection-user").textContent = connectedUser();
    $("connection-instance").textContent = s.instanceUrl || "—";
    $("connection-since").textContent = when(s.connectedAt);
    const link = $("link");
    link.textContent = t(status === "needs_reauth" || status === "disconnected" ? "connection.relink" : "connection.link");
    link.hidden = status === "connected";
    link.disabled = !state.settings;
    $("link-hint").textContent = state.settings ? t("connection.linkHint") : t("connection.saveFirst");
    $("link-hint").hidden = status === "connected";
    $("disconnect").hidden = !(status === "connected" || status === "needs_reauth");
    renderPermissions(s.permissions, status);
    // Why summaries cannot be saved as Notes, with the Setup path (server's words).
    $("notes-problem").textContent = s.notesProblem || "";
    $("notes-problem").hidden = !s.notesProblem;
  }

  // What the setup guide's steps grant the connected user, and what to fix.
  function renderPermissions(check, status) {
    const box = $("permissions");
    box.hidden = status !== "connected" && !check;
    $("permissions-check").disabled = status !== "connected";
    const list = $("permissions-missing");
    list.replaceChildren();
    if (!check) {
      $("permissions-summary").textContent = t("permissions.never");
      return;
    }
    const key = check.missing.length === 0 ? "permissions.ok"
      : check.ok ? "permissions.reduced" : "permissions.blocking";
    $("permissions-summary").textContent = t(key, { at: when(check.checkedAt) });
    for (const m of check.missing) {
      list.append(el("li", { className: m.mandatory ? "mandatory" : "recommended" },
        el("strong", { text: t(m.mandatory ? "permissions.mandatory" : "permissions.recommended") }),
        el("span", { text: " " + m.problem }),
        el("span", { className: "sub", text: m.fix })));
    }
  }

  $("permissions-check").addEventListener("click", async () => {
    const button = $("permissions-check");
    busy(button, true);
    try {
      const check = await api("POST", "permissions/check");
      if (state.status) state.status.permissions = check;
      renderPermissions(check, connectionStatus());
    } catch (e) {
      reportFailure(e);
    } finally {
      busy(button, false);
    }
  });

  $("link").addEventListener("click", async () => {
    const button = $("link");
    busy(button, true);
    announce(t("connection.redirecting"));
    try {
      const answer = await api("POST", "connect");
      location.assign(answer.authorizeUrl);
    } catch (e) {
      busy(button, false);
      reportFailure(e);
    }
  });

  /// Back from Salesforce: `?salesforce=connected` or `?salesforce=error&reason=…`.
  function callbackResult() {
    const params = new URLSearchParams(location.search);
    const result = params.get("salesforce");
    if (!result) return null;
    history.replaceState(null, "", location.pathname);
    return result === "connected" ? { ok: true } : { ok: false, reason: params.get("reason") || "unknown" };
  }

  function showCallbackResult(result) {
    if (!result) return;
    if (result.ok) {
      const s = state.status || {};
      showBanner(t("callback.connected", { org: s.orgId || "—", user: connectedUser() }), "success");
    } else {
      const key = "callback." + result.reason;
      const text = words[key] || dictionaries.en[key] ? t(key) : t("callback.unknown", { reason: result.reason });
      showBanner(text, "error");
    }
    announce($("banner").textContent);
  }

  // Disconnect, after a confirmation.
  const dialog = $("confirm-disconnect");
  $("disconnect").addEventListener("click", () => {
    dialog.showModal();
    $("confirm-cancel").focus();
  });
  $("confirm-cancel").addEventListener("click", () => {
    dialog.close();
    $("disconnect").focus();
  });
  $("confirm-ok").addEventListener("click", async () => {
    const button = $("confirm-ok");
    busy(button, true);
    announce(t("disconnect.working"));
    try {
      await api("DELETE", "connection");
      dialog.close();
      await loadConnection();
      showBanner(t("disconnect.done"), "success");
      announce(t("disconnect.done"));
      $("link").focus();
    } catch (e) {
      dialog.close();
      reportFailure(e);
    } finally {
      busy(button, false);
    }
  });

  // ---------------------------------------------------------------- settings

  const settingsFields = ["consumerKey", "consumerSecret", "instanceUrl"];

  function renderSettings() {
    const s = state.settings;
    $("consumerKey").value = s ? s.consumerKey : "";
    $("instanceUrl").value = s ? s.instanceUrl : "";
    $("sandbox").checked = !!(s && s.loginUrl && s.loginUrl.includes("test.salesforce.com"));
    $("summariesAsNotes").checked = !!(s && s.summariesAsNotes);
    const secret = $("consumerSecret");
    secret.value = "";
    secret.placeholder = s && s.consumerSecretSet ? t("settings.secretSet") : "";
    $("consumerSecret-hint").textContent = t("settings.secretHint");
    $("callback-field").hidden = !(s && s.callbackUrl);
    $("callbackUrl").textContent = (s && s.callbackUrl) || "";
  }

  function fieldMessage(field, text) {
    const input = $(field);
    const error = $(field + "-error");
    if (!input || !error) return false;
    error.textContent = text || "";
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return true;
  }

  function fieldNotice(field, text) {
    const notice = $(field + "-notice");
    if (!notice) return;
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  /// The API's refusal of a field, in the admin's words.
  function refusal(body) {
    const field = body.field;
    const reason = body.reason;
    const keys = field === "instanceUrl" || field === "loginUrl"
      ? ["error.url." + reason]
      : ["error." + field + "." + reason];
    for (const key of keys) {
      if (words[key] || dictionaries.en[key]) return t(key);
    }
    return body.message || "";
  }

  $("settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const f of settingsFields) fieldMessage(f, "");
    fieldNotice("instanceUrl", "");
    const consumerKey = $("consumerKey").value.trim();
    const consumerSecret = $("consumerSecret").value;
    const instanceUrl = $("instanceUrl").value.trim();
    let first = null;
    if (!consumerKey) { fieldMessage("consumerKey", t("error.consumerKey.missing")); first = first || "consumerKey"; }
    if (!instanceUrl) { fieldMessage("instanceUrl", t("error.instanceUrl.missing")); first = first || "instanceUrl"; }
    if (first) {
      announce(t("settings.invalid"));
      $(first).focus();
      return;
    }
    const body = {
      consumerKey, instanceUrl, sandbox: $("sandbox").checked, summariesAsNotes: $("summariesAsNotes").checked,
    };
    if (consumerSecret) body.consumerSecret = consumerSecret;
    const button = $("settings-save");
    busy(button, true);
    announce(t("settings.saving"));
    $("settings-status").textContent = "";
    try {
      const saved = await api("PUT", "settings", body);
      await loadConnection();
      const notices = (saved.notices || []).map((n) => {
        const text = t("notice." + n.reason, { from: n.from, to: n.to });
        fieldNotice(n.field, text);
        return text;
      });
      showBanner("", "success");
      $("settings-status").textContent = t("settings.saved");
      announce([t("settings.saved")].concat(notices).join(" "));
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 400 && e.body.field && fieldMessage(e.body.field, refusal(e.body))) {
        announce(t("settings.invalid") + " " + refusal(e.body));
        $(e.body.field).focus();
      } else {
        reportFailure(e);
      }
    } finally {
      busy(button, false);
    }
  });

  // ---------------------------------------------------------------- users

  async function loadUsers() {
    const note = $("users-unavailable");
    note.hidden = true;
    if (connectionStatus() !== "connected") {
      note.textContent = t("users.notConnected");
      note.hidden = false;
      renderUsers();
      return;
    }
    announce(t("users.loading"));
    try {
      const [modjo, salesforce, mappings] = await Promise.all([
        api("GET", "modjo-users"),
        api("GET", "users"),
        api("GET", "mappings"),
      ]);
      state.users = {
        modjo: modjo.users,
        salesforce: salesforce.users,
        saved: new Map(mappings.mappings.map((m) => [m.modjoUserId, m])),
        chosen: new Map(mappings.mappings.map((m) => [m.modjoUserId, m.sfUserId])),
        report: (state.users && state.users.report) || null,
      };
      if (!modjo.users.length) {
        note.textContent = t("users.noDirectory");
        note.hidden = false;
      }
      renderUsers();
    } catch (e) {
      reportFailure(e);
    }
  }

  function userLabel(u) {
    return (u.Name || u.Username || u.Id) + (u.Email ? " · " + u.Email : "");
  }

  function matchState(modjoId) {
    const u = state.users;
    const chosen = u.chosen.get(modjoId) || "";
    const saved = u.saved.get(modjoId);
    if ((saved ? saved.sfUserId : "") !== chosen) return { key: "match.changed", kind: "changed" };
    const report = u.report;
    if (report && !chosen) {
      const ambiguous = report.ambiguous.find((a) => a.modjoUserId === modjoId);
      if (ambiguous) return { key: "match.ambiguous", kind: "warning", candidates: ambiguous.candidates };
      if (report.unmatched.includes(modjoId)) return { key: "match.unmatched", kind: "warning" };
    }
    if (!saved) return { key: "match.unlinked", kind: "muted" };
    return saved.source === "manual" ? { key: "match.manual", kind: "ok" } : { key: "match.auto", kind: "ok" };
  }

  function renderUsers() {
    const body = $("users-table").querySelector("tbody");
    body.replaceChildren();
    const u = state.users;
    const connected = connectionStatus() === "connected";
    $("auto-match").disabled = !connected || !u || !u.modjo.length;
    $("users-save").disabled = !connected || !u;
    renderFallback();
    if (!u) return;
    const byId = new Map(u.salesforce.map((s) => [s.Id, s]));
    for (const person of u.modjo) {
      const status = matchState(person.id);
      const selectId = "map-" + person.id;
      const select = el("select", { id: selectId, "data-modjo-user": person.id,
        "aria-label": t("users.choose", { user: person.name || person.email }),
        "aria-describedby": "state-" + person.id });
      select.append(el("option", { value: "", text: t("users.none") }));
      // Candidates of an ambiguous match first.
      const first = (status.candidates || []).filter((id) => byId.has(id));
      const ordered = first.map((id) => byId.get(id)).concat(u.salesforce.filter((s) => !first.includes(s.Id)));
      for (const s of ordered) select.append(el("option", { value: s.Id, text: userLabel(s) }));
      select.value = u.chosen.get(person.id) || "";
      select.addEventListener("change", () => {
        u.chosen.set(person.id, select.value);
        const cell = $("state-" + person.id);
        const now = matchState(person.id);
        cell.textContent = t(now.key);
        cell.className = "state state-" + now.kind;
      });
      const row = el("tr", { "data-modjo-user": person.id },
        el("th", { scope: "row", "data-label": t("users.modjo") },
          el("span", { className: "name", text: person.name || person.id }),
          el("span", { className: "sub", text: person.email })),
        el("td", { "data-label": t("users.salesforce") }, select),
        el("td", { "data-label": t("users.state") },
          el("span", { id: "state-" + person.id, className: "state state-" + status.kind, text: t(status.key) })));
      body.append(row);
    }
  }

  function renderFallback() {
    const select = $("fallback-owner");
    select.replaceChildren();
    select.append(el("option", { value: "", text: t("users.fallbackDefault", { user: connectedUser() }) }));
    const u = state.users;
    for (const s of (u && u.salesforce) || []) select.append(el("option", { value: s.Id, text: userLabel(s) }));
    select.value = (state.settings && state.settings.defaultOwnerId) || "";
    select.disabled = !u;
  }

  $("auto-match").addEventListener("click", async () => {
    const u = state.users;
    if (!u) return;
    const button = $("auto-match");
    busy(button, true);
    announce(t("users.matching"));
    try {
      const report = await api("POST", "users/auto-match", {
        users: u.modjo.map((m) => ({ id: m.id, email: m.email })),
      });
      u.report = report;
      const mappings = await api("GET", "mappings");
      u.saved = new Map(mappings.mappings.map((m) => [m.modjoUserId, m]));
      for (const m of mappings.mappings) {
        if (!u.chosen.get(m.modjoUserId)) u.chosen.set(m.modjoUserId, m.sfUserId);
      }
      renderUsers();
      announce(t("users.matched", {
        matched: report.matched.length + report.keptManual.length,
        ambiguous: report.ambiguous.length,
        unmatched: report.unmatched.length,
      }));
    } catch (e) {
      reportFailure(e);
    } finally {
      busy(button, false);
    }
  });

  $("users-save").addEventListener("click", async () => {
    const u = state.users;
    if (!u) return;
    const button = $("users-save");
    busy(button, true);
    announce(t("users.saving"));
    let changed = 0;
    try {
      for (const person of u.modjo) {
        const chosen = u.chosen.get(person.id) || "";
        const saved = u.saved.get(person.id);
        if ((saved ? saved.sfUserId : "") === chosen) continue;
        const path = "mappings/" + encodeURIComponent(person.id);
        if (chosen) {
          u.saved.set(person.id, await api("PUT", path, { sfUserId: chosen }));
        } else {
          await api("DELETE", path);
          u.saved.delete(person.id);
        }
        changed += 1;
      }
      const fallback = $("fallback-owner").value;
      const s = state.settings;
      if (s && (s.defaultOwnerId || "") !== fallback) {
        state.settings = await api("PUT", "settings", {
          consumerKey: s.consumerKey, instanceUrl: s.instanceUrl, loginUrl: s.loginUrl, defaultOwnerId: fallback,
        });
        changed += 1;
      }
      u.report = null;
      renderUsers();
      announce(changed ? t("users.saved", { count: changed }) : t("users.nothing"));
    } catch (e) {
      renderUsers();
      reportFailure(e);
    } finally {
      busy(button, false);
    }
  });

  // ---------------------------------------------------------------- sync

  async function loadSync() {
    if (!state.status) {
      renderSync(null);
      return;
    }
    try {
      const view = await api("GET", "sync");
      renderSync(view);
      return view;
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) renderSync(null);
      else reportFailure(e);
    }
    return null;
  }

  function renderSync(view) {
    const connected = view && view.status === "connected";
    $("sync-now").disabled = !connected;
    $("sync-summary").textContent = !view
      ? t("sync.notConnected")
      : view.lastSyncAt ? t("sync.summary", { at: when(view.lastSyncAt) }) : t("sync.never");

    // What is wrong, and what to do.
    const problem = $("sync-problem");
    const objects = (view && view.objects) || [];
    const paused = objects.find((o) => o.state === "paused");
    const failed = objects.filter((o) => o.state === "failed");
    let text = "";
    if (view && view.status === "needs_reauth") text = t("sync.needs_reauth");
    else if (view && view.status === "disconnected") text = t("sync.disconnected");
    else if (paused) {
      text = t("sync.paused", {
        percent: view.apiUsage ? view.apiUsage.percent : "?",
        threshold: view.budget.syncPausesAtPercent,
      });
    } else if (failed.length) {
      text = t("sync.failed", {
        objects: failed.map((o) => o.object).join(", "),
        error: failed[0].lastError || "",
      });
    }
    problem.textContent = text;
    problem.hidden = !text;

    // The API budget against the org's daily allocation.
    const meter = $("budget-meter");
    if (view && view.apiUsage) {
      const u = view.apiUsage;
      $("budget-text").textContent = t("budget.text", {
        used: num(u.used), max: num(u.max), percent: u.percent, at: when(u.observedAt),
      });
      meter.low = view.budget.syncPausesAtPercent;
      meter.high = view.budget.callLoggingWaitsAtPercent;
      meter.value = Math.min(100, u.percent);
      meter.textContent = u.percent + "%";
      meter.hidden = false;
    } else {
      $("budget-text").textContent = t("budget.none");
      meter.hidden = true;
    }
    $("budget-rules").textContent = view
      ? t("budget.rules", { sync: view.budget.syncPausesAtPercent, calls: view.budget.callLoggingWaitsAtPercent })
      : "";

    const body = $("objects-table").querySelector("tbody");
    body.replaceChildren();
    const perObject = objects.filter((o) => o.object !== "*");
    if (!perObject.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, text: t("objects.none") })));
    }
    for (const o of perObject) {
      const source = o.source
        ? el("span", {}, el("span", { className: "source", text: t("source." + o.source) }),
          o.sourceReason ? el("span", { className: "sub", text: t("reason." + o.sourceReason) }) : null)
        : "—";
      body.append(el("tr", { "data-object": o.object },
        el("th", {
          scope: "row",
          "data-label": t("objects.object"),
          text: o.object === "rematch" ? t("objects.rematch") : o.object,
        }),
        el("td", { "data-label": t("objects.state") },
          el("span", { className: "badge badge-sync-" + o.state, text: t("syncstate." + o.state) }),
          o.lastError ? el("span", { className: "sub error-text", text: o.lastError }) : null,
          o.message && o.state !== "up_to_date" ? el("span", { className: "sub", text: o.message }) : null),
        el("td", { "data-label": t("objects.lastRun"),
          text: t("objects.run", { at: when(o.finishedAt), seconds: (o.durationMs / 1000).toFixed(1) }) }),
        el("td", { "data-label": t("objects.records"), text: t("objects.recordsText", {
          read: num(o.recordsRead), written: num(o.recordsWritten), deleted: num(o.recordsDeleted),
          total: num(o.totalRecordsRead) }) }),
        el("td", { "data-label": t("objects.apiCalls"),
          text: t("objects.callsText", { calls: num(o.apiCalls), total: num(o.totalApiCalls) }) }),
        el("td", { "data-label": t("objects.source") }, source)));
    }
  }

  $("sync-refresh").addEventListener("click", () => loadSync());

  $("sync-now").addEventListener("click", async () => {
    const button = $("sync-now");
    busy(button, true);
    try {
      const answer = await api("POST", "sync");
      watchSync(answer.requestedAt);
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 429) {
        const text = t("sync.tooSoon", { seconds: e.retryAfter || 60 });
        $("sync-progress").textContent = text;
        announce(text);
      } else {
        reportFailure(e);
      }
    } finally {
      busy(button, false);
    }
  });

  /// Follows a requested sync until every object has run since `requestedAt`.
  function watchSync(requestedAt) {
    if (state.syncWatch) window.clearTimeout(state.syncWatch);
    const since = new Date(requestedAt).getTime();
    const started = Date.now();
    const progress = $("sync-progress");
    progress.textContent = t("sync.requested", { at: timeFormat.format(new Date(requestedAt)) });
    announce(progress.textContent);
    const after = (iso) => iso && new Date(iso).getTime() >= since;
    const tick = async () => {
      const view = await loadSync();
      const objects = (view && view.objects) || [];
      const done = objects.filter((o) => o.object !== "*" && after(o.finishedAt));
      // Complete (every object read to the end), or stopped by a pause or an error.
      const finished = view && after(view.lastSyncAt);
      const stopped = objects.some((o) => after(o.finishedAt) && (o.state === "paused" || o.state === "failed"));
      if (finished || stopped) {
        const latest = finished ? view.lastSyncAt : done.map((o) => o.finishedAt).sort().pop();
        progress.textContent = t("sync.done", { at: timeFormat.format(new Date(latest || Date.now())) });
        progress.dataset.state = "done";
        announce(progress.textContent);
        state.syncWatch = null;
        return;
      }
      if (done.length) progress.textContent = t("sync.running", { done: done.length, total: objects.filter((o) => o.object !== "*").length });
      progress.dataset.state = "running";
      if (Date.now() - started < SYNC_WAIT_MS) state.syncWatch = window.setTimeout(tick, SYNC_POLL_MS);
    };
    progress.dataset.state = "requested";
    state.syncWatch = window.setTimeout(tick, SYNC_POLL_MS);
  }

  // ---------------------------------------------------------------- calls

  async function loadCalls(more) {
    if (!state.status) {
      renderCalls([], false, null);
      return;
    }
    const filter = $("calls-state").value;
    const params = new URLSearchParams({ limit: "25" });
    if (filter) params.set("state", filter);
    if (more && state.callsNext) params.set("cursor", state.callsNext);
    announce(t("calls.loading"));
    try {
      const page = await api("GET", "calls?" + params.toString());
      state.callsNext = page.next || null;
      renderCalls(page.calls, more, page.next);
    } catch (e) {
      reportFailure(e);
    }
  }

  function linkedText(call) {
    return (call.linked || []).map((l) => l.object + " · " + (l.name || l.id)).join(", ");
  }

  function renderCalls(calls, append, next) {
    const body = $("calls-table").querySelector("tbody");
    if (!append) body.replaceChildren();
    for (const call of calls) {
      const task = call.taskUrl
        ? el("a", { href: call.taskUrl, target: "_blank", rel: "noopener noreferrer",
          className: "task-link", "aria-label": t("calls.openLabel", { call: call.callId }), text: t("calls.open") })
        : el("span", { className: "muted", text: t("calls.noTask") });
      const attention = call.state === "unmatched"
        ? el("span", { className: "sub attention", text: t("calls.attention") })
        : null;
      body.append(el("tr", { "data-call": call.callId, "data-state": call.state },
        el("th", { scope: "row", "data-label": t("calls.call") },
          el("span", { className: "name", text: call.callId }),
          el("span", { className: "sub", text: t("calls.updated", { at: when(call.updatedAt) }) })),
        el("td", { "data-label": t("calls.state") },
          el("span", { className: "badge badge-call-" + call.state, text: t("state." + call.state) })),
        el("td", { "data-label": t("calls.linked"), text: linkedText(call) || "—" }),
        el("td", { "data-label": t("calls.reason") }, call.reason || "—", attention),
        // The manual link (issue 19) will sit next to the Task link.
        el("td", { "data-label": t("calls.task"), className: "call-actions" }, task)));
    }
    const count = body.querySelectorAll("tr").length;
    $("calls-empty").hidden = count > 0;
    $("calls-more").hidden = !next;
    announce(t("calls.count", { count }));
  }

  $("calls-state").addEventListener("change", () => loadCalls(false));
  $("calls-refresh").addEventListener("click", () => loadCalls(false));
  $("calls-more").addEventListener("click", () => loadCalls(true));

  // ---------------------------------------------------------------- start

  async function start() {
    translatePage();
    const back = callbackResult();
    if (!token) {
      $("summary").textContent = t("auth.missing");
      showBanner(t("auth.missing"), "error");
      for (const b of document.querySelectorAll("button, input, select")) b.disabled = true;
      return;
    }
    try {
      await loadConnection();
      showCallbackResult(back);
    } catch (e) {
      reportFailure(e);
    }
  }

  start();
})();
