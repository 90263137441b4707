// pixlift's web UI: boot (signed in or not), the three views, and the poll loop with its offline banner.
//
// Polls get_all_upload_progress every 500 ms while something is uploading, every 3 s when idle (slower in a
// hidden tab). When the daemon stops answering, the page says so and retries with backoff (1, 2, 4, 8, 10 s),
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

let info = {};
let started = false;
let pollTimer = 0;
let polling = false;
let pollAgain = false;
let failures = 0;
let offline = false;
let countdownTimer = 0;
let stopped = false;
let userPickedProfile = false;
let uploadList = null; // what uploads.init made

const $ = (id) => document.getElementById(id);

const ctx = {
  info: () => info,
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
  stopped = true;
  clearTimeout(pollTimer);
  clearInterval(countdownTimer);
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
  clearTimeout(pollTimer);
  if (stopped) return;
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  let delay = IDLE_MS;
  try {
    const seq = uploadList.nextPollSeq();
    const data = await rpc("get_all_upload_progress");
    uploadList.applyPoll(data, seq);
    if (offline) backOnline();
    failures = 0;
    const active = uploadList.hasActive();
    delay = active ? ACTIVE_MS : IDLE_MS;
    if (document.hidden) delay = active ? 2 * IDLE_MS / 3 : HIDDEN_MS;
  } catch (err) {
    if (err instanceof SignedOut) {
      polling = false;
      showSignedOut();
      return;
    }
    if (err instanceof RpcError && err.code === -32029) {
      delay = (err.data?.retry_after_s ?? 1) * 1000 + 100;
    } else {
      failures += 1;
      delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
      goOffline(delay, err instanceof Offline ? "" : err.message);
    }
  } finally {
    polling = false;
  }
  if (pollAgain) {
    pollAgain = false;
    delay = 0;
  }
  pollTimer = setTimeout(poll, delay);
}

function pollSoon() {
  if (stopped) return;
  if (polling) {
    pollAgain = true;
    return;
  }
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, 0);
}

function goOffline(delay, detail = "") {
  offline = true;
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
  clearInterval(countdownTimer);
  countdownTimer = setInterval(show, 1000);
}

async function backOnline() {
  offline = false;
  clearInterval(countdownTimer);
  $("offline").hidden = true;
  toast("Connected to pixlift again.");
  try {
    // The daemon may have restarted with other settings.
    info = withFilesRoot(await rpc("get_daemon_info"));
    const list = await rpc("list_profiles");
    fillProfiles(list);
    settings.render(list);
    settings.showAbout(info);
  } catch (err) {
    report(err, { quiet: true });
  }
}

// -- profiles in the upload picker --------------------------------------------------------------------------
function fillProfiles(list) {
  const select = $("profile-select");
  const keep = userPickedProfile ? select.value : null;
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
  if (view === "history") history.load(true);
  if (view === "settings") {
    rpc("list_profiles").then((list) => {
      settings.render(list);
      fillProfiles(list);
    }, (err) => report(err, { quiet: true }));
  }
}

// -- boot ----------------------------------------------------------------------------------------------------
async function boot() {
  let list;
  try {
    list = await rpc("list_profiles"); // one call decides: signed in (the app) or not (how to get in)
    info = withFilesRoot(await rpc("get_daemon_info"));
  } catch (err) {
    if (err instanceof SignedOut) {
      showSignedOut();
      return;
    }
    $("booting").textContent = `Cannot reach pixlift (${err.message}). Retrying…`;
    setTimeout(boot, 2000);
    return;
  }
  if (started) return;
  started = true;
  $("booting").hidden = true;
  $("app").hidden = false;
  uploadList = uploads.init(ctx);
  history.init(ctx);
  settings.init(ctx);
  fillProfiles(list);
  settings.render(list);
  settings.showAbout(info);
  $("profile-select").addEventListener("change", () => {
    userPickedProfile = true;
  });
  $("offline-retry").addEventListener("click", () => {
    failures = 0;
    pollSoon();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) pollSoon();
  });
  window.addEventListener("hashchange", route);
  route();
  // A hook for the benchmark (bench/ui_poll.py): apply one poll's data, get back the milliseconds it took.
  window.__pixlift = {
    applyPoll: (data) => uploadList.applyPoll(data),
    stopPolling: () => {
      stopped = true;
      clearTimeout(pollTimer);
    },
  };
  poll();
}

onSignedOut(showSignedOut);
boot();
