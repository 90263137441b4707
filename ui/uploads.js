// The upload list: one row per file, kept in a Map (task id -> Row) and updated in place on every poll.
//
// Rows are created once and touched only where a value changed, so applying a poll to 1,000 rows costs a
// few comparisons per row. Progress bars glide toward the latest percent (one requestAnimationFrame loop for
// the rows that are moving), rather than jumping every 500 ms.
//
// Files added in this browser are streamed to the daemon (POST /api/upload) a few at a time. Until the daemon
// answers with its task, a row is "local" (keyed "local:N"); the answer hands the row its task id. A poll that
// lists a task of a batch still being sent is left for that answer, so no row is ever shown twice.

import * as fmt from "./format.js";
import { Offline, RpcError, httpMessage, rpc, rpcBatch } from "./rpc.js";
import { copyFromButton, shareBlock } from "./share.js";
import { confirmDialog, toast } from "./notify.js";

const GROUP = {
  sending: "active", queued: "active", uploading: "active", paused: "active",
  completed: "completed", failed: "failed", cancelled: "failed",
};
const BADGE = {
  sending: "queued", queued: "queued", uploading: "uploading", paused: "paused",
  completed: "completed", failed: "failed", cancelled: "cancelled",
};
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const SENDS_AT_ONCE = 3; // leave the browser's other connections to this host for polls and clicks
const ANIMATION_MS = 450;
const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|hei[cf]|bmp|tiff?|ico|svg)$/i;

const rows = new Map(); // task id or "local:N" -> Row
const groups = new Map(); // batch id -> element holding that batch's rows
const counts = { sending: 0, queued: 0, uploading: 0, paused: 0, completed: 0, failed: 0, cancelled: 0 };
const pendingBatches = new Map(); // batch id -> sends not yet answered
const sendQueue = [];
const animating = new Set();
// Only rows on screen glide; the others take their new value at once (nobody sees them move).
const onScreen = typeof IntersectionObserver === "function"
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.target._row) e.target._row.visible = e.isIntersecting;
    }
  })
  : null;
let sending = 0;
let localSeq = 0;
let pollGen = 0;
let requestSeq = 0; // bumped as each poll request leaves; rows changed after that are newer than its answer
let lastSummary = null;
let ctx = null;
let dom = null;
let template = null;
let animationRunning = false;

// -- a row ---------------------------------------------------------------------------------------------------
class Row {
  constructor(key, name) {
    const node = template.content.firstElementChild.cloneNode(true);
    this.el = node;
    this.key = key;
    this.taskId = null;
    this.status = null;
    this.name = "";
    this.target = 0;
    this.shown = 0;
    this.from = 0;
    this.t0 = 0;
    this.gen = 0;
    this.fresh = -1;
    this.url = null;
    this.local = null; // {file, objectUrl, batchId, profile, batchSize, ctrl, timer}
    this.thumbSet = false;
    this.visible = !onScreen;
    const q = (s) => node.querySelector(s);
    this.img = q("img");
    this.ext = q(".ext");
    this.nameEl = q(".name");
    this.badge = q(".badge");
    this.bar = q(".bar");
    this.fill = q(".fill");
    this.note = q(".note");
    this.share = q(".share");
    this.cancelBtn = q(".act-cancel");
    this.retryBtn = q(".act-retry");
    this.sizeT = text(q(".size"));
    this.pctT = text(q(".pct"));
    this.speedT = text(q(".speed"));
    this.etaT = text(q(".eta"));
    this.shownInt = -1;
    this.v = { total: -1, speed: "", eta: "", note: "", noteKind: "" };
    node.dataset.key = key;
    node._row = this;
    this.setName(name);
    this.render(0);
    onScreen?.observe(node);
  }

  setName(name) {
    if (name === this.name) return;
    this.name = name;
    this.nameEl.textContent = name;
    this.nameEl.title = name;
    this.ext.textContent = fmt.extension(name);
    this.bar.setAttribute("aria-label", `Progress of ${name}`);
    this.cancelBtn.setAttribute("aria-label", `Cancel ${name}`);
    this.retryBtn.setAttribute("aria-label", `Retry ${name}`);
  }

  setStatus(status) {
    if (status === this.status) return;
    if (this.status) counts[this.status] -= 1;
    counts[status] += 1;
    this.status = status;
    this.el.dataset.status = status;
    this.el.dataset.group = GROUP[status];
    this.badge.textContent = BADGE[status];
  }

