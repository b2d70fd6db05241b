import { $, api, errorText, rupees, say } from "/static/app.js";

const solutionId = new URLSearchParams(location.search).get("solution_id") || "aws-solution-finder";
fetch(`/api/solutions/${encodeURIComponent(solutionId)}`).then((r) => r.json()).then((s) => {
  if (s.price_paise) $("price").textContent = rupees(s.price_paise);
});

$("buy").addEventListener("click", async () => {
  // Only the plan is sent: the price comes from the solution record on the server.
  const result = await api("POST", "/api/payments/checkout", { plan: "pro", solution_id: solutionId });
  if (result.ok) { location.assign(result.data.redirect_url); return; }
  if (result.status === 401) { location.assign("/login"); return; }
  say($("message"), result.data.reason === "email_unverified" ? "Verify your email address first (see your inbox)." : errorText(result));
});
