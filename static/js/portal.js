// Small behaviours that need script; no inline script anywhere (the CSP forbids it).
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-open-dialog]");
  if (opener) {
    document.getElementById(opener.dataset.openDialog)?.showModal();
  }
  const closer = event.target.closest("[data-close-dialog]");
  if (closer) {
    closer.closest("dialog")?.close();
  }
});
// Toasts fade out by CSS; remove them afterwards so they do not pile up.
document.addEventListener("animationend", (event) => {
  if (event.target.classList?.contains("toast")) event.target.remove();
});
// The main menu: always open beside the page on wide screens, a folded "Menu" on phones.
(() => {
  const narrow = window.matchMedia("(max-width: 768px)");
  const fold = () => {
    document.querySelectorAll("details.nav-menu").forEach((menu) => { menu.open = !narrow.matches; });
  };
  document.addEventListener("DOMContentLoaded", fold);
  narrow.addEventListener("change", fold);
})();
