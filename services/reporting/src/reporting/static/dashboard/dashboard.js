// The district dashboard. Plain JavaScript, no build step; it talks only to this service:
//   GET /v1/auth/whoami           the staff token (district staff or an administrator)
//   GET /v1/reports/daily         the day's figures, per market
//   GET /v1/reports               the last 14 days (on-time disposal rate over days)
//   GET /v1/reports/live          the window running now in each market
//   GET /v1/reports/fairness      the fairness figures of the selected date's ISO week
//   GET /v1/feeds/{feed}/events   the live ticker (Server-Sent Events read with fetch, so that the
//                                 token goes in a header; resumed with Last-Event-ID)
// The token stays in this tab's sessionStorage; the language choice in localStorage.

const TZ = "Asia/Shanghai";
const TICKER_LENGTH = 50;
const LIVE_REFRESH_MS = 30_000;
const AFTER_EVENT_REFRESH_MS = 3_000;
const RECONNECT_MS = 3_000;
const TREND_DAYS = 14;

const EN = {
  title: "Double-limit markets · District dashboard",
  heading: "Double-limit markets · District dashboard",
  switchLanguage: "中文",
  signOut: "Sign out",
  signInTitle: "Staff sign-in",
  tokenLabel: "Staff token (district enforcement office or city administrator)",
  tokenHint:
    "The token is kept only in this browser tab and is cleared when the tab closes. An administrator issues a district token with stallctl token --role district --district xiangzhou.",
  signIn: "Sign in",
  districtLabel: "District",
  dateLabel: "Date",
  refresh: "Refresh",
  figuresTitle: "Figures of the day",
  "fig.bookable_stall_windows": "Bookable stall-windows",
  "fig.bookings": "Bookings",
  "fig.booked_rate": "Booked rate",
  "fig.check_ins": "Check-ins",
  "fig.occupancy_rate": "Occupancy rate",
  "fig.no_shows": "No-shows",
  "fig.cancellations": "Cancellations",
  "fig.priority_share": "Priority-group share",
  "fig.scans": "Patrol scans",
  "fig.compliant_share": "Compliant share",
  "fig.warnings": "First-offence warnings",
  "fig.cases_opened": "Cases opened",
  "fig.cases_closed": "Cases closed",
  "fig.on_time_disposal_rate": "On-time disposal rate",
  "fig.closure_rate": "Closure rate",
  "fig.satisfaction": "Satisfaction",
  figuresHint: "A rate shows “—” when the day has nothing to compute it from.",
  fairnessTitle: "Fairness (this week)",
  "fair.gini": "Gini of stall-days",
  "fair.priority_stall_day_share": "Priority-group share of stall-days",
  "fair.stall_days": "Stall-days",
  "fair.active_vendors": "Active vendors",
  "fair.vendors_served": "Vendors who got a stall",
  "fair.draws": "Draws",
  "fair.applicants": "Draw applicants",
  "fair.applicant_win_share": "Applicants' win share",
  fairnessHint:
    "Over the ISO week (Monday to Sunday) of the selected date. A Gini of 0 means every active vendor (who booked or applied in a draw that week) had as many stall-days; towards 1, a few vendors had most of them.",
  liveTitle: "Live occupancy by market",
  "col.market": "Market",
  "col.window": "Window now",
  "col.stalls": "Stalls",
  "col.booked": "Booked",
  "col.checked_in": "Checked in",
  "col.occupancy": "Occupancy",
  "col.day_bookings": "Bookings (day)",
  chartsLabel: "Charts",
  "chart.occupancy": "Stalls in use by hour",
  "chart.scans": "Patrol scans by outcome",
  "chart.violations": "Violations by type",
  "chart.disposal": "On-time disposal rate (last 14 days)",
  tickerTitle: "Live events",
  tickerEmpty: "Waiting for new events…",
  footer: "Zhuhai Urban Management Comprehensive Law Enforcement Bureau · Double-limit temporary markets",
  chartsLicence: "Charts: Apache ECharts (Apache-2.0 licence)",
  // messages made here
  needToken: "Paste a staff token.",
  badToken: "This token is not accepted: ",
  wrongRole: "The dashboard is for district staff and administrators; this token is a {role} token.",
  signedInAs: "{sub} · {scope}",
  city: "Whole city (Zhuhai)",
  loading: "Loading…",
  updated: "Updated {time}",
  failed: "Could not load: ",
  closedNow: "— (closed)",
  liveCaption: "As of {time}; occupancy = checked in ÷ stalls.",
  feedLive: "● live",
  feedDown: "● disconnected, retrying",
  feedConnecting: "● connecting",
  hour: "Hour",
  inUse: "Stalls in use",
  count: "Count",
  rate: "Rate",
  noData: "No data",
};

