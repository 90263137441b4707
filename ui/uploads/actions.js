// Acting on uploads: cancel or retry one row, pause or resume all, clear the finished ones or everything.

import { rpc, rpcBatch } from "../rpc.js";
import { confirmDialog, toast } from "../notify.js";
import { refreshCounts, removeRow } from "./list.js";
import { cancelLocal, pump, queueSend } from "./send.js";
import { FINISHED, GROUP, activeCount } from "./state.js";

export async function act(state, row, action) {
  const { ctx } = state;
  if (row.local && !row.taskId) {
    if (action === "cancel") cancelLocal(state, row);
    else if (action === "retry") {
      queueSend(state, row);
      pump(state);
    }
    refreshCounts(state);
    return;
  }
  try {
    const seq = state.requestSeq;
    const task = await rpc(action === "cancel" ? "cancel_upload" : "retry_upload", { task_id: row.taskId });
    row.fresh = seq;
    row.update(task);
    refreshCounts(state);
  } catch (err) {
    ctx.report(err);
  }
  ctx.pollSoon();
}

// An action on every upload at once: one call, a toast that says what it did, then one poll to show it.
async function onAll(state, method, say) {
  try {
    toast(...say(await rpc(method, {})));
  } catch (err) {
    state.ctx.report(err);
  }
  state.ctx.pollSoon();
}

const uploads = (n) => `${n} upload${n > 1 ? "s" : ""}`;

export function pauseAll(state) {
  return onAll(state, "pause_upload", ({ paused }) => [paused ? `Paused ${uploads(paused)}.` : "Nothing to pause."]);
}

export function resumeAll(state) {
  return onAll(state, "resume_upload",
    ({ resumed }) => [resumed ? `Resumed ${uploads(resumed)}.` : "Nothing to resume."]);
}

export function retryFailed(state) {
  return onAll(state, "retry_failed", ({ retried, skipped }) => {
    const words = retried ? `Retrying ${uploads(retried)}.` : "Nothing could be retried.";
    return skipped.length ? [`${words} ${skipped[0].name}: ${skipped[0].reason}`, "error"] : [words];
  });
}

function dropLocalFinished(state) {
  for (const row of [...state.rows.values()]) {
    if (!row.taskId && FINISHED.has(row.status)) removeRow(state, row);
  }
}

export async function clearFinished(state) {
  const { ctx } = state;
  try {
    const { cleared } = await rpc("clear_upload_progress");
    const seq = state.requestSeq;
    for (const row of [...state.rows.values()]) {
      if (row.taskId && FINISHED.has(row.status) && row.fresh < seq) removeRow(state, row);
    }
    dropLocalFinished(state);
    toast(`Cleared ${cleared} finished upload${cleared === 1 ? "" : "s"}. History keeps their links.`);
  } catch (err) {
    ctx.report(err);
  }
  refreshCounts(state);
  ctx.pollSoon();
}

// "Clear all": stop and cancel every upload still going (after asking), then empty the list. Completed
// links stay in History. Pausing first stops every byte at once; the cancels then go out in small batches,
// within the daemon's rate limit.
export async function clearAll(state) {
  const { ctx, rows } = state;
  const active = activeCount(state);
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
  for (const row of [...rows.values()]) if (!row.taskId) removeRow(state, row);
  try {
    if (active) {
      await rpc("pause_upload", {});
      const ids = [...rows.values()].filter((r) => GROUP[r.status] === "active").map((r) => r.taskId);
      state.dom.summary.textContent = `Cancelling ${ids.length} uploads…`;
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
    for (const row of [...rows.values()]) removeRow(state, row);
    toast("Cleared the list. History keeps every uploaded link.");
  } catch (err) {
    ctx.report(err);
  }
  refreshCounts(state);
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