  setSize(total) {
    if (total === this.v.total) return;
    this.v.total = total;
    this.sizeT.data = fmt.bytes(total);
  }

  setNote(message, kind) {
    if (message === this.v.note && kind === this.v.noteKind) return;
    this.v.note = message;
    this.v.noteKind = kind;
    this.note.textContent = message;
    this.note.dataset.kind = kind;
    this.note.hidden = !message;
  }

  setSpeed(textValue) {
    if (textValue !== this.v.speed) this.speedT.data = this.v.speed = textValue;
  }

  setEta(textValue) {
    if (textValue !== this.v.eta) this.etaT.data = this.v.eta = textValue;
  }

  setThumb(src) {
    if (this.thumbSet || !src) return;
    this.thumbSet = true;
    this.img.src = src;
    this.img.hidden = false;
  }

  setUrl(url) {
    if (!url || url === this.url) return;
    this.url = url;
    this.share.replaceChildren(shareBlock(url, this.name));
    this.share.hidden = false;
    this.setThumb(url);
  }

  // Move the bar toward a new percent: glide forward, but jump back at once (a retry starts over).
  setTarget(percent, animate = true) {
    if (percent === this.target) return;
    this.target = percent;
    if (!animate || !this.visible || percent < this.shown) {
      animating.delete(this);
      this.render(percent);
      return;
    }
    this.from = this.shown;
    this.t0 = performance.now();
    animating.add(this);
    startAnimation();
  }

  render(value) {
    this.shown = value;
    this.fill.style.transform = `scaleX(${value / 100})`;
    const whole = value >= 100 ? 100 : Math.floor(value);
    if (whole !== this.shownInt) {
      this.shownInt = whole;
      this.pctT.data = `${whole}%`;
      this.bar.setAttribute("aria-valuenow", String(whole));
    }
  }

  // Apply one task snapshot from the daemon.
  update(t, animate = true) {
    this.setName(t.name);
    this.setStatus(t.status);
    this.setSize(t.bytes_total);
    this.setTarget(t.status === "completed" ? 100 : t.percent, animate);
    // Every byte handed over but no answer yet: the store is still taking in what the network buffered.
    const finishing = t.status === "uploading" && t.bytes_total > 0 && t.bytes_uploaded >= t.bytes_total;
    const moving = t.status === "uploading" && !finishing;
    this.setSpeed(moving ? fmt.speed(t.speed_bps) : "");
    this.setEta(finishing ? "finishing…" : moving && t.speed_bps > 0 ? fmt.eta(t.eta_s) : "");
    const message = t.error?.message || "";
    if (t.status === "failed") this.setNote(message || "The upload failed.", "error");
    else if (t.status === "paused") this.setNote("Paused. Resume all continues it.", "info");
    else if (FINISHED.has(t.status) || !message) this.setNote("", "");
    else this.setNote(message, "warn"); // a transient failure being retried
    if (t.status === "completed") this.setUrl(t.url);
  }
}

function text(span) {
  const node = document.createTextNode("");
  span.append(node);
  return node;
}

function startAnimation() {
  if (animationRunning) return;
  animationRunning = true;
  requestAnimationFrame(animate);
}

function animate(now) {
  for (const row of animating) {
    const k = Math.min(1, (now - row.t0) / ANIMATION_MS);
    row.render(row.from + (row.target - row.from) * k);
    if (k >= 1) animating.delete(row);
  }
  if (animating.size) requestAnimationFrame(animate);
  else animationRunning = false;
}

// -- rows in the list ---------------------------------------------------------------------------------------
function groupFor(batchId, fragments) {
  let group = groups.get(batchId);
  if (!group) {
    group = fmt.el("div", { class: "batch", role: "list", "aria-label": "Uploads added together" });
    group.dataset.batch = batchId;
    groups.set(batchId, group);
    if (fragments) fragments.push(group);
    else dom.rows.prepend(group);
  }
  return group;
}

function removeRow(row) {
  rows.delete(row.key);
  onScreen?.unobserve(row.el);
  animating.delete(row);
  if (row.status) counts[row.status] -= 1;
  if (row.local) {
    clearTimeout(row.local.timer);
    row.local.ctrl?.abort();
    const i = sendQueue.indexOf(row);
    if (i >= 0) sendQueue.splice(i, 1);
    settleSend(row);
    if (row.local.objectUrl) URL.revokeObjectURL(row.local.objectUrl);
  }
  const group = row.el.parentElement;
  row.el.remove();
  if (group && !group.firstElementChild) {
    groups.delete(group.dataset.batch);
    group.remove();
  }
}

