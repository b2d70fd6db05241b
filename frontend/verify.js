// The code step for new accounts and for unverified sign-ins: enter the code, or send a new one.
import { $, api, errorText, goOn, say, whoAmI } from "/static/app.js";

const message = $("message");
let verifying = false; // a code was sent: the page's own account lookup no longer decides where to go
$("verify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("code").value.trim();
  if (!/^\d{6}$/.test(code)) { say(message, "The code is the 6 digits in the email we sent."); $("code").focus(); return; }
  verifying = true;
  const result = await api("POST", "/api/auth/verify", { email: $("email").value.trim(), code });
  if (!result.ok) { verifying = false; say(message, errorText(result), "bad"); $("code").select(); return; }
  sessionStorage.removeItem("sf_verify_email");
  const after = await api("GET", "/api/me");
  if (after.status === 401) { location.assign("/login?why=verified"); return; }
  sessionStorage.setItem("sf_welcome", "1");
  goOn("/search");
});

$("resend").addEventListener("click", async () => {
  const result = await api("POST", "/api/auth/resend-code", { email: $("email").value.trim() });
  say(message, result.ok ? `A new code is on its way to ${$("email").value.trim()}.` : errorText(result), result.ok ? "ok" : "notice");
});

function address(known) {
  $("email").value = known;
  $("sent-to").textContent = known || "your address";
  $("email-label").hidden = !!known;
}
// The address this browser just registered is known at once: a code typed (or pasted) before the
// account lookup below answers is sent with it, instead of the form refusing an empty, hidden email.
const registered = sessionStorage.getItem("sf_verify_email") || "";
address(registered);
(registered ? $("code") : $("email")).focus();
const { user } = await whoAmI();
if (user && user.verified && !verifying) goOn("/account"); // nothing to verify: carry on
const known = (user && user.email) || registered;
if (known !== registered) {
  address(known);
  if (document.activeElement === $("email") && known) $("code").focus();
}