const OUTCOMES = {
  compliant: ["合规", "Compliant"],
  booked_but_vacant: ["预约未到", "Booked but vacant"],
  occupied_without_booking: ["无预约占摊", "Occupied without booking"],
  wrong_vendor: ["非本人经营", "Wrong vendor"],
  overtime: ["超时经营", "Overtime"],
  invalid_code: ["无效码", "Invalid code"],
  forged_code: ["伪造码", "Forged code"],
  revoked_code: ["已作废码", "Revoked code"],
};

const ZH = {
  // messages made here (the page's own texts are read from the HTML, which is Chinese)
  switchLanguage: "English",
  needToken: "请粘贴员工令牌。",
  badToken: "令牌未被接受：",
  wrongRole: "看板仅供区执法人员和管理员使用；此令牌的角色是 {role}。",
  signedInAs: "{sub} · {scope}",
  city: "全市（珠海市）",
  loading: "加载中……",
  updated: "更新于 {time}",
  failed: "加载失败：",
  closedNow: "—（未开市）",
  liveCaption: "截至 {time}；占用率 = 已签到 ÷ 摊位数。",
  feedLive: "● 实时连接中",
  feedDown: "● 连接中断，正在重试",
  feedConnecting: "● 正在连接",
  hour: "时",
  inUse: "在用摊位",
  count: "次数",
  rate: "比率",
  noData: "暂无数据",
};

const state = {
  lang: localStorage.getItem("dashboard.lang") === "en" ? "en" : "zh",
  token: sessionStorage.getItem("dashboard.token"),
  me: null,
  daily: null,
  range: null,
  fairness: null,
  live: null,
  charts: {},
  ticker: [],
  feed: null, // {name, controller, lastId}
  liveTimer: null,
  refreshTimer: null,
  status: null, // {key, values, detail}: re-rendered when the language changes
};

const $ = (selector) => document.querySelector(selector);

function t(key, values = {}) {
  const table = state.lang === "en" ? EN : ZH;
  let text = table[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

// -- language ------------------------------------------------------------------------------------

function rememberChinese() {
  // The HTML is written in Chinese: keep each text as the zh entry of its key.
  for (const el of document.querySelectorAll("[data-i18n]")) {
    ZH[el.dataset.i18n] ??= el.textContent;
  }
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    ZH[el.dataset.i18nLabel] ??= el.getAttribute("aria-label");
  }
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const option of document.querySelectorAll("#district option")) {
    option.textContent = state.lang === "en" ? option.dataset.en : option.dataset.zh;
  }
  const button = $("#language");
  button.lang = state.lang === "en" ? "zh-CN" : "en";
  document.title = t("title");
  renderWho();
  renderAll();
}

function name(item) {
  return state.lang === "en" ? item.name_en : item.name_zh;
}

// -- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
  });
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      // not problem+json: the status says enough
    }
    if (response.status === 401 && state.me) signOut(problem?.detail);
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  return search.toString();
}

