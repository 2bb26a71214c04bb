// Asks for the server's token once, and trades it for the HttpOnly session
// cookie (POST /v1/auth:login). The token is kept nowhere: not in the URL,
// not in storage, not in the page once the request is sent.

import {api} from "./api.js";
import {fill, h} from "./dom.js";

// Shows the form in `main`; resolves once the browser holds a session.
export function login(main) {
  return new Promise((resolve) => {
    const input = h("input", {
      id: "token", name: "token", type: "password", autocomplete: "current-password",
      required: true, "aria-describedby": "token-error",
    });
    const error = h("p", {id: "token-error", class: "error", role: "alert"});
    const button = h("button", {type: "submit", class: "primary"}, "Log in");
    const form = h("form", {class: "login", "aria-labelledby": "login-title"},
      h("h1", {id: "login-title"}, "Log in"),
      h("p", {}, "This server needs its token (jobwired --auth-token). It is sent once and " +
        "traded for a session cookie that ends with the browser session or in 12 hours."),
      h("label", {for: "token"}, "Token"),
      input, error, h("div", {class: "actions"}, button));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const token = input.value;
      input.value = "";
      button.disabled = true;
      error.textContent = "";
      try {
        await api("POST", "/v1/auth:login", {token}, null, {quiet401: true});
        resolve();
      } catch (err) {
        error.textContent = err.httpStatus === 401 ? "Wrong token." : `Could not log in: ${err.message}`;
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } finally {
        button.disabled = false;
      }
    });
    fill(main, form);
    input.focus();
  });
}

export async function logout() {
  await api("POST", "/v1/auth:logout", {}, null, {quiet401: true});
}
