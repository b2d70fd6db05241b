// Apply to become a partner and follow the application; an approved partner is sent on to their listings.
import { $, api, el, errorText, say, toLogin, whoAmI } from "/static/app.js";

const STATUS = { pending: "under review", approved: "approved", rejected: "not approved" };

async function mine() {
  const result = await api("GET", "/api/partners/applications");
  const list = result.ok ? result.data : [];
  $("none").hidden = list.length > 0;
  $("mine").replaceChildren(...list.map((a) =>
    el("li", `${a.company}: ${STATUS[a.status] || a.status}${a.reason ? ` (${a.reason})` : ""}`, { "data-status": a.status })));
  if (list.some((a) => a.status === "pending")) $("apply-form").hidden = true;
}

// Listen before asking who is signed in, so an early click never falls through to a native submit.
$("apply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await api("POST", "/api/partners/applications", {
    company: $("company").value.trim(), website: $("website").value.trim(), description: $("description").value.trim() });
  say($("message"), result.ok ? "Thank you: your application is under review. We email you the decision." : errorText(result), result.ok ? "ok" : "notice");
  mine();
});

const { user, error } = await whoAmI();
if (!user && !error) {
  toLogin("partner");
} else {
  const partner = user && (user.role === "partner" || user.role === "admin");
  $("approved").hidden = !partner;
  $("apply-form").hidden = !!partner;
  mine();
}
