// imgdup admin page, the session: nothing is fetched before the API accepts the caller
// (GET /api/v1/whoami). The credential lives in sessionStorage (this tab only) and goes out as
// `Authorization: Bearer` on every fetch, thumbnails included (fetched, then shown from blob: URLs),
// because an <img src> cannot carry a header. Loaded before admin.js, which it calls once logged in.
"use strict";

const STORE = { token: "imgdup.credential", moderator: "imgdup.moderator" };
const $ = (id) => document.getElementById(id);

// caller: GET /api/v1/whoami's answer once logged in; thumbs: image id -> blob URL promise.
const state = { offset: 0, total: 0, caller: null, thumbs: new Map() };

class AuthError extends Error {}

// ------------------------------------------------------------------------------- credentials

function credential() {
  return sessionStorage.getItem(STORE.token) || "";
}

function authHeaders(extra, token = credential()) {
  const headers = { accept: "application/json", ...(extra || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: authHeaders() });
  if (response.status === 401) {
    showLogin("The API no longer accepts your credential: log in again.");
    throw new AuthError("not logged in");
  }
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

function canModerate() {
  return Boolean(state.caller && state.caller.access.includes("moderate"));
}

// One fetch per image per render, shared by the grid and the pair rows.
function thumbnailUrl(imageId) {
  if (!state.thumbs.has(imageId)) {
    state.thumbs.set(imageId, fetch(`/api/v1/images/${encodeURIComponent(imageId)}/thumbnail`, {
      headers: authHeaders({ accept: "image/jpeg" }),
    }).then(async (response) => {
      if (!response.ok) throw new Error(`thumbnail ${response.status}`);
      return URL.createObjectURL(await response.blob());
    }));
  }
  return state.thumbs.get(imageId);
}

function thumbnail(imageId, attrs, link) {
  const img = el("img", attrs);
  thumbnailUrl(imageId).then((url) => {
    img.src = url;
    if (link) link.href = url;
  }).catch(() => { img.classList.add("missing"); });
  return img;
}

function forgetThumbnails(previous) {
  for (const url of previous.values()) url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
}

// ------------------------------------------------------------------------------- log in / out

async function whoami(token) {
  const response = await fetch("/api/v1/whoami", { headers: authHeaders({}, token) });
  if (response.ok) return { caller: await response.json() };
  if (response.status === 429) {
    const wait = response.headers.get("retry-after") || "a few";
    return { error: `Too many wrong credentials from this address: try again in ${wait} s.` };
  }
  if (response.status === 401) return { error: token ? "The API does not accept this credential." : null };
  return { error: `The API answered ${response.status}.` };
}

function clearData() {
  $("clusters").replaceChildren();
  $("stats-body").replaceChildren();
  $("stats-window").textContent = "";
  $("summary").textContent = "";
  forgetThumbnails(state.thumbs);
  state.thumbs = new Map();
}

function showLogin(message) {
  sessionStorage.removeItem(STORE.token);
  state.caller = null;
  clearData();
  $("app").hidden = true;
  $("identity").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-error").hidden = !message;
  $("token").value = "";
  // Forget a name filled in from the last caller's credential; keep one the user typed.
  $("moderator").value = localStorage.getItem(STORE.moderator) || "";
  $("token").focus();
}

function enter(caller) {
  state.caller = caller;
  $("login").hidden = true;
  $("app").hidden = false;
  $("identity").hidden = false;
  const who = caller.via === "open"
    ? "open API (no credentials configured)"
    : `${caller.name} · ${caller.roles.join("+")}${canModerate() ? "" : " · read-only"}`;
  $("who").textContent = who;
  $("moderator").disabled = !canModerate();
  if (!$("moderator").value && caller.via === "credential") $("moderator").value = caller.name;
  loadStats();
  loadClusters();
}

async function logIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  $("login-submit").disabled = true;
  try {
    const { caller, error } = await whoami(token);
    if (!caller) {
      $("login-error").textContent = error || "The API does not accept this credential.";
      $("login-error").hidden = false;
      return;
    }
    sessionStorage.setItem(STORE.token, token);
    $("token").value = "";
    enter(caller);
  } finally {
    $("login-submit").disabled = false;
  }
}

async function start() {
  // A credential kept from earlier in this tab, or none (an open API, or a proxy that vouches).
  const { caller, error } = await whoami(credential());
  if (caller) enter(caller);
  else showLogin(error);
}
