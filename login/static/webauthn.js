// Signet's only script: the WebAuthn ceremony of a passkey form. The form
// carries the server's options (data-options); the browser's answer goes
// into its credential field and the form is sent as any other. Without
// this script, or without WebAuthn, the other forms of the page still work.
"use strict";
document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
  form.addEventListener("submit", async function (ev) {
    if (form.elements.credential.value) {
      return;
    }
    ev.preventDefault();
    var status = form.querySelector(".webauthn-status");
    try {
      var options = JSON.parse(form.dataset.options).publicKey;
      var cred;
      if (form.dataset.webauthn === "create") {
        cred = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
      } else {
        cred = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      }
      form.elements.credential.value = JSON.stringify(cred.toJSON());
      form.submit();
    } catch (e) {
      if (status) {
        status.textContent = "Your passkey did not answer (" + e.name + "). Try again, or use another way to sign in.";
      }
    }
  });
});