function rekey(row, taskId) {
  rows.delete(row.key);
  row.key = taskId;
  row.taskId = taskId;
  row.el.dataset.key = taskId;
  rows.set(taskId, row);
}

// Apply one answer of get_all_upload_progress. Returns the milliseconds it took (the benchmark reads it).
export function applyPoll(data, seq = ++requestSeq) {
  const started = performance.now();
  const gen = ++pollGen;
  const fresh = [];
  let listed = 0;
  for (const t of data.tasks) {
    let row = rows.get(t.task_id);
    if (!row) {
      if (pendingBatches.has(t.batch_id)) continue; // its upload's answer will hand the task to its row
      row = new Row(t.task_id, t.name);
      row.taskId = t.task_id;
      rows.set(t.task_id, row);
      groupFor(t.batch_id, fresh).append(row.el);
      row.update(t, false);
    } else if (row.fresh < seq) {
      row.update(t);
    }
    row.gen = gen;
    listed += 1;
  }
  // Newest batches first; a batch's files in the order they were added.
  for (let i = fresh.length - 1; i >= 0; i -= 1) dom.rows.prepend(fresh[i]);
  // Rows the daemon no longer lists were cleared elsewhere (another tab, the CLI).
  if (rows.size > listed) {
    for (const row of [...rows.values()]) {
      if (row.taskId && row.gen !== gen && row.fresh < seq) removeRow(row);
    }
  }
  lastSummary = data.summary;
  refreshCounts();
  return performance.now() - started;
}

export function nextPollSeq() {
  requestSeq += 1;
  return requestSeq;
}

export function hasActive() {
  return counts.sending + counts.queued + counts.uploading > 0 || sending > 0;
}

// -- counts, tabs, summary ----------------------------------------------------------------------------------
function refreshCounts() {
  const active = counts.sending + counts.queued + counts.uploading + counts.paused;
  const failed = counts.failed + counts.cancelled;
  const byFilter = { all: rows.size, active, completed: counts.completed, failed };
  for (const tab of dom.tabs) {
    const n = byFilter[tab.dataset.filter];
    const badge = tab.querySelector(".count");
    if (badge.textContent !== String(n)) badge.textContent = String(n);
  }
  dom.navActive.hidden = active === 0;
  dom.navActive.textContent = String(active);
  dom.pauseAll.disabled = counts.queued + counts.uploading === 0;
  dom.resumeAll.disabled = counts.paused === 0;
  dom.clearFinished.disabled = counts.completed + failed === 0;
  dom.clearAll.disabled = rows.size === 0;
  const filter = dom.rows.dataset.filter;
  const empty = byFilter[filter] === 0;
  dom.empty.hidden = !empty;
  if (empty) dom.empty.textContent = EMPTY[filter];
  const summary = summaryText(active, failed);
  if (dom.summary.textContent !== summary) dom.summary.textContent = summary;
}

const EMPTY = {
  all: "Nothing uploaded yet. Drop images anywhere on this page, paste one, or choose files.",
  active: "Nothing is uploading right now.",
  completed: "No completed uploads in this list. History has every link.",
  failed: "No failed or cancelled uploads.",
};

function summaryText(active, failed) {
  if (rows.size === 0) return "Nothing here yet.";
  const parts = [];
  const uploading = counts.uploading + counts.sending;
  if (uploading) parts.push(`${uploading} uploading`);
  if (counts.queued) parts.push(`${counts.queued} queued`);
  if (counts.paused) parts.push(`${counts.paused} paused`);
  if (active && lastSummary) {
    parts.push(`${Math.floor(lastSummary.percent)}%`);
    if (lastSummary.speed_bps > 0) parts.push(fmt.speed(lastSummary.speed_bps));
  }
  if (counts.completed) parts.push(`${counts.completed} completed`);
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
  return parts.join(" · ");
}

function selectTab(tab, focus = false) {
  for (const t of dom.tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
  }
  dom.rows.dataset.filter = tab.dataset.filter;
  dom.rows.setAttribute("aria-labelledby", tab.id);
  if (focus) tab.focus();
  refreshCounts();
}

