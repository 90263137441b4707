// The settings view: storage profiles (list, add, edit, delete, default, test), the custom copy format and
// (integrations.js) the editors' PicGo-compatible server.
// Secret fields are write-only: the daemon never sends them, the form shows whether one is saved, and an
// empty secret field keeps the saved one. Which providers there are, and their fields, the daemon says
// (list_provider_kinds); the editor's form is built from that once.

import { el } from "./format.js";
import * as integrations from "./integrations.js";
import { confirmDialog, toast } from "./notify.js";
import { providerFieldset, providerOption, shortName } from "./provider-fields.js";
import { RpcError, rpc } from "./rpc.js";
import { DEFAULT_TEMPLATE, formatLink, setTemplate, template } from "./share.js";

const DEFAULT_KEY_TEMPLATE = "{year}/{month}/{stem}-{hash8}{ext}";
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

function render(state, list) {
  const { dom } = state;
  state.list = list;
  state.profiles = list.profiles;
  const frag = document.createDocumentFragment();
  for (const p of state.profiles) {
    const result = el("p", { class: "result", role: "status", "aria-live": "polite" });
    const title = el("div", { class: "ptitle" },
      el("strong", { text: p.name }),
      el("span", { class: "tag", text: shortName(state.kinds?.find((k) => k.provider === p.provider), p.provider) }),
      p.default ? el("span", { class: "tag default", text: "default" }) : null);
    const buttons = el("div", { class: "pactions" },
      el("button", { type: "button", class: "btn small", "data-do": "test", "aria-label": `Test connection of ${p.name}`,
        text: "Test connection" }),
      el("button", { type: "button", class: "btn small", "data-do": "edit", "aria-label": `Edit ${p.name}`, text: "Edit" }),
      p.default ? null : el("button", { type: "button", class: "btn small", "data-do": "default",
        "aria-label": `Make ${p.name} the default`, text: "Make default" }),
      p.default ? null : el("button", { type: "button", class: "btn small danger", "data-do": "delete",
        "aria-label": `Delete ${p.name}`, text: "Delete" }));
    const li = el("li", { class: "profile", "data-name": p.name },
      el("div", { class: "pinfo" }, title, el("div", { class: "muted", text: p.summary || "" }), result), buttons);
    li._profile = p;
    frag.append(li);
  }
  dom.list.replaceChildren(frag);
}

function showResult(node, res) {
  node.textContent = `${res.ok ? "✓" : "✗"} ${res.message}`;
  node.dataset.ok = String(Boolean(res.ok));
}

async function onListClick(state, e) {
  const button = e.target.closest("button[data-do]");
  const li = button?.closest("li");
  const p = li?._profile;
  if (!p) return;
  const result = li.querySelector(".result");
  switch (button.dataset.do) {
    case "test":
      result.textContent = "Testing…";
      delete result.dataset.ok;
      button.disabled = true;
      try {
        showResult(result, await rpc("check_profile", { profile: p.name }));
      } catch (err) {
        showResult(result, { ok: false, message: err.message });
        state.ctx.report(err, { quiet: true });
      } finally {
        button.disabled = false;
      }
      break;
    case "edit":
      openEditor(state, p);
      break;
    case "default":
      await change(state, "set_default_profile", p.name, `${p.name} is now the default profile.`);
      break;
    case "delete":
      if (await confirmDialog({
        title: `Delete profile ${p.name}?`,
        text: `Its settings (and saved keys) are removed from config.toml. Files already uploaded stay where they are.`,
        yes: "Delete", no: "Keep it",
      })) await change(state, "delete_profile", p.name, `Deleted profile ${p.name}.`);
      break;
    default:
  }
}

async function change(state, method, name, done) {
  const { ctx } = state;
  try {
    const list = await rpc(method, { name });
    render(state, list);
    ctx.profilesChanged(list);
    toast(done);
  } catch (err) {
    ctx.report(err);
  }
}

// -- the editor --------------------------------------------------------------------------------------------
// The kinds of storage the daemon offers, fetched once (again after a failure) and built into the form.
function loadKinds(state) {
  state.kindsLoading ??= rpc("list_provider_kinds").then(({ kinds }) => {
    const { form, providerFields } = state.dom;
    state.kinds = kinds;
    form.elements.provider.replaceChildren(...kinds.map(providerOption));
    providerFields.replaceChildren(...kinds.map(providerFieldset));
    if (state.list) render(state, state.list); // the cards' tags
    return kinds;
  }, (err) => {
    state.kindsLoading = null;
    throw err;
  });
  return state.kindsLoading;
}

