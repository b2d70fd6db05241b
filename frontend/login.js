// Log in; an unverified account goes to the code step, everyone else back to where they were going.
import { $, api, errorText, goOn, rememberDestination, say } from "/static/app.js";

const REASONS = {
  upgrade: "Log in or create a free account to upgrade to Pro. You will come straight back.",
  reset: "Your password is changed. Log in with the new one.",
  account: "Log in to see your account.",
  partner: "Log in to apply or to manage your listings.",
  admin: "Log in with an admin account.",
  verified: "Your address is verified. Log in to start searching.",
};
const params = new URLSearchParams(location.search);
rememberDestination();
$("register-link").href = `/register?solution_id=aws-solution-finder${params.get("next") ? `&next=${encodeURIComponent(params.get("next"))}` : ""}`;
const why = REASONS[params.get("why") || ""] || (params.get("next") ? "Log in to continue." : "");
if (why) say($("why"), why, params.get("why") === "reset" || params.get("why") === "verified" ? "ok" : "notice");

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  $("login-submit").disabled = true;
  const result = await api("POST", "/api/auth/login", { email, password: $("password").value });
  $("login-submit").disabled = false;
  if (!result.ok) {
    say($("message"), result.status === 429 ? "Too many attempts. Wait a few minutes and try again."
      : result.status === 401 ? "That email and password do not match. Check them, or reset your password." : errorText(result));
    $("password").select();
    return;
  }
  if (result.data.verified === false) {
    sessionStorage.setItem("sf_verify_email", email);
    location.assign("/verify");
    return;
  }
  goOn();
});