// -- sending files from this browser ------------------------------------------------------------------------
export function addFiles(files) {
  if (!files.length) return;
  const batchId = fmt.batchId();
  const profile = dom.profile.value;
  const batchSize = Number(dom.batchSize.value) || 5;
  const info = ctx.info();
  const group = groupFor(batchId, null);
  for (const file of files) {
    const row = new Row(`local:${++localSeq}`, file.name);
    row.local = { file, objectUrl: null, batchId, profile, batchSize, ctrl: null, timer: 0, pending: false };
    rows.set(row.key, row);
    group.append(row.el);
    row.setSize(file.size);
    if (file.type.startsWith("image/") || IMAGE_EXT.test(file.name)) {
      row.local.objectUrl = URL.createObjectURL(file);
      row.setThumb(row.local.objectUrl);
    }
    const refusal = refuse(file, info);
    if (refusal) {
      failLocal(row, refusal);
      continue;
    }
    queueSend(row);
  }
  refreshCounts();
  pump();
  ctx.pollSoon();
}

// The daemon would refuse these after reading every byte; say so before sending any.
function refuse(file, info) {
  if (info.max_file_size && file.size > info.max_file_size) {
    return `${file.name} is ${fmt.bytes(file.size)}; pixlift accepts files up to ${fmt.bytes(info.max_file_size)} ` +
      "(security.max_file_size_mb in config.toml).";
  }
  if (file.size === 0) return `${file.name} is empty (or is a folder this browser cannot read).`;
  if (info.images_only && !(file.type.startsWith("image/") || IMAGE_EXT.test(file.name))) {
    return `${file.name} is not an image (PNG, JPEG, GIF, WebP, AVIF, HEIC, BMP, TIFF, ICO or SVG).`;
  }
  return "";
}

function queueSend(row) {
  row.setStatus("sending");
  row.setNote("", "");
  row.setTarget(0, false);
  const { batchId } = row.local;
  if (!row.local.pending) pendingBatches.set(batchId, (pendingBatches.get(batchId) || 0) + 1);
  row.local.pending = true;
  sendQueue.push(row);
}

// The row's send is over (answered, failed, cancelled): polls may show its batch's new tasks again.
function settleSend(row) {
  if (!row.local.pending) return;
  row.local.pending = false;
  const { batchId } = row.local;
  const left = (pendingBatches.get(batchId) || 1) - 1;
  if (left > 0) pendingBatches.set(batchId, left);
  else pendingBatches.delete(batchId);
}

function failLocal(row, message, status = "failed") {
  row.setStatus(status);
  row.setNote(status === "failed" ? message : "", status === "failed" ? "error" : "");
  row.setTarget(0, false);
  row.setSpeed("");
  row.setEta("");
}

function pump() {
  while (sending < SENDS_AT_ONCE && sendQueue.length) {
    const row = sendQueue.shift();
    sending += 1;
    send(row).finally(() => {
      sending -= 1;
      pump();
    });
  }
}

async function send(row) {
  const { file, batchId, profile, batchSize } = row.local;
  const query = new URLSearchParams({ name: file.name, batch_id: batchId, batch_size: String(batchSize) });
  if (profile) query.set("profile", profile);
  const ctrl = new AbortController();
  row.local.ctrl = ctrl;
  row.setNote("Handing the file to pixlift…", "info");
  let resp;
  try {
    resp = await fetch(`/api/upload?${query}`, {
      method: "POST",
      body: file,
      signal: ctrl.signal,
      credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream" },
    });
  } catch (err) {
    row.local.ctrl = null;
    settleSend(row);
    if (ctrl.signal.aborted) failLocal(row, "", "cancelled");
    else failLocal(row, "pixlift could not be reached while this file was being sent. Retry when it is back.");
    refreshCounts();
    return;
  }
  row.local.ctrl = null;
  if (resp.ok) {
    let body;
    try {
      body = await resp.json();
    } catch {
      settleSend(row);
      failLocal(row, "pixlift's answer was cut off. Retry this file.");
      refreshCounts();
      return;
    }
    settleSend(row);
    if (!rows.has(row.key)) return; // cleared while it was being sent
    rekey(row, body.task.task_id);
    row.fresh = requestSeq;
    row.update(body.task);
    refreshCounts();
    ctx.pollSoon();
    return;
  }
  if (resp.status === 401) {
    settleSend(row);
    ctx.signedOut();
    return;
  }
  const message = await httpMessage(resp);
  if (resp.status === 429 && rows.has(row.key)) {
    // Too many at once: wait as told, then send again. The row says so meanwhile.
    const wait = Math.max(1, Number(resp.headers.get("Retry-After")) || 2);
    row.setNote(`Waiting: ${message}`, "warn");
    row.local.timer = setTimeout(() => {
      if (!rows.has(row.key) || row.status !== "sending") return;
      queueSend(row);
      pump();
    }, wait * 1000);
    return;
  }
  settleSend(row);
  failLocal(row, message);
  refreshCounts();
}

