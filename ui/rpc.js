// The daemon's JSON-RPC endpoint, as the page uses it (the session cookie authenticates; the browser sends
// our own Origin on POSTs, which the daemon requires for cookie sessions).

export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

// HTTP 401: no (valid) session cookie. The page shows how to get one.
export class SignedOut extends Error {}

// The daemon did not answer at all: stopped, restarting, or the network is gone.
export class Offline extends Error {}

let nextId = 1;
const signedOutListeners = [];

export function onSignedOut(fn) {
  signedOutListeners.push(fn);
}

function signedOut() {
  for (const fn of signedOutListeners) fn();
  return new SignedOut("This browser has no pixlift session.");
}

async function post(payload) {
  let resp;
  try {
    resp = await fetch("/rpc", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new Offline("pixlift is not answering.");
  }
  if (resp.status === 401) throw signedOut();
  if (!resp.ok) throw new RpcError(resp.status, await httpMessage(resp));
  try {
    return resp.status === 204 ? null : await resp.json();
  } catch {
    throw new Offline("pixlift's answer was cut off.");
  }
}

export async function rpc(method, params) {
  const payload = { jsonrpc: "2.0", id: nextId++, method };
  if (params !== undefined) payload.params = params;
  const body = await post(payload);
  if (body.error) throw new RpcError(body.error.code, body.error.message, body.error.data);
  return body.result;
}

// Several calls in one request; each entry is {result} or {error: RpcError}, in input order.
export async function rpcBatch(calls) {
  const payload = calls.map(([method, params]) => ({ jsonrpc: "2.0", id: nextId++, method, params }));
  const body = (await post(payload)) || [];
  const byId = new Map(body.map((r) => [r.id, r]));
  return payload.map((p) => {
    const r = byId.get(p.id);
    if (!r) return { error: new RpcError(-32603, "No answer for this call.") };
    if (r.error) return { error: new RpcError(r.error.code, r.error.message, r.error.data) };
    return { result: r.result };
  });
}

// The message a person should read from an HTTP error answer: our JSON errors or aiohttp's text ones.
export async function httpMessage(resp) {
  let text = "";
  try {
    text = await resp.text();
  } catch {
    /* the body is gone: fall back to the status line */
  }
  try {
    const body = JSON.parse(text);
    const msg = body?.error?.message;
    if (msg) return msg;
  } catch {
    /* not JSON */
  }
  text = text.replace(/^\d{3}:\s*/, "").trim();
  return text || `pixlift answered ${resp.status} ${resp.statusText}`.trim();
}

export function isSignedOut(err) {
  return err instanceof SignedOut;
}
