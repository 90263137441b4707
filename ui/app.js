// pixlift's web UI: boot (signed in or not), the three views, and the poll loop with its offline banner.
//
// Polls get_all_upload_progress every 500 ms while something is uploading, every 3 s when idle (slower in a
// hidden tab), with `since`: each answer carries only the tasks changed after the last one it applied in full,
// so a poll costs what changed, not what is listed. A user action may add one immediate poll (a drop of many
// files is one action); the answers to the files it sends update their rows directly and ask for none. When the daemon stops answering, the page says so and retries with backoff (1, 2, 4, 8, 10 s),
// then picks up where it was once the daemon is back; sessions are stateless, so a restart keeps us signed in.

import * as history from "./history.js";
import { toast } from "./notify.js";
import { Offline, RpcError, SignedOut, onSignedOut, rpc } from "./rpc.js";
import * as settings from "./settings.js";
import * as uploads from "./uploads.js";

const ACTIVE_MS = 500;
const IDLE_MS = 3000;
const HIDDEN_MS = 6000;
const MAX_BACKOFF_MS = 10000;

// The page's state, in one object.
const state = {
  info: {},
  started: false,
  pollTimer: 0,
  polling: false,
  pollAgain: false,
  failures: 0,
  offline: false,
  countdownTimer: 0,
  stopped: false,
  userPickedProfile: false,
  version: null, // the daemon's change counter at the last answer applied in full: the next poll's `since`
  views: null, // uploads, history and settings, as their init made them (once signed in)
};

const $ = (id) => document.getElementById(id);

const ctx = {
  info: () => state.info,
  pollSoon,
  report,
  signedOut: showSignedOut,
  showUploads: () => {
    if (currentView() !== "uploads") location.hash = "#/uploads";
  },
  profilesChanged: fillProfiles,
};

// -- signed out: say how to get in, show nothing else ------------------------------------------------------
function showSignedOut() {
  state.stopped = true;
  clearTimeout(state.pollTimer);
  clearInterval(state.countdownTimer);
  $("booting").hidden = true;
  $("app").hidden = true;
  $("signed-out").hidden = false;
  document.title = "pixlift: not signed in";
}

function report(err, { quiet = false } = {}) {
  if (err instanceof SignedOut) {
    showSignedOut();
    return;
  }
  if (err instanceof Offline) {
    goOffline(1000);
    if (!quiet) toast("pixlift is not answering; try again once it is back.", "error");
    return;
  }
  if (!quiet) toast(err?.message || String(err), "error");
}

// -- polling and the offline banner ------------------------------------------------------------------------
async function poll() {
  clearTimeout(state.pollTimer);
  if (state.stopped) return;
  if (state.polling) {
    state.pollAgain = true;
    return;
  }
  state.polling = true;
  let delay = IDLE_MS;
  try {
    const seq = state.views.uploads.nextPollSeq();
    const since = state.version;
    const data = await rpc("get_all_upload_progress", since === null ? {} : { since });
    const incremental = since !== null && !data.full;
    state.views.uploads.applyPoll(data, seq, incremental);
    // A task left for a send's answer, or older than a row's newer answer, is asked for again next time.
    if (state.views.uploads.caughtUp()) state.version = data.version;
    if (state.offline) backOnline();
    state.failures = 0;
    const active = state.views.uploads.hasActive();
    delay = active ? ACTIVE_MS : IDLE_MS;
    if (document.hidden) delay = active ? 2 * IDLE_MS / 3 : HIDDEN_MS;
  } catch (err) {
    if (err instanceof SignedOut) {
      state.polling = false;
      showSignedOut();
      return;
    }
    if (err instanceof RpcError && err.code === -32029) {
      delay = (err.data?.retry_after_s ?? 1) * 1000 + 100;
    } else {
      state.failures += 1;
      delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (state.failures - 1));
      goOffline(delay, err instanceof Offline ? "" : err.message);
    }
  } finally {
    state.polling = false;
  }
  if (state.pollAgain) {
    state.pollAgain = false;
    delay = 0;
  }
  state.pollTimer = setTimeout(poll, delay);
}

