// Register, then the code step on /verify; where to go afterwards is remembered for this tab.
import { $, api, errorText, passwordHint, rememberDestination, say } from "/static/app.js";

rememberDestination();
$("login-link").href = `/login${location.search}`;
passwordHint($("password"), $("password-hint"));

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim(), password = $("password").value;
  if (!$("email").checkValidity()) { say($("message"), "Enter your email address, like name@example.com."); $("email").focus(); return; }
  if (password.length < 10) { say($("message"), "Choose a password of at least 10 characters."); $("password").focus(); return; }
  $("register-submit").disabled = true;
  const result = await api("POST", "/api/auth/register", { email, password, name: $("name").value.trim() });
  $("register-submit").disabled = false;
  if (result.status === 409) {
    say($("message"), "That email already has an account. Log in, or reset the password if you forgot it.");
    return;
  }
  if (!result.ok) { say($("message"), errorText(result)); return; }
  sessionStorage.setItem("sf_verify_email", email);
  location.assign("/verify");
});
