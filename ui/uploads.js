// The upload list: one row per file, updated in place on every poll; files added here are sent from the browser.
//
// The list's modules live in uploads/: row.js (a row's DOM), list.js (applying polls, counts, tabs, summary),
// send.js (browser uploads), actions.js (cancel, retry, pause, clear), inputs.js (picker, drop, paste). Their
// state is one object (uploads/state.js), made here by init and handed to each of them.

import { copyFromButton } from "./share.js";
import { act, clearAll, clearFinished, pauseAll, resumeAll, retryFailed } from "./uploads/actions.js";
import { installInputs } from "./uploads/inputs.js";
import { applyPoll, hasActive, nextPollSeq, refreshCounts, selectTab } from "./uploads/list.js";
import { addFiles } from "./uploads/send.js";
import { createState } from "./uploads/state.js";

// Wire the list to the page. Returns what app.js drives it with.
export function init(ctx) {
  const dom = {
    rows: document.getElementById("rows"),
    empty: document.getElementById("empty"),
    summary: document.getElementById("summary"),
    tabs: Array.from(document.querySelectorAll("#tabs [role=tab]")),
    navActive: document.getElementById("nav-active"),
    pauseAll: document.getElementById("pause-all"),
    resumeAll: document.getElementById("resume-all"),
    clearFinished: document.getElementById("clear-finished"),
    retryFailed: document.getElementById("retry-failed"),
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
  const state = createState(ctx, dom, document.getElementById("row-template"));
  if (ctx.info().images_only) dom.picker.accept = "image/*";

  dom.rows.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    const row = button?.closest(".row")?._row;
    if (!row) return;
    if (button.dataset.act) act(state, row, button.dataset.act);
    else if (button.dataset.copy && row.url) copyFromButton(button, row.url, row.name);
  });
  // A thumbnail that cannot be shown (not decodable, link expired) falls back to the file type.
  dom.rows.addEventListener("error", (e) => {
    if (e.target instanceof HTMLImageElement) e.target.hidden = true;
  }, true);
  for (const tab of dom.tabs) tab.addEventListener("click", () => selectTab(state, tab));
  document.getElementById("tabs").addEventListener("keydown", (e) => {
    const i = dom.tabs.indexOf(document.activeElement);
    if (i < 0) return;
    const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: dom.tabs.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    selectTab(state, dom.tabs[(moves[e.key] + dom.tabs.length) % dom.tabs.length], true);
  });
  dom.pauseAll.addEventListener("click", () => pauseAll(state));
  dom.resumeAll.addEventListener("click", () => resumeAll(state));
  dom.clearFinished.addEventListener("click", () => clearFinished(state));
  dom.retryFailed.addEventListener("click", () => retryFailed(state));
  dom.clearAll.addEventListener("click", () => clearAll(state));
  installInputs(state);
  refreshCounts(state);
  return {
    // Apply one answer of get_all_upload_progress; returns the milliseconds it took (the benchmark reads it).
    applyPoll: (data, seq, incremental) => applyPoll(state, data, seq, incremental),
    caughtUp: () => state.caughtUp,
    nextPollSeq: () => nextPollSeq(state),
    hasActive: () => hasActive(state),
    addFiles: (files) => addFiles(state, files),
  };
}