// -- acting on rows -----------------------------------------------------------------------------------------
async function act(row, action) {
  if (row.local && !row.taskId) {
    if (action === "cancel") cancelLocal(row);
    else if (action === "retry") {
      queueSend(row);
      pump();
    }
    refreshCounts();
    return;
  }
  try {
    const seq = requestSeq;
    const task = await rpc(action === "cancel" ? "cancel_upload" : "retry_upload", { task_id: row.taskId });
    row.fresh = seq;
    row.update(task);
    refreshCounts();
  } catch (err) {
    ctx.report(err);
  }
  ctx.pollSoon();
}

function cancelLocal(row) {
  clearTimeout(row.local.timer);
  const i = sendQueue.indexOf(row);
  if (i >= 0) {
    sendQueue.splice(i, 1);
    settleSend(row);
    failLocal(row, "", "cancelled");
  } else if (row.local.ctrl) {
    row.local.ctrl.abort(); // the send's own error path marks it cancelled
  } else if (row.status === "sending") {
    settleSend(row); // waiting out a rate limit
    failLocal(row, "", "cancelled");
  }
}

async function pauseAll() {
  try {
    const { paused } = await rpc("pause_upload", {});
    toast(paused ? `Paused ${paused} upload${paused > 1 ? "s" : ""}.` : "Nothing to pause.");
  } catch (err) {
    ctx.report(err);
  }
  ctx.pollSoon();
}

async function resumeAll() {
  try {
    const { resumed } = await rpc("resume_upload", {});
    toast(resumed ? `Resumed ${resumed} upload${resumed > 1 ? "s" : ""}.` : "Nothing to resume.");
  } catch (err) {
    ctx.report(err);
  }
  ctx.pollSoon();
}

function dropLocalFinished() {
  for (const row of [...rows.values()]) {
    if (!row.taskId && FINISHED.has(row.status)) removeRow(row);
  }
}

async function clearFinished() {
  try {
    const { cleared } = await rpc("clear_upload_progress");
    const seq = requestSeq;
    for (const row of [...rows.values()]) {
      if (row.taskId && FINISHED.has(row.status) && row.fresh < seq) removeRow(row);
    }
    dropLocalFinished();
    toast(`Cleared ${cleared} finished upload${cleared === 1 ? "" : "s"}. History keeps their links.`);
  } catch (err) {
    ctx.report(err);
  }
  refreshCounts();
  ctx.pollSoon();
}

// "Clear all": stop and cancel every upload still going (after asking), then empty the list. Completed
// links stay in History. Pausing first stops every byte at once; the cancels then go out in small batches,
// within the daemon's rate limit.
async function clearAll() {
  const active = counts.sending + counts.queued + counts.uploading + counts.paused;
  const ok = await confirmDialog({
    title: "Clear all uploads?",
    text: active
      ? `${active} upload${active > 1 ? "s are" : " is"} not finished and will be cancelled (parts already sent ` +
        "are discarded). Every row leaves this list; History keeps the links of completed uploads."
      : "Every row leaves this list. History keeps the links of completed uploads.",
    yes: active ? "Cancel uploads and clear" : "Clear all",
    no: "Keep them",
  });
  if (!ok) return;
  for (const row of [...rows.values()]) if (!row.taskId) removeRow(row);
  try {
    if (active) {
      await rpc("pause_upload", {});
      const ids = [...rows.values()].filter((r) => GROUP[r.status] === "active").map((r) => r.taskId);
      dom.summary.textContent = `Cancelling ${ids.length} uploads…`;
      await cancelMany(ids);
    }
    // A cancelled upload leaves the list once its worker has let go, which can take a moment: clear again
    // (a few times at most) until none of what was listed remains finished.
    const listed = new Set([...rows.keys()]);
    for (let attempt = 0; attempt < 4; attempt += 1) {
      await rpc("clear_upload_progress");
      const { tasks } = await rpc("get_all_upload_progress");
      if (!tasks.some((t) => listed.has(t.task_id) && FINISHED.has(t.status))) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const row of [...rows.values()]) removeRow(row);
    toast("Cleared the list. History keeps every uploaded link.");
  } catch (err) {
    ctx.report(err);
  }
  refreshCounts();
  ctx.pollSoon();
}

