// wif console. Plain DOM, no framework, no build step. Every value shown
// is set as text (never as HTML): audit records carry what strangers sent.
"use strict";

const DEFAULT_SUB = "00000000-0000-0000-0000-000000000000";
const state = { token: "", session: null, tenant: "", timer: 0 };

// ---- tiny DOM helpers

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v; // CSSOM: allowed by the CSP, unlike style attributes
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}
const main = () => document.getElementById("main");
function show(...nodes) { const m = main(); m.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false)); }
function toast(msg, err) {
  const t = el("div", { class: err ? "err" : "" , text: msg });
  document.getElementById("toast").append(t);
  setTimeout(() => t.remove(), err ? 12000 : 4000);
}
function copyButton(value, label) {
  return el("button", { class: "copy", type: "button", "aria-label": "Copy " + (label || "value"), title: "Copy",
    onclick: () => navigator.clipboard && navigator.clipboard.writeText(value).then(() => toast("Copied " + (label || ""))) }, "copy");
}
function when(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  const secs = Math.round((d - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 5) return d.toISOString().replace(".000", "") + " (now)";
  const rel = abs < 90 ? abs + " s" : abs < 5400 ? Math.round(abs / 60) + " min" : abs < 129600 ? Math.round(abs / 3600) + " h" : Math.round(abs / 86400) + " d";
  return d.toISOString().replace(".000", "") + " (" + (secs < 0 ? rel + " ago" : "in " + rel) + ")";
}

// ---- API

async function api(method, path, body, headers) {
  const h = Object.assign({ "X-Wif-Console-Token": state.token }, headers || {});
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(path.startsWith("/session") ? path : "/api" + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { raw: text }; }
  if (!r.ok) {
    const msg = data && data.error ? data.error.code + ": " + data.error.message : r.status + " " + r.statusText;
    const e = new Error(msg); e.status = r.status; e.data = data; throw e;
  }
  return { data, etag: r.headers.get("ETag") };
}
// list follows nextLink pages (absolute URLs of the admin API).
async function list(path) {
  let out = [], next = path;
  while (next) {
    const { data } = await api("GET", next);
    out = out.concat(data.value || []);
    next = "";
    if (data.nextLink) { const u = new URL(data.nextLink); next = u.pathname.replace(/^\/admin/, "") + u.search; }
  }
  return out;
}
const tp = () => "/tenants/" + encodeURIComponent(state.tenant);
const idPath = (rg, name) => tp() + "/subscriptions/" + DEFAULT_SUB + "/resourceGroups/" + encodeURIComponent(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + encodeURIComponent(name);
function failure(e) { return el("p", { class: "bad", role: "alert", text: e.message }); }

// props is a credential's properties: an identity's credential (ARM)
// nests them, an application's (Graph) does not.
const props = (c) => c.properties || c;

// credentialRows renders credentials with edit and delete when allowed.
function credentialRows(creds, base, canWrite) {
  return creds.map((f) => el("tr", { "data-credential": f.name },
    el("td", { text: f.name }), el("td", { class: "mono", text: props(f).issuer }),
    el("td", { class: "mono", text: props(f).subject || (props(f).claimsMatchingExpression || {}).value || "" }),
    el("td", { class: "mono", text: (props(f).audiences || []).join(" ") }),
    el("td", { text: props(f).lastUsedDateTime ? when(props(f).lastUsedDateTime) : "never" }),
    el("td", {}, canWrite && el("button", { type: "button", class: "edit", "aria-label": "Edit credential " + f.name,
      onclick: () => editCredential(f) }, "Edit"), " ", canWrite && el("button", { class: "danger", type: "button", "aria-label": "Delete credential " + f.name,
      onclick: async () => {
        if (!confirm("Delete federated credential " + f.name + "?")) return;
        try { await api("DELETE", base + "/federatedIdentityCredentials/" + encodeURIComponent(f.name), undefined, { "If-Match": f.etag || "*" }); toast("Deleted " + f.name); route(); }
        catch (e) { toast(e.message, true); }
      } }, "Delete"))));
}

// ---- views

async function viewDirectory() {
  const [ids, apps, tis] = await Promise.all([
    list(tp() + "/subscriptions/" + DEFAULT_SUB + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
    list(tp() + "/applications"),
    list(tp() + "/trustedIssuers").catch(() => null),
  ]);
  const rows = ids.map((m) => el("tr", { class: "row", tabindex: 0, "data-identity": m.name,
    onclick: () => { location.hash = "#/identity/" + encodeURIComponent(m.resourceGroup) + "/" + encodeURIComponent(m.name); },
    onkeydown: (ev) => { if (ev.key === "Enter") ev.currentTarget.click(); } },
    el("td", {}, el("a", { href: "#/identity/" + encodeURIComponent(m.resourceGroup) + "/" + encodeURIComponent(m.name), text: m.name })),
    el("td", { text: m.resourceGroup }),
    el("td", { class: "mono" }, m.properties.clientId, copyButton(m.properties.clientId, "client id")),
    el("td", { text: Object.entries(m.tags || {}).map(([k, v]) => k + "=" + v).join(" ") })));
  const appRows = apps.map((a) => el("tr", { "data-app": a.displayName },
    el("td", {}, el("a", { href: "#/app/" + encodeURIComponent(a.appId), text: a.displayName })), el("td", { class: "mono" }, a.appId, copyButton(a.appId, "appId")),
    el("td", { text: (a.identifierUris || []).join(" ") }),
    el("td", { text: (a.appRoles || []).map((r) => r.value).join(", ") })));
  const out = [el("h1", {}, "Directory ", el("span", { class: "muted mono", text: state.tenant }))];
  out.push(el("h2", { text: "Managed identities (" + ids.length + ")" }),
    el("table", { id: "identities" }, el("thead", {}, el("tr", {}, ["Name", "Resource group", "Client id", "Tags"].map((h) => el("th", { text: h })))), el("tbody", {}, rows)));
  out.push(el("h2", { text: "Applications (" + apps.length + ")" }),
    el("table", { id: "applications" }, el("thead", {}, el("tr", {}, ["Name", "App id", "Identifier URIs", "App roles"].map((h) => el("th", { text: h })))), el("tbody", {}, appRows)));
  if (tis) {
    out.push(el("h2", { text: "Trusted issuers (" + tis.length + ")" }),
      el("table", { id: "trusted-issuers" }, el("thead", {}, el("tr", {}, ["Name", "Issuer", "Keys from", "Algorithms", "Keys updated"].map((h) => el("th", { text: h })))),
        el("tbody", {}, tis.map((t) => el("tr", {}, el("td", { text: t.name }), el("td", { class: "mono", text: t.issuer }), el("td", { text: t.keySource }),
          el("td", { text: (t.algorithms || ["RS256"]).join(", ") }), el("td", { text: when(t.keysUpdatedAt) }))))));
  }
  show(...out);
}

async function viewIdentity(rg, name) {
  const [{ data: m }, creds] = await Promise.all([api("GET", idPath(rg, name)), list(idPath(rg, name) + "/federatedIdentityCredentials")]);
  const canWrite = state.session.canWrite;
  const credRows = credentialRows(creds, idPath(rg, name), canWrite);
  const out = [el("h1", {}, "Managed identity ", el("span", { class: "mono", text: rg + "/" + name })),
    el("div", { class: "grid card" },
      el("span", { class: "muted", text: "Client id" }), el("span", { class: "mono", id: "client-id" }, m.properties.clientId, copyButton(m.properties.clientId, "client id")),
      el("span", { class: "muted", text: "Principal id" }), el("span", { class: "mono" }, m.properties.principalId, copyButton(m.properties.principalId, "principal id")),
      el("span", { class: "muted", text: "Tenant" }), el("span", { class: "mono", text: m.properties.tenantId }),
      el("span", { class: "muted", text: "Resource id" }), el("span", { class: "mono" }, m.id, copyButton(m.id, "resource id"))),
    el("h2", { text: "Federated credentials (" + creds.length + ")" }),
    el("table", { id: "credentials" }, el("thead", {}, el("tr", {}, ["Name", "Issuer", "Subject or expression", "Audience", "Last used", ""].map((h) => el("th", { text: h })))), el("tbody", {}, credRows))];
  if (canWrite) out.push(credentialForm(idPath(rg, name), true));
  else out.push(el("p", { class: "muted", id: "read-only", text: "Read-only: the console's credentials hold no role that changes identities." }));
  show(...out);
}

// credentialForm creates (If-None-Match: *) or edits (If-Match) a
// credential under base; nested: the identity's ARM shape.
function credentialForm(base, nested) {
  const f = el("form", { class: "card", id: "new-credential", "aria-label": "New federated credential" });
  const field = (id, label, attrs) => [el("label", { for: id, text: label }), el("input", Object.assign({ id, name: id }, attrs || {}))];
  const hint = el("div", { class: "hint warn", id: "issuer-hint", "aria-live": "polite" });
  f.append(el("h2", { text: "New federated credential" }),
    ...field("cred-name", "Name", { required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_-]{2,119}", placeholder: "kubernetes" }),
    ...field("cred-issuer", "Issuer (exactly as the tokens' iss)", { required: true, placeholder: "https://oidc.example.com/cluster-1",
      oninput: (e) => issuerHint(e.target.value, hint), onchange: (e) => precheck(e.target.value, hint) }), hint,
    ...field("cred-subject", "Subject", { required: true, placeholder: "system:serviceaccount:NAMESPACE:NAME" }),
    ...field("cred-audience", "Audience", { value: "api://AzureADTokenExchange" }),
    el("p", {}, el("button", { class: "primary", type: "submit" }, "Create")));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => f.querySelector("#" + id).value.trim();
    const p = { issuer: v("cred-issuer"), subject: v("cred-subject"), audiences: [v("cred-audience") || "api://AzureADTokenExchange"] };
    const body = nested ? { properties: p } : p;
    // Create only if new; an edit only if nobody changed it since it was read.
    const editing = f.dataset.etag;
    try {
      await api("PUT", base + "/federatedIdentityCredentials/" + encodeURIComponent(v("cred-name")), body, editing ? { "If-Match": editing } : { "If-None-Match": "*" });
      toast((editing ? "Saved " : "Created ") + v("cred-name")); route();
    } catch (e) {
      toast(e.status === 412 && editing ? e.message + " — reload to see the current version before editing again" : e.message, true);
    }
  });
  return f;
}

function editCredential(c) {
  const f = document.getElementById("new-credential");
  if (!f) return;
  f.dataset.etag = c.etag || "";
  f.querySelector("h2").textContent = "Edit federated credential " + c.name;
  const set = (id, v) => { f.querySelector("#" + id).value = v || ""; };
  set("cred-name", c.name); f.querySelector("#cred-name").readOnly = true;
  set("cred-issuer", props(c).issuer); set("cred-subject", props(c).subject); set("cred-audience", (props(c).audiences || [])[0]);
  f.querySelector("button[type=submit]").textContent = "Save";
  f.querySelector("#cred-subject").focus();
}

async function viewApp(appId) {
  const base = tp() + "/applications/" + encodeURIComponent(appId);
  // An application's credentials are directory admins' (a managed-identity
  // contributor may not change them).
  const appWrite = state.session.unrestricted || state.session.roles.includes("Directory.ReadWrite.All");
  const [{ data: a }, creds, asgs] = await Promise.all([api("GET", base), list(base + "/federatedIdentityCredentials"),
    list(tp() + "/appRoleAssignments?resourceAppId=" + encodeURIComponent(appId))]);
  show(el("h1", {}, "Application ", el("span", { text: a.displayName })),
    el("div", { class: "grid card" },
      el("span", { class: "muted", text: "App id" }), el("span", { class: "mono" }, a.appId, copyButton(a.appId, "appId")),
      el("span", { class: "muted", text: "Service principal" }), el("span", { class: "mono" }, a.servicePrincipalId || "", a.servicePrincipalId && copyButton(a.servicePrincipalId, "service principal id")),
      el("span", { class: "muted", text: "Identifier URIs" }), el("span", { class: "mono", text: (a.identifierUris || []).join(" ") }),
      el("span", { class: "muted", text: "Access tokens" }), el("span", { text: "v" + (a.requestedAccessTokenVersion || 1) })),
    el("h2", { text: "App roles (" + (a.appRoles || []).length + ")" }),
    el("table", { id: "app-roles" }, el("thead", {}, el("tr", {}, ["Value", "Id", "Enabled"].map((h) => el("th", { text: h })))),
      el("tbody", {}, (a.appRoles || []).map((r) => el("tr", {}, el("td", { text: r.value }), el("td", { class: "mono", text: r.id }), el("td", { text: r.isEnabled === false ? "no" : "yes" }))))),
    el("h2", { text: "Assigned to (" + asgs.length + ")" }),
    el("table", { id: "assignments" }, el("thead", {}, el("tr", {}, ["Principal", "Role", "Since"].map((h) => el("th", { text: h })))),
      el("tbody", {}, asgs.map((g) => el("tr", {}, el("td", { class: "mono", text: g.principal || g.principalId }), el("td", { text: g.role || g.appRoleId }), el("td", { text: when(g.createdDateTime) }))))),
    el("h2", { text: "Federated credentials (" + creds.length + ")" }),
    el("table", { id: "app-credentials" }, el("thead", {}, el("tr", {}, ["Name", "Issuer", "Subject or expression", "Audience", "Last used", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, credentialRows(creds, base, appWrite))),
    appWrite ? credentialForm(base, false) : el("p", { class: "muted", id: "read-only", text: "Read-only: changing an application's credentials needs Directory.ReadWrite.All." }));
}

// precheck runs the CLI's own pre-check (the console's process fetches the
// issuer's discovery document, as wif identity federated-credential create
// does) and shows its warning.
async function precheck(v, hint) {
  if (!v.startsWith("https://")) return;
  try {
    const r = await fetch("/precheck?issuer=" + encodeURIComponent(v), { headers: { "X-Wif-Console-Token": state.token } });
    const { warning } = await r.json();
    if (warning) hint.textContent = warning;
  } catch (e) { /* the pre-check is advice only */ }
}

// issuerHint is the CLI's pre-check, as far as a page can make it: the
// issuer must match the tokens' iss exactly, so a trailing '/' matters.
function issuerHint(v, hint) {
  hint.textContent = "";
  if (!v) return;
  if (!v.startsWith("https://")) hint.textContent = "The issuer must be an https URL, exactly as the platform's tokens carry it in iss.";
  else if (v.endsWith("/")) hint.textContent = "Ends with '/': tokens must carry exactly this iss (AKS issuers do end with '/'; most others do not).";
  else if (/\.azure\.com\//.test(v + "/") && !v.endsWith("/")) hint.textContent = "AKS issuer URLs end with '/': check the tokens' iss.";
}

async function viewExchanges(params) {
  const q = new URLSearchParams(params);
  const filters = el("form", { class: "filters", id: "audit-filters", onsubmit: (ev) => { ev.preventDefault(); const p = new URLSearchParams(new FormData(ev.target)); for (const [k, v] of [...p]) if (!v) p.delete(k); location.hash = "#/exchanges?" + p; } },
    el("div", {}, el("label", { for: "f-result", text: "Result" }), el("select", { id: "f-result", name: "result" },
      ["", "success", "failure"].map((r) => el("option", { value: r, selected: q.get("result") === r, text: r || "any" })))),
    el("div", {}, el("label", { for: "f-client", text: "Client id" }), el("input", { id: "f-client", name: "clientId", value: q.get("clientId") || "" })),
    el("div", {}, el("label", { for: "f-code", text: "AADSTS code" }), el("input", { id: "f-code", name: "code", value: q.get("code") || "", inputmode: "numeric" })),
    el("div", {}, el("label", { for: "f-issuer", text: "Issuer contains" }), el("input", { id: "f-issuer", name: "issuer", value: q.get("issuer") || "" })),
    el("div", {}, el("label", { for: "f-since", text: "Since" }), el("select", { id: "f-since", name: "since" },
      ["", "15m", "1h", "6h", "24h"].map((s) => el("option", { value: s, selected: q.get("since") === s, text: s || "any time" })))),
    el("div", {}, el("button", { type: "submit" }, "Filter")),
    el("div", { class: "live" }, el("input", { type: "checkbox", id: "live", checked: q.get("live") !== "0", onchange: (e) => { const p = new URLSearchParams(q); p.set("live", e.target.checked ? "1" : "0"); location.hash = "#/exchanges?" + p; } }), el("label", { for: "live", text: "live (every 5 s)" })));
  const sq = new URLSearchParams();
  for (const k of ["result", "clientId"]) if (q.get(k)) sq.set(k, q.get(k));
  if (q.get("since")) { const m = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 }[q.get("since")]; if (m) sq.set("since", new Date(Date.now() - m * 1000).toISOString()); }
  sq.set("$top", "200");
  const { data } = await api("GET", tp() + "/auditLogs?" + sq);
  let recs = data.value || [];
  if (q.get("code")) recs = recs.filter((r) => String(r.errorCode) === q.get("code"));
  if (q.get("issuer")) recs = recs.filter((r) => (r.issuer || "").includes(q.get("issuer")));
  const detail = el("div", { id: "explanation" });
  const open = (r) => { state.open = r.correlationId; explain(r, detail); };
  const rows = recs.map((r) => el("tr", { class: "row", tabindex: 0, "data-correlation": r.correlationId,
    onclick: () => open(r), onkeydown: (ev) => { if (ev.key === "Enter") open(r); } },
    el("td", { text: when(r.time) }), el("td", {}, el("span", { class: "pill " + (r.result === "success" ? "good" : "bad"), text: r.result + (r.count > 1 ? " ×" + r.count : "") })),
    el("td", { text: r.errorCode ? "AADSTS" + r.errorCode : "" }), el("td", { class: "mono", text: r.clientId || "" }),
    el("td", { text: r.credentialName || "" }), el("td", { class: "mono", text: r.subject || "" }), el("td", { text: r.reason || "" })));
  show(el("h1", { text: "Exchanges" }), perMinute(recs), filters, detail,
    el("table", { id: "audit" }, el("thead", {}, el("tr", {}, ["Time", "Result", "Code", "Client", "Credential", "Subject", "Why"].map((h) => el("th", { text: h })))), el("tbody", {}, rows)),
    recs.length ? null : el("p", { class: "muted", text: "No exchanges match." }));
  // A live refresh keeps the explanation that is open.
  const opened = recs.find((r) => r.correlationId && r.correlationId === state.open);
  if (opened) explain(opened, detail, true);
  if (q.get("live") !== "0") state.timer = setTimeout(() => { if (location.hash.startsWith("#/exchanges")) route(true); }, 5000);
}

// perMinute is a bar per minute of the last hour, successes over failures.
function perMinute(recs) {
  const now = Date.now(), bins = new Array(60).fill(0).map(() => ({ s: 0, f: 0 }));
  for (const r of recs) {
    const i = 59 - Math.floor((now - new Date(r.time)) / 60000);
    if (i >= 0 && i < 60) bins[i][r.result === "success" ? "s" : "f"] += Math.max(r.count || 1, 1);
  }
  const max = Math.max(1, ...bins.map((b) => b.s + b.f));
  return el("div", { class: "bar", role: "img", "aria-label": "Exchanges per minute over the last hour, successes and failures" },
    bins.map((b) => el("span", { title: b.s + " ok, " + b.f + " refused" },
      el("i", { class: "s", style: "height:" + (b.s * 80 / max) + "px" }), el("i", { class: "f", style: "height:" + (b.f * 80 / max) + "px" }))));
}

function explain(r, into, quiet) {
  const d = r.diagnosis || {};
  const kids = [el("h2", {}, "Exchange ", el("span", { class: "mono", text: r.correlationId }), copyButton(r.correlationId, "correlation id")),
    el("p", { class: r.result === "success" ? "good" : "bad", id: "explanation-reason", text: r.reason || r.error || "succeeded" })];
  if (d.check) kids.push(el("p", {}, "Failed check: ", el("strong", { text: d.check })));
  if (d.assertion) kids.push(el("div", { class: "grid" }, ["iss", "sub", "aud", "kid"].flatMap((k) => [el("span", { class: "muted", text: k }), el("span", { class: "mono", text: [].concat(d.assertion[k] || "").join(" ") })])));
  if (d.credentials && d.credentials.length) {
    kids.push(el("table", { id: "credential-checks" }, el("thead", {}, el("tr", {}, ["Credential", "Issuer", "Audience", "Subject"].map((h) => el("th", { text: h })))),
      el("tbody", {}, d.credentials.map((c) => el("tr", {}, el("td", { text: c.name }),
        el("td", { class: c.issuerResult === "match" ? "good" : "bad", text: c.issuerResult }),
        el("td", { class: c.audienceResult === "match" ? "good" : "bad", text: c.audienceResult }),
        el("td", { class: c.subjectResult === "match" ? "good" : "bad", text: c.subjectResult }))))));
  }
  if (d.key) kids.push(el("p", {}, "Key: ", el("span", { text: d.key.result + (d.key.trustedIssuer ? " (trusted issuer " + d.key.trustedIssuer + ")" : "") })));
  if (d.time) kids.push(el("p", {}, "Time: ", el("span", { text: d.time.result })));
  if (d.detail) kids.push(el("pre", { text: d.detail }));
  into.replaceChildren(el("div", { class: "card" }, kids));
  if (!quiet) into.scrollIntoView({ block: "nearest" });
}

function b64json(part) {
  const s = part.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "===".slice((s.length + 3) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

async function viewInspect() {
  const ta = el("textarea", { id: "token", "aria-label": "Token", placeholder: "Paste a platform token (a service-account token, a CI job token) or an access token", spellcheck: "false" });
  const out = el("div", { id: "inspection", "aria-live": "polite" });
  const idSel = el("select", { id: "dry-identity", "aria-label": "Identity to try the token for" });
  const ids = await list(tp() + "/subscriptions/" + DEFAULT_SUB + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities").catch(() => []);
  for (const m of ids) idSel.append(el("option", { value: m.resourceGroup + "/" + m.name, text: m.resourceGroup + "/" + m.name }));
  const decode = () => {
    out.replaceChildren();
    const raw = ta.value.trim();
    if (!raw) return;
    const parts = raw.split(".");
    if (parts.length !== 3) { out.append(el("p", { class: "bad", text: "Not a JWT: it has " + parts.length + " part(s), a JWT has three separated by '.'." })); return; }
    let hdr, claims;
    try { hdr = b64json(parts[0]); claims = b64json(parts[1]); } catch (e) { out.append(el("p", { class: "bad", text: "Not a JWT: " + e.message })); return; }
    const timeClaims = ["iat", "nbf", "exp", "auth_time"];
    out.append(el("h2", { text: "Header" }), el("div", { class: "grid", id: "token-header" }, Object.entries(hdr).flatMap(([k, v]) => [el("span", { class: "muted", text: k }), el("span", { class: "mono", text: typeof v === "object" ? JSON.stringify(v) : String(v) })])),
      el("h2", { text: "Claims" }), el("div", { class: "grid", id: "token-claims" }, Object.entries(claims).flatMap(([k, v]) => [el("span", { class: "muted", text: k }),
        el("span", { class: "mono", text: timeClaims.includes(k) && typeof v === "number" ? v + " — " + when(v * 1000) : typeof v === "object" ? JSON.stringify(v) : String(v) })])));
    if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) out.append(el("p", { class: "bad", id: "expired", text: "This token has expired." }));
  };
  ta.addEventListener("input", decode);
  const dry = el("div", { id: "dry-run" });
  const tryBtn = el("button", { type: "button", id: "try", onclick: async () => {
    dry.replaceChildren();
    const [rg, name] = idSel.value.split("/");
    try {
      const { data } = await api("POST", idPath(rg, name) + "/testFederatedCredentials", { assertion: ta.value.trim() });
      dry.append(el("p", { class: data.result === "pass" ? "good" : "bad", id: "dry-result",
        text: data.result === "pass" ? "Would be accepted: credential " + data.credential + " matches, the signature verifies with the issuer's published key." : "Would be refused: AADSTS" + data.code + " — " + (data.diagnosis.reason || data.error) }));
      if (data.diagnosis && data.diagnosis.key) dry.append(el("p", { text: "Signature: " + data.diagnosis.key.result }));
    } catch (e) { dry.append(failure(e)); }
  } }, "Dry-run an exchange");
  show(el("h1", { text: "Token inspector" }), el("p", { class: "muted", text: "Decoded here, in the page; a dry run asks the token service to run every check (signature against the issuer's published keys included) without issuing a token." }),
    ta, out, el("div", { class: "card" }, el("label", { for: "dry-identity", text: "Would this platform token be accepted for…" }), idSel, el("p", {}, tryBtn), dry));
}

async function viewHealth() {
  const out = [el("h1", { text: "Health" })];
  const push = (...n) => out.push(...n.filter((x) => x));
  try {
    const keys = await list("/signingKeys");
    out.push(el("h2", { text: "Signing keys" }), el("table", { id: "signing-keys" }, el("thead", {}, el("tr", {}, ["Kid", "State", "Signs from", "Signs until", "Published until"].map((h) => el("th", { text: h })))),
      el("tbody", {}, keys.map((k) => el("tr", {}, el("td", { class: "mono", text: k.kid }), el("td", { text: k.state }), el("td", { text: when(k.signsFrom) }), el("td", { text: when(k.signsUntil) }), el("td", { text: when(k.publishedUntil) }))))));
  } catch (e) { out.push(el("h2", { text: "Signing keys" }), el("p", { class: "muted", text: e.status === 403 ? "Only the operator tenant's directory admins see the signing keys." : e.message })); }
  try {
    const { data } = await api("GET", tp() + "/staleCredentials");
    push(el("h2", { text: "Issuers failing for a day or more" }), (data.issuers || []).length ? null : el("p", { class: "good", text: "None: every issuer a credential trusts answered its last fetch (or needs none)." }), el("table", { id: "issuers" }, el("thead", {}, el("tr", {}, ["Issuer", "Last success", "Failing since", "Last error"].map((h) => el("th", { text: h })))),
      el("tbody", {}, (data.issuers || []).map((i) => el("tr", {}, el("td", { class: "mono", text: i.issuer }), el("td", { text: when(i.lastSuccess) }),
        el("td", { class: i.failingSince ? "bad" : "", text: when(i.failingSince) }), el("td", { text: i.lastError || "" }))))),
      el("h2", { text: "Unused credentials" }), el("p", { class: "muted", text: (data.credentials || []).length + " credentials matched no exchange in " + (data.days || 30) + " days (wif audit stale lists them)." }));
  } catch (e) { out.push(failure(e)); }
  try {
    const r = await fetch("/status", { headers: { "X-Wif-Console-Token": state.token } });
    const st = await r.json();
    out.push(el("h2", { text: "Token service" }), el("p", { class: st.ready ? "good" : "bad", id: "readiness", text: (st.ready ? "Ready: " : "Not ready: ") + st.detail }));
  } catch (e) { out.push(failure(e)); }
  show(...out);
}

// ---- routing

async function route(quiet) {
  clearTimeout(state.timer);
  const [path, query] = (location.hash.slice(1) || "/directory").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) a.removeAttribute("aria-current");
  const nav = document.getElementById("nav-" + (parts[0] === "identity" || parts[0] === "app" ? "directory" : parts[0]));
  if (nav) nav.setAttribute("aria-current", "page");
  document.title = "wif console — " + (parts[0] || "directory");
  try {
    switch (parts[0]) {
      case "identity": await viewIdentity(parts[1], parts[2]); break;
      case "app": await viewApp(parts[1]); break;
      case "exchanges": await viewExchanges(query || ""); break;
      case "inspect": await viewInspect(); break;
      case "health": await viewHealth(); break;
      default: await viewDirectory();
    }
    if (!quiet) main().focus();
  } catch (e) { show(failure(e)); }
}

async function start() {
  const m = location.hash.match(/token=([A-Za-z0-9_-]+)/);
  if (m) { sessionStorage.setItem("wif-console-token", m[1]); history.replaceState(null, "", "#/directory"); }
  state.token = sessionStorage.getItem("wif-console-token") || "";
  try {
    state.session = (await api("GET", "/session")).data;
  } catch (e) {
    show(el("h1", { text: "Not connected" }), el("p", { class: "bad", role: "alert", text: e.message }));
    return;
  }
  state.tenant = sessionStorage.getItem("wif-console-tenant") || state.session.tenantId;
  try {
    const tenants = await list("/tenants");
    if (tenants.length > 1) {
      const sel = el("select", { id: "tenant", "aria-label": "Tenant", onchange: (e) => { state.tenant = e.target.value; sessionStorage.setItem("wif-console-tenant", state.tenant); location.hash = "#/directory"; route(); } },
        tenants.map((t) => el("option", { value: t.id, selected: t.id === state.tenant, text: t.displayName + " (" + t.id + ")" })));
      document.querySelector("header nav").after(sel);
    }
  } catch (e) { /* a tenant's own admin cannot list tenants: stay in its tenant */ }
  document.getElementById("who").textContent = (state.session.unrestricted ? "wif dev (loopback)" : state.session.clientId + " · " + (state.session.roles.join(", ") || "no role")) + (state.session.canWrite ? "" : " · read-only");
  window.addEventListener("hashchange", () => route());
  route();
}
start();