// -- sign-in -------------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const me = await api("/v1/auth/whoami");
  if (me.role !== "district" && me.role !== "admin") {
    state.token = null;
    throw new Error(t("wrongRole", { role: me.role }));
  }
  state.me = me;
  sessionStorage.setItem("dashboard.token", token);
  const select = $("#district");
  if (me.role === "district") {
    select.value = me.district;
    select.disabled = true; // district staff see their own district
  } else {
    select.disabled = false;
  }
  $("#date").value = today();
  $("#sign-in").hidden = true;
  $("#board").hidden = false;
  $("#sign-out").hidden = false;
  renderWho();
  await load();
  follow();
  clearInterval(state.liveTimer);
  state.liveTimer = setInterval(refreshLive, LIVE_REFRESH_MS);
}

function signOut(reason) {
  state.feed?.controller.abort();
  state.feed = null;
  clearInterval(state.liveTimer);
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
  sessionStorage.removeItem("dashboard.token");
  state.token = state.me = null;
  state.ticker = [];
  $("#board").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#token").value = "";
  $("#sign-in-error").textContent = reason ? t("badToken") + reason : "";
  renderWho();
}

function renderWho() {
  const who = $("#who");
  if (!state.me) {
    who.hidden = true;
    return;
  }
  const option = document.querySelector(`#district option[value="${state.me.district ?? ""}"]`);
  const scope = state.me.role === "admin" ? (state.lang === "en" ? "Administrator" : "管理员") : option ? option.textContent : state.me.district;
  who.textContent = t("signedInAs", { sub: state.me.sub, scope });
  who.hidden = false;
}

// -- dates ---------------------------------------------------------------------------------------

function today() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(new Date());
}

