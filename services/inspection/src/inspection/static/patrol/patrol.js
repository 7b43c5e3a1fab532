// The patrol page. Plain JavaScript modules, no build step; it talks only to this service:
//   GET  /v1/auth/whoami       the staff token (patrol; a district office or admin may sign in)
//   GET  /v1/violations        the "1+1" catalogue (kept in localStorage for offline use)
//   POST /v1/evidence          a photo, raw bytes; answers its SHA-256
//   POST /v1/scans             a scan, with its own Idempotency-Key and observed_at
//   POST /v1/street-reports    street vending here; answers the nearest markets with room
//
// The token is kept in this tab's sessionStorage, not localStorage: a patrol phone is often
// shared or mislaid, and a staff token should not outlive the tab it was pasted into. Nothing
// is lost by that: scans not yet sent are in IndexedDB (queue.js) and go as soon as their
// officer signs in again. The language choice is kept in localStorage.
//
// Every scan goes through the queue: it is written there first (with the time it was taken and
// a new Idempotency-Key), then sent; it leaves the queue once the service answered it, or
// refused it for good (a 4xx: its problem is shown). A request that never reached the service
// (OfflineError) or a service in trouble (5xx) leaves it queued, to be sent when the network is
// back (the `online` event), at page load, every half minute while some wait, or on "send now".

import { $, $$, ApiError, OfflineError, api, formatTime, h, makeI18n, newKey, say } from "../kit/field.js";
import { Scanner } from "../kit/scanner.js";
import * as queue from "./queue.js";
import { OUTCOME_KINDS, TABLES } from "./texts.js";

const SESSION_KEY = "patrol.session";
const CATALOGUE_KEY = "patrol.violations";
const ROLES = ["patrol", "district", "admin"];
const VENDOR_ID = /^vd_[0-9A-Za-z_-]{4,40}$/;
const STALL_ID = /^[A-Z]{2}-\d{2}-[A-Z]\d{3}$/;
const MAX_PHOTOS = 5;
const PHOTO_TYPES = ["image/jpeg", "image/png"];
/** A phone photo above this is scaled down before upload (the service takes at most 5 MiB). */
const PHOTO_SHRINK_BYTES = 1_500_000;
const PHOTO_MAX_SIDE = 2048;
const RETRY_MS = 30_000;
const RESULTS_SHOWN = 10;

const i18n = makeI18n(TABLES, "patrol.lang");
const t = (key, values) => i18n.t(key, values);

const state = {
  session: readSession(),
  catalogue: readCatalogue(),
  photos: [], // [{blob, url}]
  outcome: null, // what the outcome box shows: {answer} | {queued: job} | null
  results: [], // latest answers: [{job, answer} | {job, problem}]
  markets: null, // the last street report's answer
  queued: [],
};
const delivered = new Map(); // Idempotency-Key -> the result of sending it, this page's life
let chain = Promise.resolve();
let scanner = null;

// -- small helpers ----------------------------------------------------------------------------

function readSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return session && session.token && session.who ? session : null;
  } catch {
    return null;
  }
}

function readCatalogue() {
  try {
    return JSON.parse(localStorage.getItem(CATALOGUE_KEY) || "null");
  } catch {
    return null;
  }
}

/** Runs `work` after whatever sending is under way: one request for the queue at a time. */
function serial(work) {
  const run = chain.then(work, work);
  chain = run.catch(() => {});
  return run;
}

