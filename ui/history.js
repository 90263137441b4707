// The history view: every uploaded link, newest first, searchable by name, with the same copy buttons.

import * as fmt from "./format.js";
import { rpc } from "./rpc.js";
import { copyFromButton, shareBlock } from "./share.js";

const PAGE = 50;

function item(h) {
  const thumb = fmt.el("div", { class: "thumb" },
    fmt.el("span", { class: "ext", "aria-hidden": "true", text: fmt.extension(h.name) }),
    fmt.el("img", { src: h.url, alt: "", loading: "lazy", decoding: "async" }));
  const meta = [fmt.bytes(h.size), h.profile, fmt.when(h.uploaded_at)].filter(Boolean).join(" · ");
  const body = fmt.el("div", { class: "body" },
    fmt.el("div", { class: "top" }, fmt.el("span", { class: "name", title: h.name, text: h.name })),
    fmt.el("div", { class: "meta", text: meta }),
    fmt.el("div", { class: "share" }, shareBlock(h.url, h.name)));
  const li = fmt.el("li", { class: "row hrow" }, thumb, body);
  li._item = h;
  return li;
}

async function load(state, reset = true) {
  const { dom } = state;
  const gen = ++state.generation;
  const offset = reset ? 0 : state.loaded;
  const params = { limit: PAGE, offset };
  if (state.query) params.query = state.query;
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

// Wire the view to the page. Returns what app.js drives it with.
export function init(ctx) {
  const dom = {
    list: document.getElementById("history-list"),
    search: document.getElementById("history-search"),
    more: document.getElementById("history-more"),
    empty: document.getElementById("history-empty"),
    total: document.getElementById("history-total"),
  };
  const state = {
    ctx,
    dom,
    loaded: 0,
    total: 0,
    query: "",
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
  dom.list.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-copy]");
    const h = button?.closest("li")?._item;
    if (h) copyFromButton(button, h.url, h.name);
  });
  dom.list.addEventListener("error", (e) => {
    if (e.target instanceof HTMLImageElement) e.target.hidden = true;
  }, true);
  return { load: (reset = true) => load(state, reset) };
}