async function cancelMany(ids) {
  let todo = ids;
  while (todo.length) {
    const chunk = todo.slice(0, 15);
    todo = todo.slice(15);
    const answers = await rpcBatch(chunk.map((id) => ["cancel_upload", { task_id: id }]));
    let wait = 0;
    answers.forEach((a, i) => {
      if (a.error?.code === -32029) {
        todo.push(chunk[i]);
        wait = Math.max(wait, (a.error.data?.retry_after_s || 1) * 1000);
      }
    });
    if (todo.length) await new Promise((r) => setTimeout(r, Math.max(wait, 750)));
  }
}

// -- adding files: picker, drop anywhere, paste -----------------------------------------------------------
function hasFiles(event) {
  return Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types || []).includes("Files");
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

function installInputs() {
  dom.pick.addEventListener("click", () => dom.picker.click());
  dom.picker.addEventListener("change", () => {
    addFiles(Array.from(dom.picker.files));
    dom.picker.value = "";
  });
  let depth = 0;
  const overlay = document.getElementById("drop-overlay");
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener("drop", async (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    ctx.showUploads();
    addFiles(await filesFromDrop(e.dataTransfer));
  });
  document.addEventListener("paste", (e) => {
    const target = e.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, [contenteditable]")) return;
    const files = Array.from(e.clipboardData?.files || []);
    if (!files.length) return;
    e.preventDefault();
    ctx.showUploads();
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
    addFiles(files.map((f, i) => {
      if (f.name && !/^image\.\w+$/.test(f.name)) return f;
      const ext = (f.type.split("/")[1] || "png").replace("jpeg", "jpg").replace(/\+.*/, "");
      return new File([f], `pasted-${stamp}${files.length > 1 ? `-${i + 1}` : ""}.${ext}`, { type: f.type });
    }));
  });
}

// -- wiring -------------------------------------------------------------------------------------------------
export function init(context) {
  ctx = context;
  template = document.getElementById("row-template");
  dom = {
    rows: document.getElementById("rows"),
    empty: document.getElementById("empty"),
    summary: document.getElementById("summary"),
    tabs: Array.from(document.querySelectorAll("#tabs [role=tab]")),
    navActive: document.getElementById("nav-active"),
    pauseAll: document.getElementById("pause-all"),
    resumeAll: document.getElementById("resume-all"),
    clearFinished: document.getElementById("clear-finished"),
    clearAll: document.getElementById("clear-all"),
    pick: document.getElementById("pick"),
    picker: document.getElementById("picker"),
    profile: document.getElementById("profile-select"),
    batchSize: document.getElementById("batch-size"),
  };
  try {
    const saved = localStorage.getItem("pixlift.batchSize");
    if (saved && [...dom.batchSize.options].some((o) => o.value === saved)) dom.batchSize.value = saved;
  } catch {
    /* storage disabled */
  }
  dom.batchSize.addEventListener("change", () => {
    try {
      localStorage.setItem("pixlift.batchSize", dom.batchSize.value);
    } catch {
      /* storage disabled */
    }
  });
  if (ctx.info().images_only) dom.picker.accept = "image/*";

  dom.rows.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    const row = button?.closest(".row")?._row;
    if (!row) return;
    if (button.dataset.act) act(row, button.dataset.act);
    else if (button.dataset.copy && row.url) copyFromButton(button, row.url, row.name);
  });
  // A thumbnail that cannot be shown (not decodable, link expired) falls back to the file type.
  dom.rows.addEventListener("error", (e) => {
    if (e.target instanceof HTMLImageElement) e.target.hidden = true;
  }, true);
  for (const tab of dom.tabs) tab.addEventListener("click", () => selectTab(tab));
  document.getElementById("tabs").addEventListener("keydown", (e) => {
    const i = dom.tabs.indexOf(document.activeElement);
    if (i < 0) return;
    const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: dom.tabs.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    selectTab(dom.tabs[(moves[e.key] + dom.tabs.length) % dom.tabs.length], true);
  });
  dom.pauseAll.addEventListener("click", pauseAll);
  dom.resumeAll.addEventListener("click", resumeAll);
  dom.clearFinished.addEventListener("click", clearFinished);
  dom.clearAll.addEventListener("click", clearAll);
  installInputs();
  refreshCounts();
}

export { Offline, RpcError };