const IMAGE_KEYS = ["strip_metadata", "convert_to", "quality", "max_dimension", "dedup"];

function fieldsets(state) {
  return Array.from(state.dom.form.querySelectorAll("fieldset[data-provider]"));
}

function showProvider(state, provider) {
  for (const fs of fieldsets(state)) {
    const on = fs.dataset.provider === provider;
    fs.hidden = !on;
    fs.disabled = !on; // hidden fields neither submit nor take focus
  }
}

// The fields every provider has (links and key names) live outside the provider fieldsets.
function input(state, name) {
  return state.dom.form.querySelector(`details [name="${name}"]`);
}

async function openEditor(state, p) {
  const { dom } = state;
  try {
    await loadKinds(state);
  } catch (err) {
    state.ctx.report(err);
    return;
  }
  state.editing = p || null;
  dom.form.reset();
  dom.result.textContent = "";
  delete dom.result.dataset.ok;
  dom.title.textContent = p ? `Edit profile ${p.name}` : "Add profile";
  const name = dom.form.elements.name;
  name.value = p ? p.name : "";
  name.readOnly = Boolean(p);
  const provider = p ? p.provider : state.kinds[0]?.provider;
  dom.form.elements.provider.value = provider;
  showProvider(state, provider);
  for (const fs of fieldsets(state)) {
    for (const field of fs.querySelectorAll("input, select")) {
      if (field.hasAttribute("data-secret")) {
        const saved = p && p.provider === fs.dataset.provider && p[`${field.name}_set`];
        field.placeholder = saved ? "saved (leave empty to keep)" : "not set";
        continue;
      }
      let value = p && p.provider === fs.dataset.provider ? p[field.name] : "";
      if (field.name === "addressing_style" && value === "auto") value = "";
      if (field.name === "root" && value && value === state.ctx.info().files_root) value = "";
      field.value = value ?? "";
    }
  }
  const images = p?.images || state.ctx.info().images || {};
  for (const key of IMAGE_KEYS) {
    const value = images[key];
    input(state, `images.${key}`).value = value === undefined || value === 0 ? "" : String(value);
  }
  input(state, "public_base_url").value = p?.public_base_url || "";
  input(state, "key_template").value = p && p.key_template !== DEFAULT_KEY_TEMPLATE ? p.key_template : "";
  dom.form.querySelector("details").open = Boolean(p && (p.public_base_url || p.key_template !== DEFAULT_KEY_TEMPLATE));
  dom.dialog.showModal();
  (p ? dom.form.querySelector("fieldset:not([disabled]) input") : name).focus();
}

function collect(state) {
  const { dom } = state;
  const provider = dom.form.elements.provider.value;
  const fields = { provider };
  const fs = fieldsets(state).find((f) => f.dataset.provider === provider);
  for (const field of fs?.querySelectorAll("input, select") ?? []) {
    const value = field.value.trim();
    fields[field.name] = field.type === "number" && value !== "" ? Number(value) : value; // a number, not text
  }
  fields.public_base_url = input(state, "public_base_url").value.trim();
  fields.key_template = input(state, "key_template").value.trim();
  const images = {};
  for (const key of IMAGE_KEYS) {
    const value = input(state, `images.${key}`).value.trim();
    if (key === "dedup") images[key] = value !== "false";
    else if (key === "quality" || key === "max_dimension") images[key] = value === "" ? null : Number(value);
    else images[key] = value;
  }
  fields.images = images;
  return fields;
}

function checkName(state) {
  const name = state.dom.form.elements.name.value.trim();
  if (!NAME_RE.test(name)) return [name, "Name: use 1 to 64 letters, digits, - or _ (no spaces)."];
  if (!state.editing && state.profiles.some((p) => p.name === name)) {
    return [name, `There is already a profile named ${name}; edit it, or choose another name.`];
  }
  return [name, ""];
}

function formError(state, message) {
  const { dom } = state;
  dom.result.textContent = `✗ ${message}`;
  dom.result.dataset.ok = "false";
}

