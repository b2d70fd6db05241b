// Pricing knows who you are: anonymous visitors are asked to sign in and come back, Pro users see their
// pass and confirm before buying more time, buyers give billing details for the GST invoice.
import { $, FINDER, api, day, errorText, finderEntitlement, rupees, say, siteConfig, toLogin, whoAmI } from "/static/app.js";

const solutionId = new URLSearchParams(location.search).get("solution_id") || FINDER;
const message = $("message");
const GSTIN = /^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$/;
const CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
let me = null, isPro = false, proUntil = 0, price = 0;
let ready = Promise.resolve();

// The public mod-36 check character of a GSTIN, as the server checks it.
export function gstinValid(gstin) {
  if (!GSTIN.test(gstin)) return false;
  let total = 0;
  for (let i = 0; i < 14; i++) {
    const v = CHARS.indexOf(gstin[i]) * (i % 2 ? 2 : 1);
    total += Math.floor(v / 36) + (v % 36);
  }
  return CHARS[(36 - (total % 36)) % 36] === gstin[14];
}

async function loadSolution() {
  const r = await api("GET", `/api/solutions/${encodeURIComponent(solutionId)}`);
  if (!r.ok) { say(message, "That solution is not for sale."); $("buy").disabled = true; return; }
  price = r.data.price_paise;
  $("price").textContent = rupees(price);
  $("anonymous-limit").textContent = r.data.anonymous_limit;
  $("registered-limit").textContent = r.data.registered_daily_limit;
}

async function loadStates() {
  const { states } = await siteConfig();
  const select = $("bill-state");
  select.replaceChildren(new Option("Choose your state", ""), ...Object.entries(states).map(([code, name]) => new Option(`${name} (${code})`, code)));
}

function billingProblem() {
  const gstin = $("bill-gstin").value.trim().toUpperCase(), state = $("bill-state").value;
  if (!state) return ["Choose the state for the invoice.", "bill-state"];
  if (!/^[A-Za-z0-9 -]{0,12}$/.test($("bill-postal").value.trim())) return ["The PIN code has letters, digits, spaces or dashes only.", "bill-postal"];
  if (gstin && !gstinValid(gstin)) return ["That GSTIN is not valid: check each character.", "bill-gstin"];
  if (gstin && gstin.slice(0, 2) !== state) return ["The GSTIN's first two digits must be the billing state's code.", "bill-gstin"];
  return null;
}

$("buy").addEventListener("click", async () => {
  await ready; // a click before the account has loaded waits for it instead of sending a signed-in buyer to log in
  if (!me) { toLogin("upgrade"); return; }
  if (!me.verified) { say(message, "Verify your email address first.", "notice"); message.append(" ", Object.assign(document.createElement("a"), { href: "/verify", textContent: "Enter your code" })); return; }
  const until = proUntil ? ` until ${day(proUntil)}` : "";
  if (isPro && !confirm(`You are already Pro${until}. Buy another 30 days for ${rupees(price)}? They start when the current pass ends.`)) return;
  $("billing-form").hidden = false;
  $("bill-name").focus();
});
$("cancel-billing").addEventListener("click", () => { $("billing-form").hidden = true; $("buy").focus(); });

$("billing-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = billingProblem();
  if (problem) { say(message, problem[0]); $(problem[1]).focus(); return; }
  const billing = { country: "IN", state_code: $("bill-state").value, address: $("bill-address").value.trim(),
    postal_code: $("bill-postal").value.trim(), company_name: $("bill-name").value.trim(), gstin: $("bill-gstin").value.trim().toUpperCase() };
  $("pay").disabled = true;
  // Only the plan is sent: the price comes from the solution record on the server.
  const result = await api("POST", "/api/payments/checkout", { plan: "pro", solution_id: solutionId, billing });
  $("pay").disabled = false;
  if (result.ok) { location.assign(result.data.redirect_url); return; }
  if (result.status === 401) { toLogin("upgrade"); return; }
  say(message, result.data.reason === "email_unverified" ? "Verify your email address first." : errorText(result));
});

async function start() {
  await Promise.all([loadSolution(), loadStates()]);
  const who = await whoAmI();
  me = who.user || null;
  if (who.error) me = { verified: true, entitlements: [] }; // unknown: let the server decide at checkout
  if (!me) { $("buy").textContent = "Log in to upgrade"; return; }
  $("register-cta").hidden = true;
  const finder = finderEntitlement(me, solutionId);
  isPro = !!finder && finder.access_tier === "pro";
  proUntil = isPro ? finder.pro_until || 0 : 0;
  if (isPro) {
    $("current").hidden = false;
    $("current").textContent = proUntil ? `You are Pro until ${day(proUntil)}.` : "You are on Pro.";
    $("buy").textContent = "Add 30 more days";
  }
}
ready = start();