/** Now, as ISO 8601 with the phone's offset (2026-11-20T18:03:12.345+08:00). */
function isoNow(date = new Date()) {
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `.${pad(date.getMilliseconds(), 3)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/** A time with seconds, in the markets' time zone (two scans a minute apart must differ). */
function clock(iso) {
  return new Intl.DateTimeFormat(i18n.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: "Asia/Shanghai",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  }).format(new Date(iso));
}

function problemText(error) {
  if (error instanceof ApiError) {
    const { title, detail } = error.problem;
    if (title && detail && detail !== title) return `${title}: ${detail}`;
    return title || detail || error.message;
  }
  return error && error.message ? error.message : String(error);
}

function stallOfCode(code) {
  const parts = code.trim().split(".");
  return parts.length === 4 && STALL_ID.test(parts[1]) ? parts[1] : null;
}

function violationName(type) {
  const found = (state.catalogue || []).find((v) => v.type === type);
  if (!found) return type;
  return i18n.lang === "en" ? found.name_en : found.name_zh;
}

function call(path, options = {}) {
  return api(path, { token: state.session?.token, lang: i18n.acceptLanguage(), ...options });
}

// -- sign-in ----------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const error = $("#sign-in-error");
  const token = $("#token").value.trim();
  say(error, t("signingIn"), "info");
  let who;
  try {
    who = await api("/v1/auth/whoami", { token, lang: i18n.acceptLanguage() });
  } catch (failure) {
    say(error, t("tokenRefused", { detail: problemText(failure) }), "error");
    return;
  }
  if (!ROLES.includes(who.role)) {
    say(error, t("roleRefused", { role: who.role }), "error");
    return;
  }
  say(error, "");
  $("#token").value = "";
  state.session = { token, who };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  await enter();
}

function signOut() {
  stopCamera();
  sessionStorage.removeItem(SESSION_KEY);
  state.session = null;
  state.outcome = null;
  state.results = [];
  $("#work").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  renderOutcome();
}

/** Shows the work views for the signed-in officer (also without a network). */
async function enter() {
  $("#sign-in").hidden = true;
  $("#work").hidden = false;
  $("#sign-out").hidden = false;
  renderWho();
  renderCatalogue();
  await renderQueue();
  loadCatalogue();
  flush();
}

/** At page load with a stored session: is the token still good? (Offline: trust it.) */
async function recheck() {
  try {
    const who = await call("/v1/auth/whoami");
    state.session.who = who;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
    renderWho();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut();
      say($("#sign-in-error"), t("queueSignIn"), "error");
    }
  }
}

function renderWho() {
  if (!state.session) return;
  const { sub, role, district } = state.session.who;
  let text = t("signedInAs", { sub, role: t(`role.${role}`), district: district ? ` · ${district}` : "" });
  if (role === "district") text += ` ${t("districtRoleHint")}`;
  $("#who").textContent = text;
}

// -- the violation catalogue --------------------------------------------------------------------

async function loadCatalogue() {
  try {
    state.catalogue = await call("/v1/violations");
    localStorage.setItem(CATALOGUE_KEY, JSON.stringify(state.catalogue));
  } catch {
    // offline: the copy from last time, if any
  }
  renderCatalogue();
}

function renderCatalogue() {
  const box = $("#violations");
  const checked = new Set(selectedViolations());
  if (!state.catalogue) {
    box.replaceChildren(h("p", { class: "hint" }, t(navigator.onLine ? "violationsLoading" : "violationsUnavailable")));
    return;
  }
  box.replaceChildren(
    ...state.catalogue.map((v) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "violation", value: v.type, checked: checked.has(v.type) }),
        i18n.lang === "en" ? v.name_en : v.name_zh,
        h("small", {}, `(${t(v.exempt ? "violationWarning" : "violationCase")})`),
      ),
    ),
  );
  countViolations();
}

function selectedViolations() {
  return $$("input[name=violation]:checked").map((input) => input.value);
}

function countViolations() {
  $("#violations-count").textContent = String(selectedViolations().length);
}

// -- photos -----------------------------------------------------------------------------------

async function addPhotos(event) {
  const error = $("#scan-error");
  say(error, "");
  for (const file of [...event.target.files]) {
    if (state.photos.length >= MAX_PHOTOS) {
      say(error, t("photoTooMany"), "error");
      break;
    }
    if (!PHOTO_TYPES.includes(file.type)) {
      say(error, t("photoType"), "error");
      continue;
    }
    const blob = await shrink(file);
    state.photos.push({ blob, url: URL.createObjectURL(blob) });
  }
  event.target.value = "";
  renderPhotos();
}

/** A large phone photo scaled down to a JPEG of at most PHOTO_MAX_SIDE pixels a side. */
async function shrink(file) {
  if (file.size <= PHOTO_SHRINK_BYTES || typeof createImageBitmap !== "function") return file;
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const smaller = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    return smaller && smaller.size < file.size ? smaller : file;
  } catch {
    return file;
  }
}

function renderPhotos() {
  $("#photos").replaceChildren(
    ...state.photos.map((photo, n) =>
      h(
        "li",
        {},
        h("img", { src: photo.url, alt: t("photoAlt", { n: n + 1 }) }),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              URL.revokeObjectURL(photo.url);
              state.photos.splice(n, 1);
              renderPhotos();
            },
          },
          `${t("photoRemove")} ${n + 1}`,
        ),
      ),
    ),
  );
}

// -- a scan -----------------------------------------------------------------------------------

/** What the patrol entered about the stall, checked; null (and the reason shown) if wrong. */
function readSeen() {
  const error = $("#scan-error");
  const occupied = $("input[name=occupied]:checked").value === "yes";
  const vendorId = $("#vendor-id").value.trim();
  const identity = $("#identity-number").value.trim();
  const stallId = $("#stall-id").value.trim().toUpperCase();
  const violations = selectedViolations();
  let problem = null;
  if (vendorId && !VENDOR_ID.test(vendorId)) problem = "vendorInvalid";
  else if (stallId && !STALL_ID.test(stallId)) problem = "stallInvalid";
  else if ((occupied || violations.length) && !vendorId && !identity) problem = "whoMissing";
  if (problem) {
    say(error, t(problem), "error");
    return null;
  }
  say(error, "");
  const body = { occupied, violations, note: $("#note").value.trim() };
  if (vendorId) body.vendor_id = vendorId;
  if (identity) body.identity_number = identity; // on the phone only until sent
  if (stallId) body.stall_id = stallId;
  return { body, photos: state.photos.map((p) => p.blob) };
}

function clearSeen() {
  $("input[name=occupied][value=yes]").checked = true;
  for (const id of ["#vendor-id", "#identity-number", "#stall-id", "#note", "#code"]) $(id).value = "";
  for (const input of $$("input[name=violation]")) input.checked = false;
  countViolations();
  for (const photo of state.photos) URL.revokeObjectURL(photo.url);
  state.photos = [];
  renderPhotos();
}

/** A code was read (camera) or typed: queue the scan at this moment, then try to send it. */
async function takeScan(code) {
  const observedAt = isoNow();
  const seen = readSeen();
  if (!seen || !state.session) return false;
  const job = {
    key: newKey("scan"),
    sub: state.session.who.sub,
    observed_at: observedAt,
    queued_at: observedAt,
    body: { code: code.trim(), ...seen.body },
    photos: seen.photos,
    attempts: 0,
  };
  await queue.put(job);
  clearSeen();
  await renderQueue();
  showSending();
  const result = await serial(() => deliver(job));
  if (result.status === "sent") state.outcome = { answer: result.answer };
  else if (result.status === "refused") state.outcome = null;
  else state.outcome = { queued: job };
  if (result.status === "refused") say($("#scan-error"), problemText(result.error), "error");
  if (result.status === "signin") say($("#scan-error"), t("queueSignIn"), "error");
  renderOutcome();
  await renderQueue();
  $("#outcome:not([hidden]), #scan-error:not([hidden])")?.scrollIntoView({ block: "center" });
  return true;
}

/**
 * Sends one queued scan (its photos first, then the scan with their SHA-256). Resolves to
 * {status: "sent", answer} | {status: "refused", error} | {status: "offline" | "signin" | "later"}.
 */
async function deliver(job) {
  if (delivered.has(job.key)) return delivered.get(job.key);
  let result;
  try {
    const photos = [];
    for (const blob of job.photos || []) photos.push((await call("/v1/evidence", { method: "POST", body: blob })).sha256);
    const answer = await call("/v1/scans", {
      method: "POST",
      headers: { "Idempotency-Key": job.key },
      body: { ...job.body, observed_at: job.observed_at, photos },
    });
    result = { status: "sent", answer };
  } catch (error) {
    if (error instanceof OfflineError) return { status: "offline" };
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return { status: "signin" };
    if (error.status >= 500 || error.status === 408 || error.status === 429) {
      await queue.put({ ...job, attempts: job.attempts + 1, last_error: problemText(error) });
      return { status: "later" };
    }
    result = { status: "refused", error };
  }
  await queue.remove(job.key);
  delivered.set(job.key, result);
  state.results.unshift({ job, ...result });
  state.results.length = Math.min(state.results.length, RESULTS_SHOWN);
  renderResults();
  if (state.outcome?.queued?.key === job.key) {
    // the scan shown as waiting has gone: show what it came to
    state.outcome = result.answer ? { answer: result.answer } : null;
    renderOutcome();
  }
  return result;
}

/** Sends the signed-in officer's queued scans, oldest first, until one cannot be sent now. */
function flush() {
  if (!state.session) return Promise.resolve();
  return serial(async () => {
    const status = $("#queue-status");
    const mine = (await queue.queued()).filter((job) => job.sub === state.session?.who.sub);
    let sent = 0;
    let stopped = null;
    for (const job of mine) {
      const result = await deliver(job);
      if (result.status === "sent") sent += 1;
      else if (result.status !== "refused") {
        stopped = result.status;
        break;
      }
    }
    if (stopped) say(status, t({ offline: "queueOffline", signin: "queueSignIn", later: "queueServer" }[stopped]), stopped === "signin" ? "error" : "warn");
    else if (mine.length) say(status, t("queueSent", { n: sent }), "ok");
    await renderQueue();
  });
}

// -- what the page shows ----------------------------------------------------------------------

function showSending() {
  const box = $("#outcome");
  box.hidden = false;
  box.dataset.kind = "info";
  box.dataset.outcome = "sending";
  box.textContent = t("sending");
  $("#outcome-details").hidden = true;
}

function renderOutcome() {
  const box = $("#outcome");
  const details = $("#outcome-details");
  const shown = state.outcome;
  box.hidden = !shown;
  details.hidden = !shown;
  if (!shown) return;
  if (shown.queued) {
    box.dataset.kind = "info";
    box.dataset.outcome = "queued";
    box.replaceChildren(t("queuedOutcome"), h("small", {}, t("queuedHelp", { time: clock(shown.queued.observed_at) })));
    details.replaceChildren();
    return;
  }
  const answer = shown.answer;
  box.dataset.kind = OUTCOME_KINDS[answer.outcome] || "info";
  box.dataset.outcome = answer.outcome;
  box.replaceChildren(t(`outcome.${answer.outcome}`), h("small", {}, t(`outcome.${answer.outcome}.help`)));
  const lines = [h("p", {}, `${t("stallOf", { stall: answer.stall_id })} · ${clock(answer.observed_at)}`)];
  if (answer.expected && answer.expected.vendor_id !== answer.vendor_id) {
    lines.push(h("p", {}, t("expectedVendor", { vendor: answer.expected.vendor_id })));
  }
  for (const w of answer.warnings || []) {
    lines.push(h("p", {}, h("span", { class: "badge warn" }, t("warningIssued", { name: i18n.lang === "en" ? w.violation_en : w.violation_zh }))));
  }
  for (const c of answer.cases || []) {
    const name = violationName(c.violation);
    lines.push(h("p", {}, h("span", { class: "badge bad" }, t("caseOpened", { name, min: c.penalty_min_cny, max: c.penalty_max_cny }))));
  }
  details.replaceChildren(...lines);
}

function describe(job) {
  const body = job.body;
  const stall = body.stall_id || stallOfCode(body.code);
  const who = body.vendor_id || (body.identity_number ? "***" : "");
  const parts = [t("queuedAt", { time: clock(job.observed_at) })];
  parts.push(body.occupied ? t("occupiedBy", { who }) : t("vacant"));
  if (job.photos && job.photos.length) parts.push(t("withPhotos", { n: job.photos.length }));
  return { title: stall ? t("stallOf", { stall }) : t("codeShort", { code: body.code.slice(0, 24) }), meta: parts.join(" · ") };
}

async function renderQueue() {
  try {
    state.queued = await queue.queued();
  } catch {
    state.queued = [];
  }
  const me = state.session?.who.sub;
  $("#queue-count").textContent = String(state.queued.length);
  $("#queue-badge").textContent = String(state.queued.length);
  $("#queue").replaceChildren(
    ...(state.queued.length
      ? state.queued.map((job) => {
          const { title, meta } = describe(job);
          return h(
            "li",
            { "data-key": job.key, "data-observed-at": job.observed_at },
            h("div", { class: "title" }, title),
            h("div", { class: "meta" }, meta),
            job.sub !== me ? h("div", { class: "meta" }, t("queueOther", { sub: job.sub })) : null,
            job.last_error ? h("div", { class: "meta" }, job.last_error) : null,
          );
        })
      : [h("li", { class: "empty" }, t("queueEmpty"))]),
  );
}

function renderResults() {
  $("#sent-empty").hidden = state.results.length > 0;
  $("#sent").replaceChildren(
    ...state.results.map((result) => {
      const { title, meta } = describe(result.job);
      const badge = result.answer
        ? h("span", { class: `badge ${OUTCOME_KINDS[result.answer.outcome] || ""}` }, t(`outcome.${result.answer.outcome}`))
        : h("span", { class: "badge bad" }, t("refused"));
      return h(
        "li",
        { "data-key": result.job.key, "data-outcome": result.answer ? result.answer.outcome : "refused" },
        h("div", { class: "title" }, title, " ", badge),
        h("div", { class: "meta" }, meta),
        result.error ? h("div", { class: "meta" }, problemText(result.error)) : null,
      );
    }),
  );
}

function showNetwork() {
  const banner = $("#network");
  if (navigator.onLine) say(banner, "");
  else say(banner, t("offline"), "warn");
}

function showTab(name) {
  for (const button of $$("nav.tabs button")) {
    if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const view of $$("[data-view]")) view.hidden = view.dataset.view !== name;
  if (name !== "scan") stopCamera();
}

// -- the camera -------------------------------------------------------------------------------

async function startCamera() {
  const status = $("#camera-status");
  if (!readSeen()) return;
  if (!Scanner.available()) {
    say(status, t("cameraUnavailable"), "warn");
    return;
  }
  scanner ??= new Scanner($("#video"), {
    onCode: async (text) => {
      stopCamera();
      await takeScan(text);
    },
    onError: () => {
      stopCamera();
      say(status, t("cameraUnavailable"), "warn");
    },
  });
  $("#camera").hidden = false;
  $("#scan-stop").hidden = false;
  $("#scan-start").hidden = true;
  say(status, t("cameraStarting"), "info");
  $("#camera").scrollIntoView({ block: "start" });
  try {
    await scanner.start();
    say(status, t("cameraAim"), "info");
  } catch {
    stopCamera();
    say(status, t("cameraUnavailable"), "warn");
  }
}

function stopCamera() {
  if (scanner) scanner.stop();
  $("#camera").hidden = true;
  $("#scan-stop").hidden = true;
  $("#scan-start").hidden = false;
  say($("#camera-status"), "");
}

async function submitCode(event) {
  event.preventDefault();
  const code = $("#code").value.trim();
  if (code) await takeScan(code);
}

// -- street vending ---------------------------------------------------------------------------

function locate() {
  const status = $("#street-status");
  if (!navigator.geolocation) {
    say(status, t("locateFailed"), "warn");
    return;
  }
  say(status, t("locating"), "info");
  navigator.geolocation.getCurrentPosition(
    (position) => {
      $("#lat").value = position.coords.latitude.toFixed(6);
      $("#lon").value = position.coords.longitude.toFixed(6);
      say(status, t("located", { m: Math.round(position.coords.accuracy || 0) }), "ok");
    },
    () => say(status, t("locateFailed"), "warn"),
    { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 },
  );
}

async function reportStreet(event) {
  event.preventDefault();
  const status = $("#street-status");
  const vendorId = $("#street-vendor").value.trim();
  if (vendorId && !VENDOR_ID.test(vendorId)) {
    say(status, t("vendorInvalid"), "error");
    return;
  }
  const body = {
    location: { lat: Number($("#lat").value), lon: Number($("#lon").value) },
    observed_at: isoNow(),
  };
  if ($("#category").value) body.category = $("#category").value;
  if (vendorId) body.vendor_id = vendorId;
  say(status, t("sending"), "info");
  try {
    state.markets = await call("/v1/street-reports", {
      method: "POST",
      headers: { "Idempotency-Key": newKey("street") },
      body,
    });
  } catch (error) {
    say(status, error instanceof OfflineError ? t("streetOffline") : problemText(error), "error");
    return;
  }
  $("#street-vendor").value = "";
  renderMarkets();
}

function distance(km) {
  return km < 1 ? t("metres", { m: Math.round(km * 1000) }) : t("kilometres", { km: km.toFixed(1) });
}

function renderMarkets() {
  const report = state.markets;
  if (!report) return;
  say($("#street-status"), t(report.markets.length ? "streetRecorded" : "streetNoMarkets"), "ok");
  $("#markets-title").hidden = !report.markets.length;
  $("#markets").replaceChildren(
    ...report.markets.map((m) => {
      const name = (i18n.lang === "en" ? m.name_en : m.name_zh) || m.name_zh || m.market_id;
      const window = m.open_now ? t("openNow") : t("opensAt", { time: formatTime(m.starts_at, i18n.lang) });
      return h(
        "li",
        { "data-market": m.market_id },
        h("div", { class: "title" }, name),
        h("div", { class: "meta" }, t("marketLine", { distance: distance(m.distance_km), free: m.free_stalls, window })),
      );
    }),
  );
}

// -- start ------------------------------------------------------------------------------------

function switchLanguage() {
  i18n.toggle();
  renderWho();
  renderCatalogue();
  renderPhotos();
  renderOutcome();
  renderResults();
  renderMarkets();
  renderQueue();
  showNetwork();
}

function start() {
  i18n.apply();
  $("#language").addEventListener("click", switchLanguage);
  $("#sign-out").addEventListener("click", signOut);
  $("#sign-in-form").addEventListener("submit", signIn);
  for (const button of $$("nav.tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#violations").addEventListener("change", countViolations);
  $("#photo").addEventListener("change", addPhotos);
  $("#scan-start").addEventListener("click", startCamera);
  $("#scan-stop").addEventListener("click", stopCamera);
  $("#manual-form").addEventListener("submit", submitCode);
  $("#send-now").addEventListener("click", flush);
  $("#locate").addEventListener("click", locate);
  $("#street-form").addEventListener("submit", reportStreet);
  window.addEventListener("online", () => {
    showNetwork();
    flush();
  });
  window.addEventListener("offline", showNetwork);
  setInterval(() => {
    if (state.session && navigator.onLine && state.queued.length) flush();
  }, RETRY_MS);
  showNetwork();
  if (state.session) {
    enter();
    if (navigator.onLine) recheck();
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {
      // no worker (a private window, an old browser): the page works online all the same
    });
  }
  document.body.dataset.ready = "true";
}

start();