function pollSoon() {
  if (state.stopped) return;
  if (state.polling) {
    state.pollAgain = true;
    return;
  }
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, 0);
}

function goOffline(delay, detail = "") {
  state.offline = true;
  const banner = $("offline");
  banner.hidden = false;
  const due = Date.now() + delay;
  // The alert's words change only with the reason; the countdown beside it is not read out every second.
  const words = `Disconnected from pixlift${detail ? ` (${detail})` : ""}, retrying`;
  if ($("offline-text").textContent !== words) $("offline-text").textContent = words;
  const show = () => {
    const s = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    $("offline-countdown").textContent = s > 0 ? ` in ${s} s…` : "…";
  };
  show();
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(show, 1000);
}

async function backOnline() {
  state.offline = false;
  clearInterval(state.countdownTimer);
  $("offline").hidden = true;
  toast("Connected to pixlift again.");
  try {
    // The daemon may have restarted with other settings.
    state.info = withFilesRoot(await rpc("get_daemon_info"));
    const list = await rpc("list_profiles");
    fillProfiles(list);
    state.views.settings.render(list);
    state.views.settings.showAbout(state.info);
  } catch (err) {
    report(err, { quiet: true });
  }
}

// -- profiles in the upload picker --------------------------------------------------------------------------
function fillProfiles(list) {
  const select = $("profile-select");
  const keep = state.userPickedProfile ? select.value : null;
  select.replaceChildren(...list.profiles.map((p) => {
    const option = document.createElement("option");
    option.value = p.name;
    option.textContent = p.default ? `${p.name} (default)` : p.name;
    return option;
  }));
  const names = list.profiles.map((p) => p.name);
  select.value = keep && names.includes(keep) ? keep : list.default;
}

function withFilesRoot(daemonInfo) {
  const sep = daemonInfo.home?.includes("\\") ? "\\" : "/";
  return { ...daemonInfo, files_root: daemonInfo.home ? `${daemonInfo.home}${sep}files` : "" };
}

// -- views ---------------------------------------------------------------------------------------------------
function currentView() {
  const name = location.hash.replace(/^#\/?/, "");
  return ["uploads", "history", "settings"].includes(name) ? name : "uploads";
}

function route() {
  const view = currentView();
  for (const name of ["uploads", "history", "settings"]) $(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = { uploads: "pixlift", history: "History · pixlift", settings: "Settings · pixlift" }[view];
  if (view === "history") state.views.history.load(true);
  if (view === "settings") {
    rpc("list_profiles").then((list) => {
      state.views.settings.render(list);
      fillProfiles(list);
    }, (err) => report(err, { quiet: true }));
  }
}

// -- boot ----------------------------------------------------------------------------------------------------
async function boot() {
  let list;
  try {
    list = await rpc("list_profiles"); // one call decides: signed in (the app) or not (how to get in)
    state.info = withFilesRoot(await rpc("get_daemon_info"));
  } catch (err) {
    if (err instanceof SignedOut) {
      showSignedOut();
      return;
    }
    $("booting").textContent = `Cannot reach pixlift (${err.message}). Retrying…`;
    setTimeout(boot, 2000);
    return;
  }
  if (state.started) return;
  state.started = true;
  $("booting").hidden = true;
  $("app").hidden = false;
  state.views = { uploads: uploads.init(ctx), history: history.init(ctx), settings: settings.init(ctx) };
  fillProfiles(list);
  state.views.settings.render(list);
  state.views.settings.showAbout(state.info);
  $("profile-select").addEventListener("change", () => {
    state.userPickedProfile = true;
  });
  $("offline-retry").addEventListener("click", () => {
    state.failures = 0;
    pollSoon();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) pollSoon();
  });
  window.addEventListener("hashchange", route);
  route();
  // A hook for the benchmark (bench/ui_poll.py): apply one poll's data, get back the milliseconds it took.
  window.__pixlift = {
    applyPoll: (data) => state.views.uploads.applyPoll(data),
    stopPolling: () => {
      state.stopped = true;
      clearTimeout(state.pollTimer);
    },
  };
  poll();
}

onSignedOut(showSignedOut);
boot();
