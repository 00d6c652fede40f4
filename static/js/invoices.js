// "Print invoice" button on the invoice page (the print stylesheet hides the chrome).
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
