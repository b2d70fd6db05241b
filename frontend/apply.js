import { $, api, el, errorText, say, signedIn } from "/static/app.js";

async function mine() {
  const result = await api("GET", "/api/partners/applications");
  $("mine").replaceChildren(...(result.data || []).map((a) =>
    el("li", `${a.company}: ${a.status}${a.reason ? ` (${a.reason})` : ""}`, { "data-status": a.status })));
}

if (!(await signedIn())) location.assign("/login");
$("apply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await api("POST", "/api/partners/applications", {
    company: $("company").value.trim(), website: $("website").value.trim(), description: $("description").value.trim() });
  say($("message"), result.ok ? "Thank you: your application is under review." : errorText(result));
  mine();
});
mine();
