// Short messages: toasts people see, announcements screen readers hear, and a confirm dialog.

export function toast(message, kind = "info", ms = 4500) {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  if (kind === "error") item.setAttribute("role", "alert");
  item.textContent = message;
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? ms * 2 : ms);
}

export function announce(message) {
  const box = document.getElementById("announcer");
  box.textContent = "";
  // A fresh text node is announced even when the message repeats.
  requestAnimationFrame(() => {
    box.textContent = message;
  });
}

// Resolves true when the person confirms; Escape or "keep" resolves false.
export function confirmDialog({ title, text, yes, no = "Cancel" }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  document.getElementById("confirm-no").textContent = no;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-no").focus();
  });
}
