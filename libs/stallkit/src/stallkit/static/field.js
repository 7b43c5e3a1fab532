// What the field pages (the vendor's and the patrol's) share: the language switch, calls to the
// service's API with problem+json errors, and small DOM helpers. No framework, no build step.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/**
 * The language of a page: Chinese unless English was chosen (kept in localStorage).
 * Elements with data-i18n="key" get the key's text, data-i18n-placeholder / data-i18n-label
 * their placeholder / aria-label.
 */
export function makeI18n(tables, storageKey) {
  const i18n = {
    lang: localStorage.getItem(storageKey) === "en" ? "en" : "zh",
    t(key, values = {}) {
      const table = tables[i18n.lang];
      let text = key in table ? table[key] : tables.zh[key] ?? key;
      for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
      return text;
    },
    apply(root = document) {
      document.documentElement.lang = i18n.lang === "en" ? "en" : "zh-CN";
      for (const el of $$("[data-i18n]", root)) el.textContent = i18n.t(el.dataset.i18n);
      for (const el of $$("[data-i18n-placeholder]", root)) el.placeholder = i18n.t(el.dataset.i18nPlaceholder);
      for (const el of $$("[data-i18n-label]", root)) el.setAttribute("aria-label", i18n.t(el.dataset.i18nLabel));
    },
    toggle() {
      i18n.lang = i18n.lang === "en" ? "zh" : "en";
      localStorage.setItem(storageKey, i18n.lang);
      i18n.apply();
    },
    acceptLanguage() {
      return i18n.lang === "en" ? "en" : "zh-CN";
    },
  };
  return i18n;
}

/** A failed call: the problem+json body (code, title, detail) or a network failure. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || problem.code || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem.code || "unknown";
  }
}

/** Thrown when the request never reached the service (offline, network down). */
export class OfflineError extends Error {}

/**
 * Calls the API. JSON in and out; `body` may be a Blob (sent as is with its type).
 * Resolves to the parsed body (null for 204), rejects with ApiError or OfflineError.
 */
export async function api(path, { method = "GET", body, token, lang = "zh-CN", headers = {} } = {}) {
  const sent = { Accept: "application/json", "Accept-Language": lang, ...headers };
  if (token) sent.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof Blob) {
    payload = body;
    sent["Content-Type"] = body.type || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    sent["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: payload, cache: "no-store" });
  } catch (error) {
    throw new OfflineError(error.message);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    throw new ApiError(response.status, typeof data === "object" && data ? data : { detail: String(data) });
  }
  return data;
}

/** A random id for an Idempotency-Key (crypto.randomUUID needs a secure context). */
export function newKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Shows `text` in a status line (role=status or alert), with a kind for its colour. */
export function say(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

/** A date and time in the page's language, Asia/Shanghai (the markets' time). */
export function formatTime(iso, lang, { date = true } = {}) {
  const options = { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false };
  if (date) Object.assign(options, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", options).format(new Date(iso));
}

/** Creates an element with attributes and children (text or elements). */
export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
