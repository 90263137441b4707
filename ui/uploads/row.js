// One row of the upload list: its DOM (cloned from #row-template) and the values it shows.
//
// Every setter compares with what is shown and touches the DOM only on a change, so applying a poll to 1,000
// rows costs a few comparisons per row. Progress bars glide toward the latest percent (one
// requestAnimationFrame loop for the rows that are moving), rather than jumping every 500 ms.

import * as fmt from "../format.js";
import { shareBlock } from "../share.js";
import { BADGE, FINISHED, GROUP } from "./state.js";

const ANIMATION_MS = 450;

export class Row {
  constructor(state, key, name) {
    const node = state.template.content.firstElementChild.cloneNode(true);
    this.state = state;
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
    this.local = null; // {file, objectUrl, batchId, profile, batchSize, ctrl, timer, pending}
    this.thumbSet = false;
    this.visible = !state.onScreen;
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
    state.onScreen?.observe(node);
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
    const { counts } = this.state;
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
      this.state.animating.delete(this);
      this.render(percent);
      return;
    }
    this.from = this.shown;
    this.t0 = performance.now();
    this.state.animating.add(this);
    startAnimation(this.state);
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

function startAnimation(state) {
  if (state.animationRunning) return;
  state.animationRunning = true;
  const animate = (now) => {
    for (const row of state.animating) {
      const k = Math.min(1, (now - row.t0) / ANIMATION_MS);
      row.render(row.from + (row.target - row.from) * k);
      if (k >= 1) state.animating.delete(row);
    }
    if (state.animating.size) requestAnimationFrame(animate);
    else state.animationRunning = false;
  };
  requestAnimationFrame(animate);
}
