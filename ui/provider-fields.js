// The profile editor's provider-specific fields, built from the kinds of storage the daemon serves
// (list_provider_kinds), so a provider the daemon gains needs no change here.
//
// Kind = {provider, label, legend, fields: [{name, label, input: text|url|password|select|number, secret, placeholder,
// choices: [[value, label], ...] | null}]}. Secret fields are write-only: the daemon never sends their value,
// only "<name>_set" on each profile.

import { el } from "./format.js";

// The short name on a profile's card ("S3", "OSS", "Local").
export function shortName(kind, provider) {
  return kind?.legend || provider;
}

export function providerOption(kind) {
  return el("option", { value: kind.provider, text: kind.label });
}

function control(f) {
  if (f.input === "select") {
    return el("select", { name: f.name },
      ...(f.choices || []).map(([value, label]) => el("option", { value, text: label })));
  }
  if (f.input === "password") {
    // new-password: the browser must not fill in a saved login here, which would overwrite the saved secret.
    return el("input", { name: f.name, type: "password", "data-secret": f.secret, autocomplete: "new-password",
      placeholder: f.placeholder || null });
  }
  const type = f.input === "url" || f.input === "number" ? f.input : null;
  return el("input", { name: f.name, type, "data-secret": f.secret,
    autocomplete: "off", placeholder: f.placeholder || null, spellcheck: "false" });
}

// One fieldset per kind, hidden until its provider is chosen; a grid when it has more than one field.
export function providerFieldset(kind) {
  const labels = kind.fields.map((f) => el("label", { class: "field" }, el("span", { text: f.label }), control(f)));
  return el("fieldset", { "data-provider": kind.provider, hidden: true },
    el("legend", { text: kind.label }),
    labels.length > 1 ? el("div", { class: "grid" }, ...labels) : labels[0]);
}
