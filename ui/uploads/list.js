// The rows in the list: applying a poll's tasks to them, a group per batch, the counts, tabs and summary.
//
// Rows live in a Map (task id -> Row) and are updated in place on every poll. A poll that lists a task of a
// batch still being sent from this browser is left for that send's answer, so no row is ever shown twice.

import * as fmt from "../format.js";
import { Row } from "./row.js";
import { activeCount, settleSend } from "./state.js";

const EMPTY = {
  all: "Nothing uploaded yet. Drop images anywhere on this page, paste one, or choose files.",
  active: "Nothing is uploading right now.",
  completed: "No completed uploads in this list. History has every link.",
  failed: "No failed or cancelled uploads.",
};

export function groupFor(state, batchId, fragments) {
  let group = state.groups.get(batchId);
  if (!group) {
    group = fmt.el("div", { class: "batch", role: "list", "aria-label": "Uploads added together" });
    group.dataset.batch = batchId;
    state.groups.set(batchId, group);
    if (fragments) fragments.push(group);
    else state.dom.rows.prepend(group);
  }
  return group;
}

export function removeRow(state, row) {
  state.rows.delete(row.key);
  state.onScreen?.unobserve(row.el);
  state.animating.delete(row);
  if (row.status) state.counts[row.status] -= 1;
  if (row.local) {
    clearTimeout(row.local.timer);
    row.local.ctrl?.abort();
    const i = state.sendQueue.indexOf(row);
    if (i >= 0) state.sendQueue.splice(i, 1);
    settleSend(state, row);
    if (row.local.objectUrl) URL.revokeObjectURL(row.local.objectUrl);
  }
  const group = row.el.parentElement;
  row.el.remove();
  if (group && !group.firstElementChild) {
    state.groups.delete(group.dataset.batch);
    group.remove();
  }
}

export function rekey(state, row, taskId) {
  state.rows.delete(row.key);
  row.key = taskId;
  row.taskId = taskId;
  row.el.dataset.key = taskId;
  state.rows.set(taskId, row);
}

// Apply one answer of get_all_upload_progress: every listed task, or (incremental) the tasks changed since the
// last one and the ids removed since. Returns the milliseconds it took (the benchmark reads it).
export function applyPoll(state, data, seq = ++state.requestSeq, incremental = false) {
  const started = performance.now();
  const gen = ++state.pollGen;
  const { rows } = state;
  const fresh = [];
  let listed = 0;
  state.caughtUp = true;
  for (const t of data.tasks) {
    let row = rows.get(t.task_id);
    if (!row) {
      if (state.pendingBatches.has(t.batch_id)) {
        state.caughtUp = false; // its upload's answer will hand the task to its row; ask again next time
        continue;
      }
      row = new Row(state, t.task_id, t.name);
      row.taskId = t.task_id;
      rows.set(t.task_id, row);
      groupFor(state, t.batch_id, fresh).append(row.el);
      row.update(t, false);
    } else if (row.fresh < seq) {
      row.update(t);
    } else {
      state.caughtUp = false; // the row has a newer answer than this poll's; this task may have moved on since
    }
    row.gen = gen;
    listed += 1;
  }
  // Newest batches first; a batch's files in the order they were added.
  for (let i = fresh.length - 1; i >= 0; i -= 1) state.dom.rows.prepend(fresh[i]);
  if (incremental) {
    for (const id of data.removed || []) { // cleared elsewhere (another tab, the CLI) or expired
      const row = rows.get(id);
      if (row && row.fresh < seq) removeRow(state, row);
    }
  } else if (rows.size > listed) { // a full answer: rows it does not list are gone
    for (const row of [...rows.values()]) {
      if (row.taskId && row.gen !== gen && row.fresh < seq) removeRow(state, row);
    }
  }
  state.lastSummary = data.summary;
  refreshCounts(state);
  return performance.now() - started;
}

export function nextPollSeq(state) {
  state.requestSeq += 1;
  return state.requestSeq;
}

export function hasActive(state) {
  const { counts } = state;
  return counts.sending + counts.queued + counts.uploading > 0 || state.sending > 0;
}

// -- counts, tabs, summary ----------------------------------------------------------------------------------
export function refreshCounts(state) {
  const { counts, dom, rows } = state;
  const active = activeCount(state);
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
  dom.retryFailed.disabled = counts.failed === 0;
  dom.clearAll.disabled = rows.size === 0;
  const filter = dom.rows.dataset.filter;
  const empty = byFilter[filter] === 0;
  dom.empty.hidden = !empty;
  if (empty) dom.empty.textContent = EMPTY[filter];
  const summary = summaryText(state, active);
  if (dom.summary.textContent !== summary) dom.summary.textContent = summary;
}

function summaryText(state, active) {
  const { counts, lastSummary } = state;
  if (state.rows.size === 0) return "Nothing here yet.";
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

export function selectTab(state, tab, focus = false) {
  const { dom } = state;
  for (const t of dom.tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
  }
  dom.rows.dataset.filter = tab.dataset.filter;
  dom.rows.setAttribute("aria-labelledby", tab.id);
  if (focus) tab.focus();
  refreshCounts(state);
}