async function testDraft(state) {
  const { ctx, dom } = state;
  const [name, problem] = checkName(state);
  if (problem) return formError(state, problem);
  dom.result.textContent = "Testing…";
  delete dom.result.dataset.ok;
  dom.test.disabled = true;
  try {
    showResult(dom.result, await rpc("check_profile_draft", { name, profile: collect(state) }));
  } catch (err) {
    if (!(err instanceof RpcError)) ctx.report(err);
    formError(state, err.message);
  } finally {
    dom.test.disabled = false;
  }
  return undefined;
}

async function save(state, e) {
  const { ctx, dom } = state;
  e.preventDefault();
  const [name, problem] = checkName(state);
  if (problem) return formError(state, problem);
  dom.save.disabled = true;
  try {
    let list;
    try {
      list = await rpc("save_profile", { name, profile: collect(state) });
    } catch (err) {
      // The settings are valid but the store did not answer as it should: say why, and ask before saving.
      if (!(err instanceof RpcError) || !err.data?.check) throw err;
      showResult(dom.result, err.data.check);
      const anyway = await confirmDialog({
        title: `Save ${name} anyway?`,
        text: `The connection test failed: ${err.data.check.message} Uploads to this profile will fail until that is fixed.`,
        yes: "Save anyway", no: "Keep editing",
      });
      if (!anyway) return undefined;
      list = await rpc("save_profile", { name, profile: collect(state), force: true });
    }
    dom.dialog.close();
    render(state, list);
    ctx.profilesChanged(list);
    toast(`Saved profile ${name}.`);
  } catch (err) {
    if (!(err instanceof RpcError)) ctx.report(err);
    formError(state, err.message);
  } finally {
    dom.save.disabled = false;
  }
  return undefined;
}

// -- wiring -------------------------------------------------------------------------------------------------
function updatePreview(state) {
  const { dom } = state;
  dom.preview.textContent = formatLink("custom", "https://example.com/cat.png", "cat.png", dom.template.value || DEFAULT_TEMPLATE);
}

// Wire the view to the page. Returns what app.js drives it with.
export function init(ctx) {
  const dom = {
    list: document.getElementById("profile-list"),
    dialog: document.getElementById("profile-dialog"),
    form: document.getElementById("profile-form"),
    title: document.getElementById("profile-dialog-title"),
    result: document.getElementById("profile-result"),
    test: document.getElementById("profile-test"),
    save: document.getElementById("profile-save"),
    template: document.getElementById("template"),
    preview: document.getElementById("template-preview"),
    about: document.getElementById("about"),
    providerFields: document.getElementById("provider-fields"),
  };
  const state = {
    ctx,
    dom,
    profiles: [],
    editing: null, // the profile being edited, or null when adding
    list: null, // the last list_profiles answer shown
    kinds: null, // list_provider_kinds: [{provider, label, legend, fields}], in display order
    kindsLoading: null, // its request, while on its way or once answered
  };
  loadKinds(state).catch((err) => ctx.report(err, { quiet: true })); // openEditor asks again if this fails
  dom.list.addEventListener("click", (e) => onListClick(state, e));
  document.getElementById("add-profile").addEventListener("click", () => openEditor(state, null));
  document.getElementById("profile-cancel").addEventListener("click", () => dom.dialog.close());
  dom.form.elements.provider.addEventListener("change", (e) => {
    showProvider(state, e.target.value);
    dom.result.textContent = "";
  });
  dom.test.addEventListener("click", () => testDraft(state));
  dom.form.addEventListener("submit", (e) => save(state, e));
  dom.template.value = template();
  dom.template.placeholder = DEFAULT_TEMPLATE;
  dom.template.addEventListener("input", () => {
    setTemplate(dom.template.value.trim());
    updatePreview(state);
  });
  updatePreview(state);
  const editors = integrations.init(ctx);
  return {
    render: (list) => {
      render(state, list);
      editors.load();
    },
    showAbout: (info) => {
      dom.about.textContent = `pixlift ${info.version} · settings in ${info.config_file} · ` +
        (info.max_concurrent_small > info.max_concurrent
          ? `${info.max_concurrent} uploads at once (${info.max_concurrent_small} small files)`
          : `${info.max_concurrent} uploads at once`);
    },
  };
}
