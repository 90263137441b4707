// Adding files: the file picker, a drop anywhere on the page (folders too), a paste; and links to images
// (dropped or pasted), which the daemon fetches itself (upload_urls).

import { toast } from "../notify.js";
import { rpc } from "../rpc.js";
import { addFiles } from "./send.js";

function hasFiles(event) {
  const types = Array.from(event.dataTransfer?.types || []);
  return types.includes("Files") || types.includes("text/uri-list");
}

// The http(s) links in dropped or pasted text (a uri-list, or plain text that is nothing but links).
function linksIn(text) {
  const lines = (text || "").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return lines.length && lines.every((l) => /^https?:\/\/\S+$/i.test(l)) ? lines.slice(0, 100) : [];
}

async function addLinks(state, links) {
  const { ctx, dom } = state;
  ctx.showUploads();
  toast(`Fetching ${links.length === 1 ? "the image" : `${links.length} images`} from the web…`);
  try {
    await rpc("upload_urls", { urls: links, profile: dom.profile.value || undefined });
  } catch (err) {
    ctx.report(err); // says which link and why (a private address, not an image, too large...)
  }
}

async function filesFromDrop(dt) {
  const entries = Array.from(dt.items || [])
    .map((item) => (item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (!entries.some((e) => e && e.isDirectory)) return Array.from(dt.files || []);
  const out = [];
  const loose = Array.from(dt.files || []);
  await Promise.all(entries.map((entry, i) => (entry ? walk(entry, out) : loose[i] && out.push(loose[i]))));
  return out;
}

async function walk(entry, out) {
  if (out.length >= 10000) return;
  if (entry.isFile) {
    await new Promise((resolve) => entry.file((f) => { out.push(f); resolve(); }, () => resolve()));
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
    if (!batch.length) return;
    for (const child of batch) await walk(child, out);
  }
}

export function installInputs(state) {
  const { ctx, dom } = state;
  dom.pick.addEventListener("click", () => dom.picker.click());
  dom.picker.addEventListener("change", () => {
    addFiles(state, Array.from(dom.picker.files));
    dom.picker.value = "";
  });
  // dragenter and dragleave come for every element the pointer crosses: count them to know when it left.
  const overlay = document.getElementById("drop-overlay");
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    state.dragDepth += 1;
    overlay.hidden = false;
  });
  window.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    state.dragDepth = Math.max(0, state.dragDepth - 1);
    if (!state.dragDepth) overlay.hidden = true;
  });
  window.addEventListener("drop", async (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    state.dragDepth = 0;
    overlay.hidden = true;
    const dt = e.dataTransfer;
    if (!Array.from(dt.types || []).includes("Files")) {
      const links = linksIn(dt.getData("text/uri-list") || dt.getData("text/plain"));
      if (links.length) addLinks(state, links);
      return;
    }
    ctx.showUploads();
    addFiles(state, await filesFromDrop(dt));
  });
  document.addEventListener("paste", (e) => {
    const target = e.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, [contenteditable]")) return;
    const files = Array.from(e.clipboardData?.files || []);
    if (!files.length) {
      const links = linksIn(e.clipboardData?.getData("text/plain"));
      if (links.length) {
        e.preventDefault();
        addLinks(state, links);
      }
      return;
    }
    e.preventDefault();
    ctx.showUploads();
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
    addFiles(state, files.map((f, i) => {
      if (f.name && !/^image\.\w+$/.test(f.name)) return f;
      const ext = (f.type.split("/")[1] || "png").replace("jpeg", "jpg").replace(/\+.*/, "");
      return new File([f], `pasted-${stamp}${files.length > 1 ? `-${i + 1}` : ""}.${ext}`, { type: f.type });
    }));
  });
}