function isoWeek(isoDate) {
  // "2026-W49": the ISO week (Monday to Sunday) of a date; its Thursday names the year.
  const [y, m, d] = isoDate.split("-").map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  day.setUTCDate(day.getUTCDate() + 4 - (day.getUTCDay() || 7));
  const year = day.getUTCFullYear();
  const week = Math.ceil(((day - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, "0")}`;
}

function daysBefore(isoDate, days) {
  const [y, m, d] = isoDate.split("-").map(Number);
  const moment = new Date(Date.UTC(y, m - 1, d - days));
  return moment.toISOString().slice(0, 10);
}

function clock(iso) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(iso));
}

function hhmm(iso) {
  return clock(iso).slice(0, 5);
}

// -- loading -------------------------------------------------------------------------------------

function chosen() {
  return { district: $("#district").value, date: $("#date").value || today() };
}

async function load() {
  const { district, date } = chosen();
  setStatus("loading");
  try {
    const [daily, range, live, fairness] = await Promise.all([
      api(`/v1/reports/daily?${query({ district, date })}`),
      api(`/v1/reports?${query({ district, from: daysBefore(date, TREND_DAYS - 1), to: date })}`),
      api(`/v1/reports/live?${query({ district })}`),
      api(`/v1/reports/fairness?${query({ district, week: isoWeek(date) })}`),
    ]);
    Object.assign(state, { daily, range, live, fairness });
    setStatus("updated", { time: clock(new Date().toISOString()) });
    renderAll();
  } catch (error) {
    setStatus("failed", {}, error.message);
  }
}

async function refreshLive() {
  try {
    state.live = await api(`/v1/reports/live?${query({ district: chosen().district })}`);
    renderLive();
  } catch {
    // the next refresh tries again; load() reports errors
  }
}

function setStatus(key, values = {}, detail = "") {
  state.status = { key, values, detail };
  renderStatus();
}

function renderStatus() {
  const { key, values, detail } = state.status ?? { key: null };
  $("#status").textContent = key ? t(key, values) + detail : "";
}

function refreshSoon() {
  // At most one reload per interval, however busy the feed: a steady stream still refreshes.
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    load();
  }, AFTER_EVENT_REFRESH_MS);
}

// -- rendering -----------------------------------------------------------------------------------

function renderAll() {
  if (!state.me) return;
  renderStatus();
  renderFigures();
  renderFairness();
  renderLive();
  renderCharts();
  renderTicker();
}

function formatFigure(key, value) {
  if (value === null || value === undefined) return "—";
  if (key === "gini") return value.toFixed(3);
  if (key.endsWith("_rate") || key.endsWith("_share") || key === "satisfaction") {
    return `${(value * 100).toFixed(2)} %`;
  }
  return new Intl.NumberFormat(state.lang === "en" ? "en" : "zh-CN").format(value);
}

function renderFigures() {
  if (!state.daily) return;
  $("#scope-name").textContent = `${name(state.daily.scope)} · ${state.daily.from}`;
  const figures = state.daily.total;
  for (const dd of document.querySelectorAll("[data-figure]")) {
    dd.textContent = formatFigure(dd.dataset.figure, figures[dd.dataset.figure]);
  }
}

function renderFairness() {
  if (!state.fairness) return;
  const { week, from, to, total } = state.fairness;
  $("#fairness-week").textContent = `${week} · ${from}–${to}`;
  for (const dd of document.querySelectorAll("[data-fairness]")) {
    dd.textContent = formatFigure(dd.dataset.fairness, total[dd.dataset.fairness]);
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderLive() {
  if (!state.live) return;
  const dayBookings = new Map((state.daily?.markets ?? []).map((m) => [m.market_id, m.figures.bookings]));
  const rows = state.live.markets.map((market) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `${name(market)} (${market.market_id})`;
    tr.append(th);
    const running = market.window;
    tr.append(
      running ? cell(`${hhmm(running.starts_at)}–${hhmm(running.ends_at)}`) : cell(t("closedNow"), "closed"),
      cell(String(market.stalls), "num"),
      cell(running ? String(market.booked) : "—", "num"),
      cell(running ? String(market.checked_in) : "—", "num"),
      cell(running && market.stalls ? formatFigure("occupancy_rate", market.checked_in / market.stalls) : "—", "num"),
      cell(String(dayBookings.get(market.market_id) ?? 0), "num"),
    );
    return tr;
  });
  $("#live tbody").replaceChildren(...rows);
  $("#live-caption").textContent = t("liveCaption", { time: clock(state.live.at) });
}

function chart(id) {
  if (typeof echarts === "undefined") return null; // the library failed to load: figures still show
  const el = document.getElementById(id);
  state.charts[id] ??= echarts.init(el, null, { renderer: "canvas" });
  return state.charts[id];
}

function bars(id, labels, values, seriesName, color) {
  const c = chart(id);
  if (!c) return;
  c.setOption(
    {
      animation: false,
      grid: { left: 48, right: 16, top: 16, bottom: 72 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: labels.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", name: seriesName, data: values, itemStyle: { color } }],
      graphic: labels.length ? [] : [{ type: "text", left: "center", top: "middle", style: { text: t("noData") } }],
    },
    true,
  );
}

function renderCharts() {
  if (state.daily) {
    const figures = state.daily.total;
    const hours = Array.from({ length: 24 }, (_, h) => `${String(h).padStart(2, "0")}:00`);
    const c = chart("chart-occupancy");
    c?.setOption(
      {
        animation: false,
        grid: { left: 48, right: 16, top: 16, bottom: 40 },
        tooltip: { trigger: "axis" },
        xAxis: { type: "category", data: hours, name: t("hour") },
        yAxis: { type: "value", minInterval: 1, name: t("inUse") },
        series: [{ type: "line", name: t("inUse"), data: figures.occupancy_by_hour, areaStyle: {}, color: "#0b5cad" }],
      },
      true,
    );
    const outcomes = Object.entries(figures.scans_by_outcome).sort((a, b) => b[1] - a[1]);
    bars(
      "chart-scans",
      outcomes.map(([key]) => (OUTCOMES[key] ? OUTCOMES[key][state.lang === "en" ? 1 : 0] : key)),
      outcomes.map(([, n]) => n),
      t("count"),
      "#1a7f37",
    );
    const violations = Object.entries(figures.violations_by_type).sort((a, b) => b[1] - a[1]);
    bars("chart-violations", violations.map(([key]) => key), violations.map(([, n]) => n), t("count"), "#b42318");
  }
  if (state.range) {
    const c = chart("chart-disposal");
    c?.setOption(
      {
        animation: false,
        grid: { left: 56, right: 16, top: 16, bottom: 40 },
        tooltip: { trigger: "axis" },
        xAxis: { type: "category", data: state.range.days.map((d) => d.date.slice(5)) },
        yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value} %" } },
        series: [
          {
            type: "line",
            name: t("fig.on_time_disposal_rate"),
            connectNulls: false,
            data: state.range.days.map((d) =>
              d.figures.on_time_disposal_rate === null ? null : +(d.figures.on_time_disposal_rate * 100).toFixed(2),
            ),
            color: "#8250df",
          },
        ],
      },
      true,
    );
  }
}

window.addEventListener("resize", () => {
  for (const c of Object.values(state.charts)) c.resize();
});

// -- the live ticker -----------------------------------------------------------------------------

function feedName() {
  const district = chosen().district;
  return district || "all"; // the whole city: the administrators' "all" feed
}

function setFeedState(key, className) {
  const el = $("#feed-state");
  el.textContent = t(key);
  el.className = `feed-state ${className}`;
  el.dataset.i18n = key;
}

function renderTicker() {
  const items = state.ticker.map((entry) => {
    const li = document.createElement("li");
    li.dataset.type = entry.type;
    const time = document.createElement("time");
    time.dateTime = entry.time;
    time.textContent = clock(entry.time);
    const market = document.createElement("span");
    market.className = "market";
    market.textContent = entry.market_id;
    const text = document.createElement("span");
    text.textContent = state.lang === "en" ? entry.summary_en : entry.summary_zh;
    li.append(time, market, text);
    return li;
  });
  $("#ticker").replaceChildren(...items);
  $("#ticker-empty").hidden = items.length > 0;
}

function received(entry) {
  state.ticker.unshift(entry);
  state.ticker.length = Math.min(state.ticker.length, TICKER_LENGTH);
  renderTicker();
  refreshSoon(); // the figures move with the events
}

function follow() {
  state.feed?.controller.abort();
  const feed = { name: feedName(), controller: new AbortController(), lastId: null };
  state.feed = feed;
  state.ticker = [];
  renderTicker();
  stream(feed);
}

async function stream(feed) {
  while (state.feed === feed) {
    setFeedState("feedConnecting", "");
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (feed.lastId) headers["Last-Event-ID"] = feed.lastId;
      const response = await fetch(`/v1/feeds/${encodeURIComponent(feed.name)}/events`, {
        headers,
        signal: feed.controller.signal,
      });
      if (response.status === 410) feed.lastId = null; // the position expired: start from now
      if (response.status === 401 || response.status === 403) {
        setFeedState("feedDown", "down");
        return; // no retrying a token the feed refuses
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setFeedState("feedLive", "live");
      await readEvents(response.body, feed);
    } catch (error) {
      if (feed.controller.signal.aborted) return;
    }
    if (state.feed !== feed) return;
    setFeedState("feedDown", "down");
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function readEvents(body, feed) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, feed);
    }
  }
}

function dispatch(block, feed) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  if (event === "dropped") return; // the server ends the stream after it; stream() reconnects
  if (id) feed.lastId = id;
  try {
    received(JSON.parse(data.join("\n")));
  } catch {
    // not an entry: nothing to show
  }
}

// -- wiring --------------------------------------------------------------------------------------

function start() {
  rememberChinese();
  applyLanguage();
  $("#language").addEventListener("click", () => {
    state.lang = state.lang === "en" ? "zh" : "en";
    localStorage.setItem("dashboard.lang", state.lang);
    applyLanguage();
  });
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("#token").value.trim();
    const error = $("#sign-in-error");
    if (!token) {
      error.textContent = t("needToken");
      return;
    }
    error.textContent = "";
    try {
      await signIn(token);
    } catch (problem) {
      state.token = null;
      error.textContent = problem instanceof ApiError ? t("badToken") + problem.message : problem.message;
    }
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#controls").addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  $("#date").addEventListener("change", load);
  $("#district").addEventListener("change", () => {
    load();
    follow();
  });
  if (state.token) {
    signIn(state.token).catch(() => signOut());
  }
}

start();
