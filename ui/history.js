// The history view: every uploaded link, newest first, searchable by name, with the same copy buttons, and a
// Delete button that removes the file from its store (after a confirmation naming the file and the store).

import * as fmt from "./format.js";
import { confirmDialog, toast } from "./notify.js";
import { rpc } from "./rpc.js";
import { copyFromButton, shareBlock } from "./share.js";

const PAGE = 50;

// "link expires in 6 days": a presigned link's end, re-signed by the daemon whenever the history is read.
function expiry(h) {
  if (!h.url_expires_at || h.deleted_at) return "";
  const left = (Date.parse(h.url_expires_at) - Date.now()) / 1000;
  const [n, unit] = left >= 86400 ? [left / 86400, "day"] : left >= 3600 ? [left / 3600, "hour"]
    : [Math.max(1, left / 60), "minute"];
  const count = Math.round(n);
  return `link expires in ${count} ${unit}${count === 1 ? "" : "s"}`;
}

function item(h) {
  const thumb = fmt.el("div", { class: "thumb" },
    fmt.el("span", { class: "ext", "aria-hidden": "true", text: fmt.extension(h.name) }),
    fmt.el("img", { src: h.url, alt: "", loading: "lazy", decoding: "async" }));
  const meta = [fmt.bytes(h.size), h.profile, fmt.when(h.uploaded_at), expiry(h)].filter(Boolean).join(" · ");
  const top = fmt.el("div", { class: "top" }, fmt.el("span", { class: "name", title: h.name, text: h.name }));
  if (h.deleted_at) {
    top.append(fmt.el("span", { class: "badge deleted", text: `Deleted ${fmt.when(h.deleted_at)}` }));
  } else {
    top.append(fmt.el("button", { type: "button", class: "btn small danger", "data-delete": "",
      "aria-label": `Delete ${h.name} from ${h.profile}`, text: "Delete" }));
  }
  const metaLine = fmt.el("div", { class: "meta", text: meta });
  if (expiry(h)) {
    metaLine.title = "A presigned link: pixlift signs it again whenever History is opened. For links shared " +
      "widely, give the profile a public base URL in Settings.";
  }
  const body = fmt.el("div", { class: "body" }, top, metaLine,
    h.deleted_at ? fmt.el("div", { class: "meta", text: "Removed from the store; the link no longer works." })
      : fmt.el("div", { class: "share" }, shareBlock(h.url, h.name)));
  const li = fmt.el("li", { class: h.deleted_at ? "row hrow gone" : "row hrow" }, thumb, body);
  li._item = h;
  return li;
}

async function load(state, reset = true) {
  const { dom } = state;
  const gen = ++state.generation;
  const offset = reset ? 0 : state.loaded;
  const params = { limit: PAGE, offset };
  if (state.query) params.query = state.query;
  if (state.filter) params.deleted = state.filter === "deleted";
  dom.more.disabled = true;
  let page;
  try {
    page = await rpc("get_upload_history", params);
  } catch (err) {
    dom.more.disabled = false;
    state.ctx.report(err);
    return;
  }
  if (gen !== state.generation) return;
  const frag = document.createDocumentFragment();
  for (const h of page.items) frag.append(item(h));
  if (reset) dom.list.replaceChildren(frag);
  else dom.list.append(frag);
  state.loaded = offset + page.items.length;
  state.total = page.total;
  const { loaded, total, query } = state;
  dom.more.hidden = loaded >= total;
  dom.more.disabled = false;
  dom.empty.hidden = total > 0;
  dom.empty.textContent = query ? `No uploads named like “${query}”.` : "No uploads yet. Completed uploads appear here.";
  const what = `${total} upload${total === 1 ? "" : "s"}`;
  dom.total.textContent = total === 0 ? "" : query ? `${what} match “${query}”` : `${what}, newest first`;
}

// Delete an upload from its store, once the person has confirmed it by name.
async function remove(state, button, h) {
  const ok = await confirmDialog({
    title: `Delete ${h.name}?`,
    text: `This removes ${h.name} from the store of profile “${h.profile}”. Its link stops working for everyone ` +
      "it was shared with; this cannot be undone.",
    yes: "Delete from the store",
    no: "Keep it",
  });
  if (!ok) return;
  button.disabled = true;
  try {
    await rpc("delete_upload", { history_id: h.history_id });
  } catch (err) {
    button.disabled = false;
    state.ctx.report(err);
    return;
  }
  toast(`Deleted ${h.name} from ${h.profile}.`);
  load(state, true);
}

// Wire the view to the page. Returns what app.js drives it with.
export function init(ctx) {
  const dom = {
    list: document.getElementById("history-list"),
    search: document.getElementById("history-search"),
    more: document.getElementById("history-more"),
    empty: document.getElementById("history-empty"),
    total: document.getElementById("history-total"),
    filter: document.getElementById("history-filter"),
  };
  const state = {
    ctx,
    dom,
    loaded: 0,
    total: 0,
    query: "",
    filter: "", // "", "stored" or "deleted"
    generation: 0, // answers to an older search are dropped
    debounce: 0,
  };
  dom.search.addEventListener("input", () => {
    clearTimeout(state.debounce);
    state.debounce = setTimeout(() => {
      state.query = dom.search.value.trim();
      load(state, true);
    }, 200);
  });
  dom.more.addEventListener("click", () => load(state, false));
  dom.filter.addEventListener("change", () => {
    state.filter = dom.filter.value;
    load(state, true);
  });
  dom.list.addEventListener("click", (e) => {
    const del = e.target.closest("button[data-delete]");
    if (del) {
      remove(state, del, del.closest("li")._item);
      return;
    }
    const button = e.target.closest("button[data-copy]");
    const h = button?.closest("li")?._item;
    if (h) copyFromButton(button, h.url, h.name);
  });
  dom.list.addEventListener("error", (e) => {
    if (e.target instanceof HTMLImageElement) e.target.hidden = true;
  }, true);
  return { load: (reset = true) => load(state, reset) };
}
