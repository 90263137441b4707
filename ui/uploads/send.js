// Sending files added in this browser: each is streamed to the daemon (POST /api/upload), a few at a time.
//
// Until the daemon answers with its task, a row is "local" (keyed "local:N"); the answer hands the row its
// task id. While a batch has sends unanswered, polls leave its tasks alone (see holdBatch in state.js).

import * as fmt from "../format.js";
import { httpMessage } from "../rpc.js";
import { groupFor, refreshCounts, rekey } from "./list.js";
import { Row } from "./row.js";
import { holdBatch, settleSend } from "./state.js";

const SENDS_AT_ONCE = 3; // leave the browser's other connections to this host for polls and clicks
const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|hei[cf]|jxl|bmp|tiff?|ico|svg)$/i;

export function addFiles(state, files) {
  if (!files.length) return;
  const { ctx, dom } = state;
  const batchId = fmt.batchId();
  const profile = dom.profile.value;
  const batchSize = Number(dom.batchSize.value) || 5;
  const info = ctx.info();
  const group = groupFor(state, batchId, null);
  for (const file of files) {
    const row = new Row(state, `local:${++state.localSeq}`, file.name);
    row.local = { file, objectUrl: null, batchId, profile, batchSize, ctrl: null, timer: 0, pending: false };
    state.rows.set(row.key, row);
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
    queueSend(state, row);
  }
  refreshCounts(state);
  pump(state);
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
    return `${file.name} is not an image (PNG, JPEG, GIF, WebP, AVIF, HEIC, JPEG XL, BMP, TIFF, ICO or SVG).`;
  }
  return "";
}

export function queueSend(state, row) {
  row.setStatus("sending");
  row.setNote("", "");
  row.setTarget(0, false);
  holdBatch(state, row);
  state.sendQueue.push(row);
}

function failLocal(row, message, status = "failed") {
  row.setStatus(status);
  row.setNote(status === "failed" ? message : "", status === "failed" ? "error" : "");
  row.setTarget(0, false);
  row.setSpeed("");
  row.setEta("");
}

export function pump(state) {
  while (state.sending < SENDS_AT_ONCE && state.sendQueue.length) {
    const row = state.sendQueue.shift();
    state.sending += 1;
    send(state, row).finally(() => {
      state.sending -= 1;
      pump(state);
    });
  }
}

async function send(state, row) {
  const { ctx, rows } = state;
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
    settleSend(state, row);
    if (ctrl.signal.aborted) failLocal(row, "", "cancelled");
    else failLocal(row, "pixlift could not be reached while this file was being sent. Retry when it is back.");
    refreshCounts(state);
    return;
  }
  row.local.ctrl = null;
  if (resp.ok) {
    let body;
    try {
      body = await resp.json();
    } catch {
      settleSend(state, row);
      failLocal(row, "pixlift's answer was cut off. Retry this file.");
      refreshCounts(state);
      return;
    }
    settleSend(state, row);
    if (!rows.has(row.key)) return; // cleared while it was being sent
    rekey(state, row, body.task.task_id);
    row.fresh = state.requestSeq;
    row.update(body.task);
    refreshCounts(state); // the regular polls carry it on from here: a send's answer asks for no extra poll
    return;
  }
  if (resp.status === 401) {
    settleSend(state, row);
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
      queueSend(state, row);
      pump(state);
    }, wait * 1000);
    return;
  }
  settleSend(state, row);
  failLocal(row, message);
  refreshCounts(state);
}

// Cancel a row the daemon has no task for yet, wherever its send is.
export function cancelLocal(state, row) {
  clearTimeout(row.local.timer);
  const i = state.sendQueue.indexOf(row);
  if (i >= 0) {
    state.sendQueue.splice(i, 1);
    settleSend(state, row);
    failLocal(row, "", "cancelled");
  } else if (row.local.ctrl) {
    row.local.ctrl.abort(); // the send's own error path marks it cancelled
  } else if (row.status === "sending") {
    settleSend(state, row); // waiting out a rate limit
    failLocal(row, "", "cancelled");
  }
}
