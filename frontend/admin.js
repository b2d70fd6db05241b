import { $, api, el, errorText, rupees, say } from "/static/app.js";

const message = $("message");

async function load() {
  const apps = await api("GET", "/api/admin/partner-applications?status=pending");
  if (apps.status === 401) { location.assign("/login"); return; }
  if (!apps.ok) { say(message, errorText(apps)); return; }
  $("applications").replaceChildren(...apps.data.map((a) => {
    const row = el("tr");
    row.append(el("td", a.company), el("td", a.website), el("td", a.description), el("td", a.email));
    const actions = el("td");
    const approve = el("button", "Approve", { type: "button", "data-approve": a.application_id });
    const reject = el("button", "Reject", { type: "button", class: "secondary", "data-reject": a.application_id });
    approve.addEventListener("click", async () => {
      const r = await api("POST", `/api/admin/partner-applications/${a.application_id}/approve`);
      say(message, r.ok ? `${a.company} approved.` : errorText(r));
      load();
    });
    reject.addEventListener("click", async () => {
      const reason = prompt("Why is it rejected? The applicant sees this.");
      if (!reason) return;
      const r = await api("POST", `/api/admin/partner-applications/${a.application_id}/reject`, { reason });
      say(message, r.ok ? `${a.company} rejected.` : errorText(r));
      load();
    });
    actions.append(approve, " ", reject);
    row.append(actions);
    return row;
  }));
  const solutions = await (await fetch("/api/solutions")).json();
  $("solutions").replaceChildren(...solutions.map((s) => {
    const row = el("tr");
    row.append(el("td", s.solution_id), el("td", s.name), el("td", rupees(s.price_paise)));
    const cell = el("td");
    if (s.solution_id !== "aws-solution-finder") {
      const retire = el("button", "Retire", { type: "button", class: "secondary" });
      retire.addEventListener("click", async () => {
        const r = await api("POST", `/api/admin/solutions/${encodeURIComponent(s.solution_id)}/retire`);
        say(message, r.ok ? `${s.name} retired.` : errorText(r));
        load();
      });
      cell.append(retire);
    }
    row.append(cell);
    return row;
  }));
}
load();
