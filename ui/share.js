// Links in the formats people paste: URL, Markdown, HTML and a custom template kept in this browser.

import { el } from "./format.js";
import { announce, toast } from "./notify.js";

const TEMPLATE_KEY = "pixlift.copyTemplate";
export const DEFAULT_TEMPLATE = "![{name}]({url})";
export const FORMATS = [
  ["url", "URL"],
  ["markdown", "Markdown"],
  ["html", "HTML"],
  ["custom", "Custom"],
];

export function template() {
  try {
    return localStorage.getItem(TEMPLATE_KEY) || DEFAULT_TEMPLATE;
  } catch {
    return DEFAULT_TEMPLATE;
  }
}

export function setTemplate(text) {
  try {
    if (text && text !== DEFAULT_TEMPLATE) localStorage.setItem(TEMPLATE_KEY, text);
    else localStorage.removeItem(TEMPLATE_KEY);
  } catch {
    /* storage disabled: the template lasts for this page only */
  }
}

function stem(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(0, dot) : name;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function formatLink(kind, url, name, tpl = template()) {
  switch (kind) {
    case "markdown": {
      const alt = name.replace(/([\\[\]])/g, "\\$1");
      const target = url.replace(/[ ()]/g, (c) => ({ " ": "%20", "(": "%28", ")": "%29" })[c]);
      return `![${alt}](${target})`;
    }
    case "html":
      return `<img src="${escapeHtml(url)}" alt="${escapeHtml(name)}">`;
    case "custom":
      return tpl.replace(/\{(url|name|stem)\}/g, (_, k) => ({ url, name, stem: stem(name) })[k]);
    default:
      return url;
  }
}

// The link and its copy buttons; clicks are handled by the list that holds it (see handleCopyClick).
export function shareBlock(url, name) {
  const link = el("a", { class: "link", href: url, target: "_blank", rel: "noopener noreferrer", text: url });
  const buttons = el("div", { class: "copies", role: "group", "aria-label": `Copy the link of ${name}` });
  for (const [kind, label] of FORMATS) {
    buttons.append(el("button", {
      type: "button",
      class: "btn small copy",
      "data-copy": kind,
      "aria-label": `Copy ${label === "Custom" ? "custom format" : label} for ${name}`,
      title: kind === "custom" ? `Copy as ${template()}` : `Copy as ${label}`,
      text: label,
    }));
  }
  return el("div", { class: "share-inner" }, link, buttons);
}

export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* denied or unfocused: try the old way */
  }
  const area = el("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

// A copy button was clicked: copy the link in its format and say so on the button and to screen readers.
export async function copyFromButton(button, url, name) {
  const kind = button.dataset.copy;
  const label = FORMATS.find(([k]) => k === kind)?.[1] ?? "URL";
  const ok = await copyText(formatLink(kind, url, name));
  if (!ok) {
    toast("Could not copy: select the link and copy it by hand.", "error");
    return;
  }
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = "Copied";
  button.classList.add("copied");
  clearTimeout(button._copiedTimer);
  button._copiedTimer = setTimeout(() => {
    button.textContent = button.dataset.label;
    button.classList.remove("copied");
  }, 1600);
  announce(`Copied the ${label} link of ${name}`);
}
