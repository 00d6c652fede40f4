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
