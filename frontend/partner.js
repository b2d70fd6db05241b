// The seller side: an approved partner lists solutions (live after an admin's approval), edits their
// name, description, limits and price, and retires them.
import { $, api, el, errorText, rupees, say, toLogin, whoAmI } from "/static/app.js";

const message = $("message");
const STATUS = { pending: "waiting for approval", active: "live", retired: "retired" };
let editing = null;

function form() {
  return {
    name: $("f-name").value.trim(), description: $("f-description").value.trim(),
    anonymous_limit: Number($("f-anonymous").value), registered_daily_limit: Number($("f-registered").value),
    price_paise: Math.round(Number($("f-price").value) * 100),
  };
}

function problem(data) {
  if (!editing && !/^[a-z0-9][a-z0-9-]{0,63}$/.test($("f-id").value.trim())) return ["The id uses lower-case letters, digits and dashes.", "f-id"];
  if (!data.name) return ["Give the solution a name.", "f-name"];
  if (!data.description) return ["Describe what the solution does.", "f-description"];
  if (!Number.isInteger(data.anonymous_limit) || data.anonymous_limit < 0 || data.anonymous_limit > 1000) return ["Free searches: a whole number from 0 to 1000.", "f-anonymous"];
  if (!Number.isInteger(data.registered_daily_limit) || data.registered_daily_limit < 0 || data.registered_daily_limit > 100000) return ["Registered searches a day: a whole number from 0 to 100000.", "f-registered"];
  if (!(data.price_paise >= 100 && data.price_paise <= 100000000)) return ["The price is between ₹1 and ₹10,00,000.", "f-price"];
  return null;
}

function edit(s) {
  editing = s.solution_id;
  $("form-h").textContent = `Edit ${s.name}`;
  $("f-id").value = s.solution_id; $("f-id").disabled = true;
  $("f-name").value = s.name; $("f-description").value = s.description;
  $("f-anonymous").value = s.anonymous_limit; $("f-registered").value = s.registered_daily_limit;
  $("f-price").value = (s.price_paise / 100).toFixed(2);
  $("f-submit").textContent = "Save changes"; $("f-cancel").hidden = false; $("form-hint").hidden = true;
  $("f-name").focus();
}

function reset() {
  editing = null;
  $("listing-form").reset(); $("f-id").disabled = false;
  $("form-h").textContent = "Add a solution"; $("f-submit").textContent = "Submit for approval";
  $("f-cancel").hidden = true; $("form-hint").hidden = false;
}

function row(s) {
  const tr = el("tr", null, { "data-solution": s.solution_id, "data-status": s.status });
  tr.append(el("td", `${s.name} (${s.solution_id})`, { "data-label": "Solution" }), el("td", STATUS[s.status] || s.status, { "data-label": "Status" }),
    el("td", `${s.anonymous_limit} free, ${s.registered_daily_limit} a day registered`, { "data-label": "Limits" }),
    el("td", rupees(s.price_paise), { "data-label": "Price" }));
  const actions = el("td", "", { "data-label": "Actions" });
  if (s.status !== "retired") {
    const editBtn = el("button", "Edit", { type: "button", class: "secondary", "data-edit": s.solution_id });
    const retire = el("button", "Retire", { type: "button", class: "danger", "data-retire": s.solution_id });
    editBtn.addEventListener("click", () => edit(s));
    retire.addEventListener("click", async () => {
      if (!confirm(`Retire ${s.name}? It leaves the marketplace and its tokens stop working.`)) return;
      const r = await api("POST", `/api/partners/solutions/${encodeURIComponent(s.solution_id)}/retire`);
      say(message, r.ok ? `${s.name} is retired.` : errorText(r), r.ok ? "ok" : "notice");
      load();
    });
    actions.append(editBtn, " ", retire);
  }
  tr.append(actions);
  return tr;
}

async function load() {
  const r = await api("GET", "/api/partners/solutions");
  const list = r.ok ? r.data : [];
  $("no-listings").hidden = list.length > 0;
  $("listings").replaceChildren(...list.map(row));
  const apps = await api("GET", "/api/partners/applications");
  $("applications").replaceChildren(...(apps.ok ? apps.data : []).map((a) => el("li", `${a.company}: ${a.status}`)));
}

$("listing-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = form(), bad = problem(data);
  if (bad) { say(message, bad[0]); $(bad[1]).focus(); return; }
  const r = editing ? await api("PUT", `/api/partners/solutions/${encodeURIComponent(editing)}`, data)
    : await api("POST", "/api/partners/solutions", { solution_id: $("f-id").value.trim(), ...data });
  if (!r.ok) { say(message, errorText(r)); return; }
  say(message, editing ? `${r.data.name} is saved.` : `${r.data.name} is submitted; it goes live when an admin approves it.`, "ok");
  reset();
  load();
});
$("f-cancel").addEventListener("click", reset);

const { user, error } = await whoAmI();
if (!user && !error) toLogin("partner");
else if (user && user.role !== "partner" && user.role !== "admin") $("not-partner").hidden = false;
else { $("partner-body").hidden = false; load(); }
