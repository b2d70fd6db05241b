// What every page shares: JSON calls with the CSRF header, who is signed in, the nav, messages in words,
// and where to go after signing in. Every page's script imports this module; the shell loads it once.
export const $ = (id) => document.getElementById(id);
export const HANDOFF_KEY = "sf_token"; // a token handed over in a #token= fragment, used only when signed out
const AFTER_KEY = "sf_after";
export const FINDER = "aws-solution-finder";

function cookie(name) {
  const match = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
}

export async function csrf() {
  if (!cookie("csrftoken")) await fetch("/api/auth/csrf", { credentials: "same-origin" });
  return cookie("csrftoken");
}

export async function api(method, path, body) {
  const headers = { "X-CSRFToken": await csrf() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return { ok: false, status: 0, headers: new Headers(), data: { error: "You appear to be offline. Check your connection and try again." } };
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, headers: response.headers, data };
}

export function say(node, text, kind = "notice") {
  node.className = kind === "notice" ? "notice" : `notice ${kind}`;
  node.textContent = text;
  node.hidden = !text;
}

export function errorText(result) {
  if (result.status === 0) return result.data.error;
  if (result.status >= 500) return "The service is having trouble right now. Please try again in a moment.";
  return result.data.error || "That did not work. Please try again.";
}

export function rupees(paise) {
  return "₹" + (paise / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export const when = (ms) => (ms ? new Date(ms).toLocaleString() : "never");
export const day = (epochS) => new Date(epochS * 1000).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.ceil((s % 3600) / 60);
  if (h && m === 60) return `${h + 1} h`;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  return m ? `${m} min` : "a moment";
}

let account = null;
// Who is signed in: {user} when signed in, {user: null} when the API says 401, {error} for anything else.
// Only 401 means signed out; a 429 or a 5xx must never send anyone to the login page.
export function whoAmI() {
  account ??= api("GET", "/api/me").then((r) => (r.ok ? { user: r.data } : r.status === 401 ? { user: null } : { error: r }));
  return account;
}

export function finderEntitlement(user, solutionId = FINDER) {
  return (user?.entitlements || []).find((e) => e.solution_id === solutionId) || null;
}

export function remaining(quota) {
  if (!quota || quota.unlimited || quota.daily_limit < 0) return -1;
  return quota.remaining ?? Math.max(0, quota.daily_limit - quota.daily_used);
}

export function toLogin(why) {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}${why ? `&why=${encodeURIComponent(why)}` : ""}`);
}

let config = null;
export function siteConfig() {
  config ??= fetch("/api/config").then((r) => (r.ok ? r.json() : { finder_origins: [], states: {} }))
    .catch(() => ({ finder_origins: [], states: {} }));
  return config;
}

// Where to go after signing in, carried from /login or /register through /verify in this tab only.
export function rememberDestination() {
  const p = new URLSearchParams(location.search);
  const after = { solution_id: p.get("solution_id") || FINDER, return_to: p.get("return_to") || "", next: p.get("next") || "" };
  if (after.return_to || after.next || !sessionStorage.getItem(AFTER_KEY)) sessionStorage.setItem(AFTER_KEY, JSON.stringify(after));
  return after;
}

function sameOriginPath(next) {
  return /^\/(?![/\\])/.test(next) ? next : "";
}

// After a verified sign-in: back to the finder that sent us (token in the fragment), or to the page that
// asked for the sign-in, or to search.
export async function goOn(fallback = "/search") {
  const after = JSON.parse(sessionStorage.getItem(AFTER_KEY) || "{}");
  sessionStorage.removeItem(AFTER_KEY);
  if (after.return_to) {
    // The server checks the origin against FINDER_ORIGINS and puts the new token in the fragment.
    const made = await api("POST", "/api/finder-handoff", { solution_id: after.solution_id || FINDER, return_to: after.return_to });
    if (made.ok) { location.assign(made.data.redirect_url); return; }
  }
  location.assign(sameOriginPath(after.next || "") || fallback);
}

export function passwordHint(input, hint) {
  const update = () => {
    const n = input.value.length;
    const good = n >= 10;
    hint.textContent = n === 0 ? "At least 10 characters. A few unrelated words work well."
      : good ? (n >= 16 ? "Strong length." : "Long enough. Longer is stronger.")
      : `${10 - n} more character${10 - n === 1 ? "" : "s"} needed.`;
    hint.className = good ? "hint good" : "hint";
  };
  input.addEventListener("input", update);
  update();
}

async function initNav() {
  const page = document.body.dataset.page;
  for (const a of document.querySelectorAll("nav [data-nav]")) if (a.dataset.nav === page) a.setAttribute("aria-current", "page");
  const { user, error } = await whoAmI();
  const signedIn = !!user || !!error; // an error is not "signed out": keep the account links
  $("nav-account").hidden = !signedIn;
  $("nav-logout").hidden = !signedIn;
  $("nav-login").hidden = signedIn;
  $("nav-partners").hidden = !(user && (user.role === "partner" || user.role === "admin"));
  $("nav-admin").hidden = !(user && user.role === "admin");
}

// Module scripts run after the document is parsed, so the shell's nav is there.
$("nav-logout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout");
  localStorage.removeItem(HANDOFF_KEY);
  location.assign("/");
});
initNav();
