import Crypto
import Foundation
import HTTPServer

/// The operator's status page at `GET /`: one HTML document with its style
/// and script inline, nothing from another origin, no build step. It loads
/// without a token, asks for the API token once (kept in the tab's
/// sessionStorage) and reads `/status` and `/tenants` with it every 3 s.
///
/// Every piece of data reaches the page through `textContent` (never
/// `innerHTML`), so a subscription name, URL or error text cannot become
/// markup. The Content-Security-Policy admits exactly this style and this
/// script by their SHA-256 hashes rather than `'unsafe-inline'`: should
/// markup ever slip in anyway, an injected script or inline handler does not
/// run. The hashes are computed from the same constants that are served, so
/// they cannot drift from the page.
enum StatusPage {
    static let response: HTTPResponse = {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/html; charset=utf-8")
        headers.add("Content-Security-Policy", contentSecurityPolicy)
        headers.add("X-Content-Type-Options", "nosniff")
        headers.add("Referrer-Policy", "no-referrer")
        headers.add("Cache-Control", "no-cache")
        return HTTPResponse(status: 200, headers: headers, body: Array(document.utf8))
    }()

    /// Same origin only (the page calls its own API); the inline style and
    /// script by hash; no plugins, no `<base>`, no framing (the Retry button
    /// must not be clickjacked). `data:` images only for the empty favicon.
    static let contentSecurityPolicy = [
        "default-src 'self'",
        "script-src '\(sha256(script))'",
        "style-src '\(sha256(style))'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ].joined(separator: "; ")

    static func sha256(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Array(text.utf8))).base64EncodedString()
    }

    static let document = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>provisiond status</title>
        <link rel="icon" href="data:,">
        <style>\(style)</style>
        </head>
        \(body)
        <script>\(script)</script>
        </html>
        """

    static let body = #"""
        <body>
        <header class="top">
          <div class="brand"><span class="product">provisiond</span><span class="page">Status</span></div>
          <div class="meta">
            <span id="updated" class="muted" aria-live="polite"></span>
            <button id="forget" class="link" type="button" hidden>Forget token</button>
          </div>
        </header>
        <main>
          <section id="login" class="login" hidden>
            <form id="login-form" class="card" autocomplete="off">
              <h1>Status page</h1>
              <p class="muted">Enter the API token to see the environments and tenants. It is kept in this browser tab only.
                The service stores a generated one in <code>&lt;data-dir&gt;/api-token</code>.</p>
              <label for="token">API token</label>
              <input id="token" name="token" type="password" spellcheck="false" required>
              <p id="login-error" class="login-error" role="alert" hidden></p>
              <button type="submit" class="primary">Show status</button>
            </form>
          </section>

          <div id="dashboard" hidden>
            <p id="problem" class="banner" role="status" hidden></p>

            <section class="summary" aria-label="Tenants">
              <div class="stat"><span class="label">Tenants</span><span id="t-total" class="value">–</span></div>
              <div class="stat"><span class="label">Provisioned</span><span id="t-provisioned" class="value">–</span></div>
              <div class="stat"><span class="label">Pending</span><span id="t-pending" class="value">–</span></div>
              <div class="stat"><span class="label">Failed</span><span id="t-failed" class="value">–</span></div>
            </section>

            <section>
              <h2>Environments <span id="env-count" class="count"></span></h2>
              <div class="panel">
                <table id="environments">
                  <thead><tr>
                    <th>Environment</th><th>State</th><th class="num">Backlog</th><th class="num">Oldest pending</th>
                    <th class="num">Delivered / min</th><th class="num">Failed</th><th>Last error</th><th></th>
                  </tr></thead>
                  <tbody id="env-rows"></tbody>
                </table>
                <p id="env-empty" class="empty" hidden>No environments yet. An environment appears here once it subscribes with <code>POST /subscriptions</code>.</p>
              </div>
            </section>

            <section>
              <h2>Failed tenants <span id="failed-count" class="count"></span></h2>
              <p class="hint">Deliveries that gave up after <code>--max-attempts</code>. Retry on the environment's row sends them again.</p>
              <div class="panel">
                <table id="failed-tenants">
                  <thead><tr><th>Domain</th><th>Environment</th><th>Event</th><th class="num">Attempts</th><th>Last error</th><th class="num">Last attempt</th></tr></thead>
                  <tbody id="failed-rows"></tbody>
                </table>
                <p id="failed-empty" class="empty" hidden>No failed tenants.</p>
              </div>
            </section>

            <section>
              <h2>Waiting tenants <span id="waiting-count" class="count"></span></h2>
              <p class="hint">Pending tenants that are blocked, retrying, held by a paused or down environment, or older than a minute; oldest first.</p>
              <div class="panel">
                <table id="waiting-tenants">
                  <thead><tr><th>Domain</th><th>Waiting on</th><th class="num">Tenant age</th></tr></thead>
                  <tbody id="waiting-rows"></tbody>
                </table>
                <p id="waiting-empty" class="empty" hidden>Nothing is waiting.</p>
              </div>
            </section>
          </div>
        </main>
        </body>
        """#

    static let style = #"""
        :root {
          --bg: #f5f6f8; --panel: #ffffff; --text: #1d2430; --muted: #5f6b7a; --line: #e3e7ec; --head: #f9fafb;
          --accent: #2f5fa7; --accent-hover: #264e8a;
          --up-bg: #e3f4e8; --up-fg: #17663a; --down-bg: #fbe5e3; --down-fg: #a3261b; --paused-bg: #fdf1d8; --paused-fg: #875400;
          color-scheme: light;
        }
        * { box-sizing: border-box; }
        html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
               font-size: 14px; line-height: 1.45; color: var(--text); background: var(--bg); }
        body { margin: 0; }
        code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
        [hidden] { display: none !important; }
        .muted { color: var(--muted); }
        .top { display: flex; align-items: center; justify-content: space-between; padding: 14px 32px;
               background: var(--panel); border-bottom: 1px solid var(--line); }
        .brand { display: flex; align-items: baseline; gap: 10px; }
        .product { font-weight: 650; font-size: 16px; letter-spacing: -0.01em; }
        .page { color: var(--muted); font-size: 15px; }
        .meta { display: flex; align-items: center; gap: 16px; font-size: 13px; }
        main { max-width: 1280px; margin: 0 auto; padding: 20px 32px 40px; }
        h1 { font-size: 20px; margin: 0 0 8px; font-weight: 600; }
        h2 { font-size: 15px; font-weight: 600; margin: 26px 0 8px; }
        .count { color: var(--muted); font-weight: 400; margin-left: 4px; }
        .hint { margin: -4px 0 8px; color: var(--muted); font-size: 13px; }
        .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
        table { width: 100%; border-collapse: collapse; }
        th { text-align: left; font-weight: 500; font-size: 12px; color: var(--muted); background: var(--head);
             padding: 8px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
        td { padding: 10px 14px; border-top: 1px solid var(--line); vertical-align: top; }
        tbody tr:first-child td { border-top: none; }
        .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        .env-name, .domain { font-weight: 600; }
        .env-url { color: var(--muted); font-size: 12px; max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .error-text { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12.5px;
                      max-width: 340px; overflow-wrap: anywhere; }
        .sub { color: var(--muted); font-size: 12px; margin-top: 2px; }
        .none { color: var(--muted); }
        .reason .environment { font-weight: 600; }
        .reason .why, .sub-inline { color: var(--muted); }
        .badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
        .badge.up { background: var(--up-bg); color: var(--up-fg); }
        .badge.down { background: var(--down-bg); color: var(--down-fg); }
        .badge.paused { background: var(--paused-bg); color: var(--paused-fg); }
        .action { text-align: right; white-space: nowrap; }
        button { font: inherit; cursor: pointer; }
        button.retry { padding: 4px 12px; border: 1px solid #c9d0d8; border-radius: 6px; background: var(--panel); color: var(--text); }
        button.retry:hover:not(:disabled) { background: var(--head); border-color: #aab3be; }
        button:disabled { cursor: default; opacity: 0.6; }
        .retry-result { color: var(--muted); font-size: 12px; margin-top: 4px; white-space: normal; max-width: 180px; margin-left: auto; }
        button.link { background: none; border: none; padding: 0; color: var(--accent); }
        button.link:hover { text-decoration: underline; }
        .summary { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); background: var(--panel);
                   border: 1px solid var(--line); border-radius: 8px; }
        .stat { padding: 12px 18px; border-left: 1px solid var(--line); display: flex; flex-direction: column; }
        .stat:first-child { border-left: none; }
        .stat .label { font-size: 12px; color: var(--muted); }
        .stat .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
        .empty { margin: 0; padding: 18px 14px; color: var(--muted); }
        .banner { margin: 0 0 14px; padding: 10px 14px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); }
        .login { display: flex; justify-content: center; padding-top: 10vh; }
        .card { width: 400px; background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 24px; }
        .card p { margin: 0 0 16px; }
        .card code { white-space: nowrap; }
        label { display: block; font-weight: 500; margin-bottom: 6px; }
        input { width: 100%; font: inherit; padding: 8px 10px; border: 1px solid #c9d0d8; border-radius: 6px; margin-bottom: 12px; }
        input:focus, button:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
        .login-error { color: var(--text); font-weight: 500; }
        button.primary { width: 100%; padding: 8px 12px; border: none; border-radius: 6px; background: var(--accent); color: #fff; font-weight: 600; }
        button.primary:hover { background: var(--accent-hover); }
        """#

    static let script = #"""
        "use strict";
        (() => {
          const TOKEN_KEY = "provisiond.token";
          const REFRESH_MS = 3000;
          const WAITING_AFTER_S = 60;
          const $ = (id) => document.getElementById(id);

          let timer = null;
          let generation = 0;   // answers of an older refresh are dropped
          let last = null;      // the last data drawn, to redraw after a click
          const busy = new Set();       // subscriptions whose retry is on its way
          const notes = new Map();      // subscription id -> {text, requeued, probing, until}

          class Unauthorized extends Error {}

          // Builds an element; children that are strings become text nodes, so data is never parsed as HTML.
          function el(tag, attrs, ...children) {
            const node = document.createElement(tag);
            for (const [name, value] of Object.entries(attrs || {})) {
              if (value === null || value === undefined || value === false) continue;
              if (name === "class") node.className = value;
              else node.setAttribute(name, String(value));
            }
            for (const child of children) {
              if (child !== null && child !== undefined && child !== false) node.append(child);
            }
            return node;
          }

          async function api(method, path) {
            const token = sessionStorage.getItem(TOKEN_KEY);
            if (!token) throw new Unauthorized("no token");
            const response = await fetch(path, {
              method, cache: "no-store",
              headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
            });
            if (response.status === 401) throw new Unauthorized("token refused");
            const body = await response.json().catch(() => null);
            if (!response.ok) {
              throw new Error(method + " " + path + ": " + ((body && body.detail) || ("HTTP " + response.status)));
            }
            return body;
          }

          // -- formatting ------------------------------------------------------

          const number = new Intl.NumberFormat();
          function count(n) { return typeof n === "number" ? number.format(n) : "–"; }

          function seconds(s) {
            s = Math.max(0, Math.floor(s));
            if (s < 60) return s + "s";
            const m = Math.floor(s / 60);
            if (m < 60) return m + "m " + (s % 60) + "s";
            const h = Math.floor(m / 60);
            if (h < 24) return h + "h " + (m % 60) + "m";
            return Math.floor(h / 24) + "d " + (h % 24) + "h";
          }

          function age(time, now) {
            if (!time) return null;
            const t = Date.parse(time);
            return Number.isNaN(t) ? null : (now - t) / 1000;
          }

          function ago(time, now) {
            const s = age(time, now);
            return s === null ? null : seconds(s) + " ago";
          }

          function none() { return el("span", { class: "none" }, "—"); }

          function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

          // -- drawing ---------------------------------------------------------

          function draw() {
            if (!last) return;
            const now = Date.now();
            const { status, failed, pending } = last;
            const subscriptions = status.subscriptions || [];
            const byId = new Map(subscriptions.map((s) => [s.id, s]));
            const tenants = status.tenants || {};
            $("t-total").textContent = count(tenants.total);
            $("t-provisioned").textContent = count(tenants.provisioned);
            $("t-pending").textContent = count(tenants.pending);
            $("t-failed").textContent = count(tenants.failed);

            for (const [id, note] of notes) if (note.until < now) notes.delete(id);
            $("env-rows").replaceChildren(...subscriptions.map((s) => environmentRow(s, now)));
            $("env-count").textContent = subscriptions.length ? String(subscriptions.length) : "";
            $("environments").hidden = subscriptions.length === 0;
            $("env-empty").hidden = subscriptions.length > 0;

            const failedRows = [];
            for (const t of failed) {
              for (const d of t.deliveries || []) if (d.state === "failed") failedRows.push(failedRow(t, d, now));
            }
            fill("failed", failedRows, failed.length, tenants.failed);

            const waitingRows = [];
            for (const t of pending) {
              const reasons = [];
              for (const d of t.deliveries || []) {
                const why = waitReason(t, d, byId.get(d.subscriptionId), now);
                if (why) reasons.push([d, why]);
              }
              if (reasons.length) waitingRows.push(waitingRow(t, reasons, now));
            }
            fill("waiting", waitingRows, null, null);
          }

          function fill(name, rows, shown, total) {
            $(name + "-rows").replaceChildren(...rows);
            $(name + "-tenants").hidden = rows.length === 0;
            $(name + "-empty").hidden = rows.length > 0;
            $(name + "-count").textContent = typeof total === "number" && total > shown
              ? "oldest " + shown + " of " + count(total)
              : (rows.length ? String(rows.length) : "");
          }

          function badge(state) {
            const label = { up: "Up", down: "Down", paused: "Paused" }[state] || state;
            return el("span", { class: "badge " + state, "data-state": state }, label);
          }

          function environmentRow(s, now) {
            const state = s.state || (s.paused ? "paused" : "up");
            const counts = s.counts || {};
            const oldest = age(s.oldestPendingAt, now);

            let lastError;
            if (s.lastError) {
              const status = s.lastStatus && !s.lastError.includes(String(s.lastStatus)) ? "HTTP " + s.lastStatus : null;
              const when = [status, ago(s.lastAttemptAt, now)].filter(Boolean).join(" · ");
              lastError = [el("div", { class: "error-text", title: s.lastError }, s.lastError), when && el("div", { class: "sub" }, when)];
            } else if (s.lastSuccessAt) {
              lastError = [none(), el("div", { class: "sub" }, "last delivery " + ago(s.lastSuccessAt, now))];
            } else {
              lastError = [none()];
            }

            const button = el("button", { type: "button", class: "retry", title: "Failed deliveries become pending; a down environment is probed now" }, "Retry");
            // Retry turns failed deliveries into pending ones and probes a down environment: else it has nothing to do.
            const useful = (counts.failed || 0) > 0 || state === "down";
            button.disabled = busy.has(s.id) || !useful;
            if (!useful) button.title = "Nothing to retry: no failed deliveries and the environment is not down";
            button.addEventListener("click", () => retry(s));
            const note = notes.get(s.id);

            return el("tr", { "data-subscription": s.name, "data-id": s.id },
              el("td", {}, el("div", { class: "env-name" }, s.name), el("div", { class: "env-url", title: s.url }, s.url)),
              el("td", { class: "state" }, badge(state)),
              el("td", { class: "num backlog" }, count(counts.pending)),
              el("td", { class: "num oldest" }, oldest === null ? none() : seconds(oldest)),
              el("td", { class: "num rate" }, count(s.deliveredLastMinute)),
              el("td", { class: "num failed" }, count(counts.failed)),
              el("td", { class: "last-error" }, ...lastError),
              el("td", { class: "action" }, button,
                note && el("div", { class: "retry-result", "data-requeued": note.requeued, "data-probing": note.probing }, note.text)));
          }

          function eventCell(d) { return el("td", { class: "event" }, d.type || "tenant.created"); }

          function failedRow(t, d, now) {
            return el("tr", { "data-domain": t.domain, "data-subscription": d.subscription },
              el("td", { class: "domain" }, t.domain),
              el("td", { class: "environment" }, d.subscription),
              eventCell(d),
              el("td", { class: "num" }, count(d.attempts)),
              el("td", { class: "last-error" }, d.lastError ? el("div", { class: "error-text" }, d.lastError) : none()),
              el("td", { class: "num" }, ago(d.lastAttemptAt, now) || none()));
          }

          // Why a pending delivery deserves a line, or null if it is simply on its way.
          function waitReason(t, d, s, now) {
            if (d.state !== "pending") return null;
            if (d.blockedBy) return "waits for an earlier event (" + d.blockedBy + ")";
            if (s && (s.state === "paused" || s.paused)) return "environment paused";
            if (s && s.state === "down") return "environment down" + (d.lastError ? ": " + d.lastError : "");
            if (d.lastError) return "retrying: " + d.lastError;
            const tenantAge = age(t.createdAt, now);
            if (tenantAge !== null && tenantAge > WAITING_AFTER_S) return "not acknowledged yet";
            return null;
          }

          function waitingRow(t, reasons, now) {
            const tenantAge = age(t.createdAt, now);
            const lines = reasons.map(([d, why]) =>
              el("div", { class: "reason", "data-subscription": d.subscription },
                el("span", { class: "environment" }, d.subscription),
                d.type && d.type !== "tenant.created" ? el("span", { class: "sub-inline" }, " · " + d.type) : null,
                el("span", { class: "why" }, " — " + why)));
            return el("tr", { "data-domain": t.domain },
              el("td", { class: "domain" }, t.domain),
              el("td", {}, ...lines),
              el("td", { class: "num" }, tenantAge === null ? none() : seconds(tenantAge)));
          }

          // -- refreshing ------------------------------------------------------

          async function refresh() {
            clearTimeout(timer);
            const mine = ++generation;
            try {
              const [status, failed, pending] = await Promise.all([
                api("GET", "/status"),
                api("GET", "/tenants?status=failed&limit=20"),
                api("GET", "/tenants?status=pending&limit=20"),
              ]);
              if (mine !== generation) return;
              last = { status, failed: failed.items || [], pending: pending.items || [] };
              draw();
              $("problem").hidden = true;
              $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
            } catch (error) {
              if (mine !== generation) return;
              if (error instanceof Unauthorized) return askForToken(true);
              $("problem").textContent = "Could not refresh (" + error.message + "); trying again every few seconds.";
              $("problem").hidden = false;
            }
            timer = setTimeout(refresh, REFRESH_MS);
          }

          async function retry(s) {
            busy.add(s.id);
            draw();
            try {
              const answer = await api("POST", "/subscriptions/" + encodeURIComponent(s.id) + "/retry");
              const requeued = answer.requeued || 0;
              const text = "Requeued " + plural(requeued, "delivery", "deliveries") + (answer.probing ? "; probing now" : "");
              notes.set(s.id, { text, requeued, probing: !!answer.probing, until: Date.now() + 30000 });
            } catch (error) {
              if (error instanceof Unauthorized) { busy.delete(s.id); return askForToken(true); }
              notes.set(s.id, { text: "Retry failed: " + error.message, until: Date.now() + 30000 });
            }
            busy.delete(s.id);
            refresh();
          }

          // -- the token -------------------------------------------------------

          function askForToken(refused) {
            generation++;
            clearTimeout(timer);
            const had = sessionStorage.getItem(TOKEN_KEY) !== null;
            sessionStorage.removeItem(TOKEN_KEY);
            $("dashboard").hidden = true;
            $("forget").hidden = true;
            $("updated").textContent = "";
            $("login-error").textContent = refused && had ? "That token was not accepted. Enter it again." : "";
            $("login-error").hidden = !(refused && had);
            $("login").hidden = false;
            $("token").value = "";
            $("token").focus();
          }

          function showDashboard() {
            $("login").hidden = true;
            $("dashboard").hidden = false;
            $("forget").hidden = false;
            $("updated").textContent = "Loading…";
            refresh();
          }

          $("login-form").addEventListener("submit", (event) => {
            event.preventDefault();
            const token = $("token").value.trim();
            if (!token) return;
            sessionStorage.setItem(TOKEN_KEY, token);
            last = null;
            showDashboard();
          });
          $("forget").addEventListener("click", () => askForToken(false));
          document.addEventListener("visibilitychange", () => {
            if (document.visibilityState === "visible" && !$("dashboard").hidden) refresh();
          });

          if (sessionStorage.getItem(TOKEN_KEY)) showDashboard(); else askForToken(false);
        })();
        """#
}
