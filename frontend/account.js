// The account page: plan and usage, tokens for other programs (shown once, copy, confirm, hide revoked),
// payments. Only a 401 sends anyone to log in; any other failure says so here and offers a retry.
import { $, api, day, duration, el, errorText, finderEntitlement, remaining, rupees, say, toLogin, when } from "/static/app.js";

const message = $("message");
let tokens = [];

function showPlan(me) {
  $("who").textContent = me.name ? `${me.name} · ${me.email}` : me.email;
  $("unverified").hidden = me.verified;
  const finder = finderEntitlement(me);
  const tier = finder ? finder.access_tier : "registered";
  $("tier").textContent = tier;
  const left = finder ? remaining(finder.quota) : -2;
  $("usage").textContent = !finder ? "no searches yet today" : left < 0 ? `${finder.quota.daily_used} searches today, no daily limit`
    : `${finder.quota.daily_used} of ${finder.quota.daily_limit} searches used today`
      + (finder.quota.resets_in_s ? `, resets in ${duration(finder.quota.resets_in_s)}` : "");
  const proUntil = finder && finder.pro_until;
  $("pro-until").hidden = !proUntil;
  if (proUntil) $("pro-until").textContent = `Pro until ${day(proUntil)}.`;
  $("upgrade").hidden = tier === "pro";
  $("partner-link").firstElementChild.href = me.role === "partner" || me.role === "admin" ? "/partners" : "/partners/apply";
  $("partner-link").firstElementChild.textContent = me.role === "partner" || me.role === "admin" ? "Your listings in the marketplace" : "Sell your own solution in the marketplace";
  $("admin-link").hidden = me.role !== "admin";
}

function tokenActions(t) {
  const cell = el("td", "", { "data-label": "Actions" });
  if (t.status !== "active") return cell;
  const rotate = el("button", "Rotate", { type: "button", class: "secondary", "data-rotate": t.token_id });
  const revoke = el("button", "Revoke", { type: "button", class: "danger", "data-revoke": t.token_id });
  rotate.addEventListener("click", async () => {
    if (!confirm(`Replace token ${t.token_prefix}…? Programs using it stop working until you give them the new one.`)) return;
    const r = await api("POST", `/api/tokens/${t.token_id}/rotate`);
    if (r.ok) showNewToken(r.data.token); else say(message, errorText(r));
    loadTokens();
  });
  revoke.addEventListener("click", async () => {
    if (!confirm(`Revoke token ${t.token_prefix}…? Programs using it stop working at once.`)) return;
    const r = await api("POST", `/api/tokens/${t.token_id}/revoke`);
    say(message, r.ok ? `Token ${t.token_prefix}… revoked.` : errorText(r), r.ok ? "ok" : "notice");
    loadTokens();
  });
  cell.append(rotate, " ", revoke);
  return cell;
}

function renderTokens() {
  const showRevoked = $("show-revoked").checked;
  const visible = tokens.filter((t) => showRevoked || t.status === "active");
  $("revoked-count").textContent = tokens.filter((t) => t.status !== "active").length;
  $("no-tokens").hidden = visible.length > 0;
  $("tokens").replaceChildren(...visible.map((t) => {
    const row = el("tr", null, { "data-status": t.status });
    row.append(el("td", `${t.token_prefix}…`, { "data-label": "Token" }), el("td", t.status, { "data-label": "Status" }),
      el("td", when(t.created_at_ms), { "data-label": "Created" }), el("td", when(t.last_used_at), { "data-label": "Last used" }),
      tokenActions(t));
    return row;
  }));
}

async function loadTokens() {
  const r = await api("GET", "/api/tokens");
  tokens = r.ok ? r.data : [];
  renderTokens();
}

function showNewToken(token) {
  $("new-token-value").textContent = token;
  $("copy-status").textContent = "";
  $("new-token-box").hidden = false;
  $("copy-token").focus();
}

function paymentRow(p) {
  const row = el("tr");
  const state = p.refund_state === "COMPLETED" ? "REFUNDED" : p.state;
  const order = el("td", "", { "data-label": "Order" });
  order.append(el("a", p.merchant_order_id, { href: `/payments/${encodeURIComponent(p.merchant_order_id)}` }));
  row.append(order, el("td", rupees(p.amount_paise), { "data-label": "Amount" }), el("td", state, { "data-label": "State" }),
    el("td", when(p.created_at_ms), { "data-label": "Date" }), el("td", p.pro_until ? day(p.pro_until) : "", { "data-label": "Pro until" }));
  const invoice = el("td", "", { "data-label": "Invoice" });
  if (p.invoice_no) invoice.append(el("a", p.invoice_no, { href: `/api/payments/${encodeURIComponent(p.merchant_order_id)}/invoice.pdf` }));
  row.append(invoice);
  return row;
}

async function load() {
  const me = await api("GET", "/api/me");
  if (me.status === 401) { toLogin("account"); return; }
  $("load-error").hidden = me.ok;
  if (!me.ok) { $("load-error-text").textContent = `Your account could not be loaded: ${errorText(me)}`; return; }
  $("account-body").hidden = false;
  showPlan(me.data);
  await loadTokens();
  const payments = await api("GET", "/api/payments");
  const list = payments.ok ? payments.data : [];
  $("no-payments").hidden = list.length > 0;
  $("payments").replaceChildren(...list.map(paymentRow));
}

$("retry").addEventListener("click", load);
$("show-revoked").addEventListener("change", renderTokens);
$("new-token").addEventListener("click", async () => {
  const r = await api("POST", "/api/generate-solution-token", { solution_id: "aws-solution-finder" });
  if (r.ok) showNewToken(r.data.token);
  else say(message, r.data.reason === "email_unverified" ? "Verify your email address first." : errorText(r));
  loadTokens();
});
$("copy-token").addEventListener("click", async () => {
  const value = $("new-token-value").textContent;
  try {
    await navigator.clipboard.writeText(value);
    $("copy-status").textContent = "Copied.";
  } catch {
    getSelection().selectAllChildren($("new-token-value"));
    $("copy-status").textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
});
load();
