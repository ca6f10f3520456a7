/* console.js -- the auditor's console: searches the trail through the
 * gateway's own API (GET /fhir/AuditEvent with its paging), draws the
 * activity that $activity rolls up, verifies the chain ($verify) and
 * exports the current search ($export). The browser presents the auditor's
 * certificate; nothing is loaded from anywhere else. */
"use strict";

(function () {
  const API = "/fhir/AuditEvent";
  const PAGE_SIZE = 25;
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const CLASSES = ["success", "rejected", "failed", "refused"]; /* bottom to top */
  const $ = (id) => document.getElementById(id);

  /* ------------------------------------------------------------ language */

  function pickLanguage() {
    const langs = navigator.languages && navigator.languages.length ? navigator.languages
      : [navigator.language || "en"];
    for (const l of langs) {
      const base = String(l).toLowerCase().slice(0, 2);
      if (base === "fr" || base === "en") return base;
    }
    return "en";
  }
  const LANG = pickLanguage();
  const TEXT = window.CONSOLE_TEXT[LANG];

  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(TEXT, key) ? TEXT[key] : null;
    if (s === null) return null;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function applyLabels() {
    document.documentElement.lang = LANG;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const s = t(el.dataset.i18n);
      if (s !== null) el.textContent = s;
    }
    for (const el of document.querySelectorAll("[data-i18n-label]")) {
      const s = t(el.dataset.i18nLabel);
      if (s !== null) el.setAttribute("aria-label", s);
    }
    document.title = t("title");
  }

  const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const timeFormat = new Intl.DateTimeFormat(LANG === "fr" ? "fr-FR" : "en-GB",
    { dateStyle: "short", timeStyle: "medium", timeZone: ZONE });
  const dayFormat = new Intl.DateTimeFormat(LANG === "fr" ? "fr-FR" : "en-GB",
    { weekday: "short", day: "numeric", month: "short", timeZone: ZONE });
  const hourFormat = new Intl.DateTimeFormat(LANG === "fr" ? "fr-FR" : "en-GB",
    { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: ZONE });
  const fmtTime = (ms) => timeFormat.format(new Date(ms));

  /* ------------------------------------------------------------ the API */

  async function api(url, options) {
    const r = await fetch(url, Object.assign({
      headers: { "Accept": "application/fhir+json" }, credentials: "same-origin", cache: "no-store"
    }, options || {}));
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const issue = body && body.issue && body.issue[0];
      const why = issue ? (issue.diagnostics || issue.code) : r.statusText;
      throw new Error(t("error", { status: r.status, text: why }));
    }
    return body;
  }

  /* A link of this server's Bundle as a path of this origin. */
  function localUrl(absolute) {
    const u = new URL(absolute, location.href);
    return u.pathname + u.search;
  }

  /* ------------------------------------------------------------ reading an AuditEvent */

  const code = (c) => (c && c.code) || "";
  const entities = (ae) => ae.entity || [];

  function requestEntity(ae) {
    const list = entities(ae).filter((e) => code(e.role) === "20" && !e.what && e.description);
    return list.length ? list[list.length - 1] : null;
  }

  function httpStatus(ae) {
    const req = requestEntity(ae);
    const d = req && (req.detail || []).find((x) => x.type === "http-status");
    return d ? Number(d.valueString) : 0;
  }

  function references(ae) {
    const seen = [];
    for (const e of entities(ae)) {
      const ref = e.what && e.what.reference;
      if (ref && !seen.includes(ref)) seen.push(ref);
    }
    return seen;
  }

  /* "ServiceRequest/5fbbabc8…": the table stays readable; the detail shows all. */
  const shortRef = (ref) => ref.replace(/\/([^/]{10})[^/]{4,}$/, "/$1…");
  const referralOf = (ae) => references(ae).find((r) => r.startsWith("ServiceRequest/")) || null;
  const patientOf = (ae) => references(ae).find((r) => r.startsWith("Patient/")) || null;

  function outcomeWords(ae) {
    const status = httpStatus(ae);
    if (ae.outcome === "4" && [401, 403, 404].includes(status)) return t("res-" + status);
    const base = t("res-" + ae.outcome) || ae.outcome;
    return status && ae.outcome !== "0" ? base + " (" + status + ")" : base;
  }

  function outcomeClass(ae) {
    const status = httpStatus(ae);
    if (ae.outcome === "0") return "success";
    if (ae.outcome === "4") return [401, 403, 404].includes(status) ? "refused" : "rejected";
    return "failed";
  }

  function whatWords(ae) {
    const sub = ae.subtype && ae.subtype[0] ? code(ae.subtype[0]) : "";
    const words = t("sub-" + sub) || sub;
    const kind = t("kind-" + code(ae.type));
    return kind ? words + " — " + kind : words;
  }

  function who(ae) {
    const a = (ae.agent || []).find((x) => x.requestor) || (ae.agent || [])[0] || {};
    return {
      name: (a.who && a.who.display) || t("unidentified"),
      org: a.name || "",
      role: (a.role && a.role[0] && a.role[0].text) || "",
      address: (a.network && a.network.address) || ""
    };
  }

  /* ------------------------------------------------------------ the search */

  let current = { url: null, next: null, prev: null };
  let generation = 0; /* counts the answers shown (data-generation), for tests and tools */

  function isoOf(input) {
    if (!input.value) return null;
    const d = new Date(input.value); /* datetime-local: the auditor's time zone */
    return isNaN(d) ? null : d.toISOString();
  }

  function localValue(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }

  function patientParam(text, params) {
    const v = text.trim();
    if (!v) return;
    if (/^Patient\//.test(v)) params.append("patient", v);
    else if (/^[0-9 ]{13,21}$/.test(v)) params.append("patient.identifier", v.replace(/ /g, ""));
    else params.append("patient.name", v);
  }

  /* The search parameters the form says (no paging). */
  function formParams() {
    const p = new URLSearchParams();
    const from = isoOf($("from")), to = isoOf($("to"));
    if (from) p.append("date", "ge" + from);
    if (to) p.append("date", "lt" + to);
    patientParam($("patient").value, p);
    for (const id of ["agent", "address", "action", "outcome", "type", "subtype", "entity"]) {
      const v = $(id).value.trim();
      if (v) p.append(id, v);
    }
    if ($("entity-name").value) p.append("entity-name:exact", $("entity-name").value);
    return p;
  }

  function setLinked() {
    const req = $("entity-name").value, ent = $("entity").value;
    $("linked").hidden = !req && !ent;
    $("linked-text").textContent = req ? t("linked-request", { id: req })
      : ent ? t("linked-entity", { ref: ent }) : "";
  }

  async function search(url) {
    $("summary").textContent = t("loading");
    $("results").setAttribute("aria-busy", "true");
    try {
      const bundle = await api(url);
      current.url = url;
      const links = bundle.link || [];
      const next = links.find((l) => l.relation === "next");
      const prev = links.find((l) => l.relation === "previous");
      current.next = next ? localUrl(next.url) : null;
      current.prev = prev ? localUrl(prev.url) : null;
      renderRows((bundle.entry || []).filter((e) => e.search && e.search.mode === "match")
        .map((e) => e.resource), bundle.total);
    } catch (err) {
      $("rows").replaceChildren();
      $("summary").textContent = err.message;
    } finally {
      $("results").dataset.generation = String(++generation);
      $("results").removeAttribute("aria-busy");
      $("next").disabled = !current.next;
      $("prev").disabled = !current.prev;
    }
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text instanceof Node) td.append(text); else td.textContent = text;
    row.append(td);
    return td;
  }

  function lines(first, second) {
    const f = document.createDocumentFragment();
    const a = document.createElement("span");
    a.textContent = first;
    f.append(a);
    if (second) {
      const b = document.createElement("span");
      b.className = "sub";
      b.textContent = second;
      f.append(b);
    }
    return f;
  }

  function renderRows(events, total) {
    const body = $("rows");
    body.replaceChildren();
    for (const ae of events) {
      const tr = document.createElement("tr");
      const w = who(ae);
      const req = requestEntity(ae);
      const when = fmtTime(Date.parse(ae.recorded));
      tr.className = "outcome-" + outcomeClass(ae);
      cell(tr, when, "time");
      cell(tr, lines(w.name, [w.org, w.address].filter(Boolean).join(" · ")));
      cell(tr, lines(whatWords(ae), req ? req.description : ""));
      const refs = references(ae);
      const refCell = cell(tr, lines(refs.map(shortRef).join(", ") || "—"), "refs");
      if (refs.length) refCell.title = refs.join("\n");
      cell(tr, outcomeWords(ae), "outcome");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "show";
      b.textContent = t("show");
      b.setAttribute("aria-label", t("show-label", { when }));
      b.addEventListener("click", () => showEvent(ae, b));
      cell(tr, b);
      body.append(tr);
    }
    $("summary").textContent = !events.length ? t("none")
      : typeof total === "number" ? t("found-total", { n: total, shown: events.length })
      : t("found", { n: events.length });
    const exportParams = formParams();
    $("export").href = API + "/$export" + (exportParams.toString() ? "?" + exportParams : "");
  }

  function runForm() {
    setLinked();
    const p = formParams();
    p.append("_sort", "-_lastUpdated");
    p.append("_count", String(PAGE_SIZE));
    p.append("_total", "accurate");
    search(API + "?" + p);
    loadActivity();
  }

  /* ------------------------------------------------------------ one event */

  function fact(dl, key, value) {
    if (!value) return;
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }

  function linkButton(label, apply) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", () => {
      $("detail").close();
      $("search").reset();
      $("entity").value = "";
      $("entity-name").value = "";
      apply();
      runForm();
      $("results").focus();
    });
    return b;
  }

  let opener = null;

  function showEvent(ae, from) {
    opener = from || null;
    const w = who(ae);
    const req = requestEntity(ae);
    const dl = $("detail-facts");
    dl.replaceChildren();
    fact(dl, "fact-time", fmtTime(Date.parse(ae.recorded)));
    fact(dl, "fact-who", w.name);
    fact(dl, "fact-role", w.role);
    fact(dl, "fact-org", w.org);
    fact(dl, "fact-address", w.address);
    fact(dl, "fact-what", whatWords(ae));
    fact(dl, "fact-path", req && req.description);
    fact(dl, "fact-request", req && req.name);
    fact(dl, "fact-outcome", outcomeWords(ae));
    fact(dl, "fact-why", ae.outcomeDesc);
    fact(dl, "fact-entities", references(ae).join(", "));
    const links = $("detail-links");
    links.replaceChildren();
    if (req && req.name)
      links.append(linkButton(t("same-request"), () => { $("entity-name").value = req.name; }));
    const referral = referralOf(ae);
    if (referral)
      links.append(linkButton(t("same-referral"), () => { $("entity").value = referral; }));
    const patient = patientOf(ae);
    if (patient)
      links.append(linkButton(t("same-patient"), () => { $("patient").value = patient; }));
    if (w.name && w.name !== t("unidentified") && (ae.agent || [])[0] && ae.agent[0].who)
      links.append(linkButton(t("same-client"), () => { $("agent").value = w.name; }));
    $("detail-title").textContent = t("event") + " " + ae.id;
    $("detail-json").textContent = JSON.stringify(ae, null, 2);
    $("detail").showModal();
    $("close-detail").focus();
  }

  /* ------------------------------------------------------------ activity pictures */

  function period() {
    const to = isoOf($("to")) ? Date.parse(isoOf($("to"))) : Date.now();
    const from = isoOf($("from")) ? Date.parse(isoOf($("from"))) : to - 7 * DAY;
    return { from, to };
  }

  function startOfLocalDay(ms) {
    const d = new Date(ms);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  function nextLocalDay(ms) {
    const d = new Date(ms);
    d.setDate(d.getDate() + 1);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  /* Buckets (hours or the auditor's local days) covering the period. */
  function buckets(hours, p, perDay) {
    const list = [];
    let at = perDay ? startOfLocalDay(p.from) : Math.floor(p.from / HOUR) * HOUR;
    while (at < p.to && list.length < 2000) {
      const end = perDay ? nextLocalDay(at) : at + HOUR;
      list.push({ start: at, end, success: 0, refused: 0, rejected: 0, failed: 0 });
      at = end;
    }
    let i = 0;
    for (const h of hours) {
      while (i < list.length && list[i].end <= h.start) i++;
      if (i === list.length) break;
      if (h.start < list[i].start) continue;
      for (const c of CLASSES) list[i][c] += h[c];
    }
    return list;
  }

  function partsOf(p) {
    const o = {};
    for (const x of p.part || []) o[x.name] = x;
    return o;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.append(el);
    return el;
  }

  let lastActivity = null;

  function drawTimeline() {
    if (!lastActivity) return;
    const { hours, p } = lastActivity;
    const perDay = $("per-day").checked;
    const list = buckets(hours, p, perDay);
    const box = $("timeline");
    const W = Math.max(300, Math.round(box.getBoundingClientRect().width) || 900);
    const H = 200, left = 44, right = 8, top = 14, bottom = 24;
    box.setAttribute("viewBox", "0 0 " + W + " " + H);
    box.replaceChildren();
    const max = Math.max(1, ...list.map((b) => b.success + b.refused + b.rejected + b.failed));
    const slot = (W - left - right) / Math.max(1, list.length);
    const barW = Math.max(1, slot * 0.8);
    const y = (n) => top + (H - top - bottom) * (1 - n / max);
    svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis" }, box);
    svg("text", { x: left - 6, y: top + 4, class: "tick", "text-anchor": "end" }, box)
      .textContent = String(max);
    svg("text", { x: left - 6, y: H - bottom, class: "tick", "text-anchor": "end" }, box)
      .textContent = "0";
    const every = Math.max(1, Math.ceil(list.length / Math.floor((W - left) / 90)));
    let total = 0, refused = 0;
    list.forEach((b, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const sum = b.success + b.refused + b.rejected + b.failed;
      total += sum;
      refused += b.refused;
      if (i % every === 0) {
        svg("text", { x: x, y: H - 6, class: "tick" }, box).textContent =
          (perDay ? dayFormat : hourFormat).format(new Date(b.start));
      }
      if (!sum) return;
      const when = (perDay ? dayFormat : hourFormat).format(new Date(b.start));
      const g = svg("g", { class: "bar" + (b.refused ? " has-refusals" : "") }, box);
      let base = 0;
      for (const c of CLASSES) {
        if (!b[c]) continue;
        svg("rect", { x, width: barW, y: y(base + b[c]), height: y(base) - y(base + b[c]),
                      class: "seg " + c }, g);
        base += b[c];
      }
      if (b.refused) { /* a mark above the bar: refusals show even when successes dwarf them */
        svg("rect", { x, width: barW, y: 2, height: 8, class: "alarm" }, g);
      }
      const label = t("bucket-label", { when, success: b.success, refused: b.refused,
                                        rejected: b.rejected, failed: b.failed });
      svg("title", {}, g).textContent = label;
      const open = () => {
        $("from").value = localValue(b.start);
        $("to").value = localValue(b.end);
        runForm();
      };
      g.addEventListener("click", open);
      if (b.refused) { /* keyboard: the buckets worth a look */
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        g.setAttribute("aria-label", label);
        g.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
        });
      }
    });
    $("timeline-caption").textContent = t("timeline-caption", {
      total, refused, from: fmtTime(p.from), to: fmtTime(p.to) });
  }

  function drawClients(clients, more) {
    const body = $("client-rows");
    body.replaceChildren();
    for (const c of clients) {
      const tr = document.createElement("tr");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.textContent = c.name || t("no-certificate", { address: c.address });
      b.addEventListener("click", () => {
        $("search").reset();
        if (c.name) $("agent").value = c.name; else $("address").value = c.address;
        runForm();
      });
      const th = document.createElement("th");
      th.scope = "row";
      th.append(b);
      tr.append(th);
      cell(tr, String(c.requests), "num");
      cell(tr, String(c.refused), "num" + (c.refused ? " alarm-text" : ""));
      cell(tr, String(c.rejected), "num");
      cell(tr, String(c.failed), "num");
      cell(tr, c.lastSeen ? fmtTime(c.lastSeen) : "");
      body.append(tr);
    }
    if (more) {
      const tr = document.createElement("tr");
      const td = cell(tr, t("more-clients"));
      td.colSpan = 6;
      body.append(tr);
    }
  }

  async function loadActivity() {
    const p = period();
    const q = new URLSearchParams({ start: new Date(p.from).toISOString(),
                                    end: new Date(p.to).toISOString() });
    try {
      const params = await api(API + "/$activity?" + q);
      const hours = [], clients = [];
      let more = false;
      for (const x of params.parameter || []) {
        if (x.name === "moreClients") more = x.valueBoolean;
        const o = partsOf(x);
        const n = (k) => (o[k] ? o[k].valueInteger : 0);
        if (x.name === "hour")
          hours.push({ start: Date.parse(o.start.valueInstant), success: n("success"),
                       refused: n("refused"), rejected: n("rejected"), failed: n("failed") });
        if (x.name === "client")
          clients.push({ name: o.name ? o.name.valueString : "",
                         address: o.address ? o.address.valueString : "",
                         requests: n("requests"), refused: n("refused"), rejected: n("rejected"),
                         failed: n("failed"),
                         lastSeen: o.lastSeen ? Date.parse(o.lastSeen.valueInstant) : 0 });
      }
      if (p.to - p.from > 3 * DAY && !$("per-hour").checked) $("per-day").checked = true;
      lastActivity = { hours, p };
      drawTimeline();
      drawClients(clients, more);
    } catch (err) {
      $("timeline-caption").textContent = err.message;
    }
  }

  /* ------------------------------------------------------------ verify */

  async function verify() {
    const out = $("verify-result");
    const button = $("verify");
    out.hidden = false;
    out.className = "verify";
    out.textContent = t("verifying");
    button.disabled = true;
    try {
      const params = await api(API + "/$verify", { method: "POST" });
      const v = {};
      for (const x of params.parameter || []) v[x.name] = x;
      const n = v.checked ? v.checked.valueInteger : 0;
      if (v.intact && v.intact.valueBoolean) {
        out.className = "verify intact";
        out.textContent = t("intact", { n });
      } else {
        const ref = v.brokenEvent.valueReference.reference;
        const id = ref.split("/")[1];
        out.className = "verify broken";
        out.textContent = t("broken", { id, seq: v.brokenSequence.valueInteger,
                                        reason: v.reason.valueString, n });
        out.append(" ");
        const b = document.createElement("button");
        b.type = "button";
        b.id = "open-broken";
        b.textContent = t("open-broken");
        b.addEventListener("click", async () => {
          try { showEvent(await api(API + "/" + encodeURIComponent(id)), b); }
          catch (err) { out.append(" " + err.message); }
        });
        out.append(b);
      }
    } catch (err) {
      out.className = "verify broken";
      out.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  /* ------------------------------------------------------------ start */

  function start() {
    applyLabels();
    $("zone").textContent = t("zone", { zone: ZONE });
    $("from").value = localValue(Date.now() - 7 * DAY);
    $("search").addEventListener("submit", (e) => { e.preventDefault(); runForm(); });
    $("search").addEventListener("reset", () => {
      $("entity").value = "";
      $("entity-name").value = "";
      setTimeout(setLinked, 0);
    });
    $("unlink").addEventListener("click", () => {
      $("entity").value = "";
      $("entity-name").value = "";
      runForm();
    });
    $("next").addEventListener("click", () => current.next && search(current.next));
    $("prev").addEventListener("click", () => current.prev && search(current.prev));
    $("verify").addEventListener("click", verify);
    $("close-detail").addEventListener("click", () => $("detail").close());
    $("detail").addEventListener("close", () => { if (opener) opener.focus(); });
    for (const r of document.querySelectorAll("input[name=bucket]"))
      r.addEventListener("change", drawTimeline);
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(drawTimeline, 150);
    });
    runForm();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
