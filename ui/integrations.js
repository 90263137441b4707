// The settings view's "Editors" panel: the PicGo-compatible server that Typora and Obsidian call.
// The key is write-only, like a profile's secrets: the daemon says only whether one is saved, an empty field
// keeps it, and "Remove the saved key" drops it. Saving answers once the server listens (or says why not).

import { toast } from "./notify.js";
import { RpcError, rpc } from "./rpc.js";

function describe(info) {
  if (!info.picgo_server) return { ok: null, text: "Off. No editor can reach pixlift this way." };
  if (info.picgo_error) return { ok: false, text: info.picgo_error };
  const key = info.picgo_key_set ? "?key=YOUR-KEY" : "";
  return { ok: true, text: `Listening. In the editor, set the upload server to http://127.0.0.1:${info.picgo_port}/upload${key}` };
}

function render(dom, info) {
  const f = dom.form.elements;
  f.picgo_server.checked = info.picgo_server;
  f.picgo_port.value = info.picgo_port;
  f.picgo_key.value = "";
  f.picgo_key.placeholder = info.picgo_key_set ? "saved (leave empty to keep it)" : "not set";
  f.remove_picgo_key.checked = false;
  dom.removeRow.hidden = !info.picgo_key_set;
  dom.keyState.textContent = info.picgo_key_set
    ? "Editors must add ?key=… to the upload URL."
    : "Without a key, any program on this computer may upload through it (web pages never can).";
  const { ok, text } = describe(info);
  dom.status.textContent = ok === null ? text : `${ok ? "✓" : "✗"} ${text}`;
  if (ok === null) delete dom.status.dataset.ok;
  else dom.status.dataset.ok = String(ok);
}

async function save(dom, ctx, e) {
  e.preventDefault();
  const f = dom.form.elements;
  const params = { picgo_server: f.picgo_server.checked, picgo_port: Number(f.picgo_port.value) };
  if (f.picgo_key.value) params.picgo_key = f.picgo_key.value;
  if (f.remove_picgo_key.checked) params.remove_picgo_key = true;
  const button = dom.form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const info = await rpc("save_integrations", params);
    render(dom, info);
    toast(info.picgo_error ? "Saved, but the server could not start." : "Saved.", info.picgo_error ? "error" : "info");
  } catch (err) {
    if (err instanceof RpcError) {
      dom.status.textContent = `✗ ${err.message}`;
      dom.status.dataset.ok = "false";
    } else {
      ctx.report(err);
    }
  } finally {
    button.disabled = false;
  }
}

export function init(ctx) {
  const dom = {
    form: document.getElementById("integrations-form"),
    status: document.getElementById("integrations-status"),
    keyState: document.getElementById("picgo-key-state"),
    removeRow: document.getElementById("picgo-key-remove-row"),
  };
  dom.form.addEventListener("submit", (e) => save(dom, ctx, e));
  return {
    load: () => rpc("get_integrations").then((info) => render(dom, info), (err) => ctx.report(err, { quiet: true })),
  };
}
