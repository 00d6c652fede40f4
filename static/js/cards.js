// Payment cards: Stripe.js collects the card and confirms the SetupIntent in the
// browser; our server only ever receives the SetupIntent id afterwards.
(function () {
  "use strict";

  function mount(form) {
    if (form.dataset.mounted || typeof Stripe === "undefined") return;
    form.dataset.mounted = "1";
    const stripe = Stripe(form.dataset.publishableKey);
    const card = stripe.elements().create("card");
    card.mount(form.querySelector(".card-element"));
    const errors = form.querySelector("[data-card-errors]");
    const button = form.querySelector("button[type=submit]");

    function busy(on) {
      button.disabled = on;
      if (on) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.textContent = "";
      busy(true);
      const result = await stripe.confirmCardSetup(form.dataset.clientSecret, {
        payment_method: { card: card },
      });
      if (result.error) {
        errors.textContent = result.error.message || form.dataset.notSaved || "The card could not be saved.";
        busy(false);
        return;
      }
      const attach = document.getElementById("card-attach");
      attach.querySelector("[name=setup_intent_id]").value = result.setupIntent.id;
      attach.requestSubmit();
    });
  }

  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-card-form]")) mount(root);
    root.querySelectorAll("[data-card-form]").forEach(mount);
  }

  document.addEventListener("DOMContentLoaded", () => scan(document));
  document.addEventListener("htmx:load", (event) => scan(event.detail.elt));
})();
