import { $, TOKEN_KEY, api, el, errorText, fetchToken, rupees, say, signedIn } from "/static/app.js";

const message = $("message");
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "never");

async function load() {
  const me = await signedIn();
  if (!me) { location.assign("/login"); return; }
  $("who").textContent = `${me.email}${me.verified ? "" : " (email not verified yet)"}`;
  const finder = me.entitlements.find((e) => e.solution_id === "aws-solution-finder");
  $("tier").textContent = finder ? finder.access_tier : "none yet";
  $("usage").textContent = !finder ? "" : finder.quota.unlimited ? `${finder.quota.daily_used} searches today, unlimited`
    : `${finder.quota.daily_used} of ${finder.quota.daily_limit} searches used today`;
  $("upgrade").hidden = !!finder && finder.access_tier === "pro";

  const tokens = await api("GET", "/api/tokens");
  $("tokens").replaceChildren(...(tokens.data || []).map((t) => {
    const row = el("tr");
    row.append(el("td", `${t.token_prefix}…`, { "data-label": "Token" }), el("td", t.status, { "data-label": "Status" }),
      el("td", when(t.created_at_ms), { "data-label": "Created" }), el("td", when(t.last_used_at), { "data-label": "Last used" }));
    const actions = el("td");
    if (t.status === "active") {
      const rotate = el("button", "Rotate", { type: "button", class: "secondary", "data-rotate": t.token_id });
      const revoke = el("button", "Revoke", { type: "button", class: "secondary", "data-revoke": t.token_id });
      rotate.addEventListener("click", async () => {
        const r = await api("POST", `/api/tokens/${t.token_id}/rotate`);
        if (r.ok) { localStorage.setItem(TOKEN_KEY, r.data.token); say(message, `New token ${r.data.token_prefix}… is now used by the search page.`); }
        else say(message, errorText(r));
        load();
      });
      revoke.addEventListener("click", async () => {
        const r = await api("POST", `/api/tokens/${t.token_id}/revoke`);
        say(message, r.ok ? `Token ${t.token_prefix}… revoked.` : errorText(r));
        load();
      });
      actions.append(rotate, " ", revoke);
    }
    row.append(actions);
    return row;
  }));

  const payments = await api("GET", "/api/payments");
  $("payments").replaceChildren(...(payments.data || []).map((p) => {
    const row = el("tr");
    const state = p.refund_state === "COMPLETED" ? "REFUNDED" : p.state;
    row.append(el("td", p.merchant_order_id, { "data-label": "Order" }), el("td", rupees(p.amount_paise), { "data-label": "Amount" }),
      el("td", state, { "data-label": "State" }), el("td", when(p.created_at_ms), { "data-label": "Date" }),
      el("td", p.pro_until ? new Date(p.pro_until * 1000).toLocaleDateString() : "", { "data-label": "Pro until" }));
    const invoice = el("td", "", { "data-label": "Invoice" });
    if (p.invoice_no) invoice.append(el("a", p.invoice_no, { href: `/api/payments/${encodeURIComponent(p.merchant_order_id)}/invoice.pdf` }));
    row.append(invoice);
    return row;
  }));
}

$("new-token").addEventListener("click", async () => {
  const r = await fetchToken();
  say(message, r.ok ? `New token ${r.data.token_prefix}… saved for the search page.` : errorText(r));
  load();
});
$("logout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout");
  localStorage.removeItem(TOKEN_KEY);
  location.assign("/search");
});
load();
