// The upload list's state, in one object: every module of the list gets it, none keeps state of its own.

export const GROUP = {
  sending: "active", queued: "active", uploading: "active", paused: "active",
  completed: "completed", failed: "failed", cancelled: "failed",
};
export const BADGE = {
  sending: "queued", queued: "queued", uploading: "uploading", paused: "paused",
  completed: "completed", failed: "failed", cancelled: "cancelled",
};
export const FINISHED = new Set(["completed", "failed", "cancelled"]);

export function createState(ctx, dom, template) {
  const state = {
    ctx,
    dom,
    template,
    rows: new Map(), // task id or "local:N" -> Row
    groups: new Map(), // batch id -> element holding that batch's rows
    counts: { sending: 0, queued: 0, uploading: 0, paused: 0, completed: 0, failed: 0, cancelled: 0 },
    pendingBatches: new Map(), // batch id -> sends not yet answered
    sendQueue: [],
    sending: 0,
    localSeq: 0,
    pollGen: 0,
    caughtUp: true, // the last poll applied every task it carried (else the next one asks from the same version)
    requestSeq: 0, // bumped as each poll request leaves; rows changed after that are newer than its answer
    lastSummary: null,
    dragDepth: 0, // files dragged over the page: dragenter minus dragleave
    animating: new Set(),
    animationRunning: false,
    onScreen: null,
  };
  // Only rows on screen glide; the others take their new value at once (nobody sees them move).
  if (typeof IntersectionObserver === "function") {
    state.onScreen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.target._row) e.target._row.visible = e.isIntersecting;
      }
    });
  }
  return state;
}

export function activeCount(state) {
  const { counts } = state;
  return counts.sending + counts.queued + counts.uploading + counts.paused;
}

// A browser send of this batch has started: polls leave the batch's tasks to the send's answer.
export function holdBatch(state, row) {
  if (row.local.pending) return;
  row.local.pending = true;
  const { batchId } = row.local;
  state.pendingBatches.set(batchId, (state.pendingBatches.get(batchId) || 0) + 1);
}

// The row's send is over (answered, failed, cancelled): polls may show its batch's new tasks again.
export function settleSend(state, row) {
  if (!row.local.pending) return;
  row.local.pending = false;
  const { batchId } = row.local;
  const left = (state.pendingBatches.get(batchId) || 1) - 1;
  if (left > 0) state.pendingBatches.set(batchId, left);
  else state.pendingBatches.delete(batchId);
}
