// The vendor's page: register, sign in, find a market, book a free stall (or apply to the
// window's draw), see and cancel bookings, and check in by scanning the stall's QR code.
//
// The token stays in this phone's localStorage until the vendor signs out (a vendor's own
// phone; the token expires on its own). Every call goes to this service's API.

import { $, $$, api, ApiError, formatTime, h, makeI18n, newKey, OfflineError, say } from "../kit/field.js";
import { Scanner } from "../kit/scanner.js";

const ZH = {
  title: "便民市场摊位预约",
  heading: "便民市场摊位预约",
  signOut: "退出",
  signInTitle: "登录",
  phone: "手机号码",
  password: "密码",
  signIn: "登录",
  noAccount: "还没有账号？注册",
  registerTitle: "注册摊贩账号",
  name: "姓名",
  newPassword: "密码（至少 8 位）",
  identity: "居民身份证号码",
  identityHint: "只保存其加密摘要，每人只能注册一个账号。",
  priorityGroup: "优先群体（需工作人员核实）",
  "priority.none": "无",
  "priority.laid_off": "失业人员",
  "priority.low_income": "低收入人员",
  "priority.college_student": "在校大学生",
  categoriesLegend: "经营类别（需工作人员核实）",
  healthCertificate: "健康证有效期至（熟食类需要）",
  register: "获取验证码",
  smsCode: "短信验证码",
  verify: "完成注册",
  haveAccount: "已有账号？登录",
  codeSent: "验证码已发送到您的手机，10 分钟内有效。",
  registered: "注册成功。您填写的资格需工作人员核实后生效。",
  sections: "页面",
  "tab.markets": "找摊位",
  "tab.bookings": "我的预约",
  "tab.me": "我的",
  marketsTitle: "便民市场",
  district: "区域",
  category: "类别",
  anyDistrict: "全部区域",
  anyCategory: "全部类别",
  openNow: "只看正在开市",
  noMarkets: "没有符合条件的市场。",
  stallsCount: "{n} 个摊位",
  openBadge: "开市中",
  date: "日期",
  back: "返回",
  freeOf: "空闲 {free} / 共 {total}",
  heldForPriority: "其中 {n} 个为优先群体保留",
  suspended: "暂停开市：{reason}",
  noFree: "没有空闲摊位。",
  bookStall: "预约摊位 {stall}",
  applyStall: "申请摇号：{stall}",
  booked: "预约成功：{stall}，{when}。",
  applied: "已提交摇号申请：{stall}。开奖后通知结果。",
  applicationsOnly: "该时段尚未摇号，只能申请摇号（{at} 开奖）。",
  bookingsTitle: "我的预约",
  noBookings: "暂无预约。",
  applicationsTitle: "摇号申请",
  noApplications: "暂无摇号申请。",
  "state.booked": "已预约",
  "state.checked_in": "已签到",
  "state.cancelled": "已取消",
  "state.no_show": "未到场",
  "state.suspended_by_market": "市场暂停",
  "application.pending": "待开奖",
  "application.won": "中签",
  "application.lost": "未中签",
  "application.void": "无效",
  checkInWindow: "签到时间 {from} – {to}",
  checkIn: "扫码签到",
  cancel: "取消预约",
  confirmCancel: "确定取消这个预约吗？开市前 2 小时内取消记为未到场。",
  cancelled: "预约已取消。",
  withdraw: "撤回申请",
  withdrawn: "申请已撤回。",
  checkInTitle: "扫码签到",
  checkInWhat: "摊位 {stall}，{when}",
  cameraLabel: "摄像头画面",
  scanStart: "打开摄像头扫描摊位码",
  scanStop: "关闭摄像头",
  scanning: "请将摄像头对准摊位上的二维码。",
  codeText: "或输入摊位码文字",
  submitCode: "提交摊位码",
  checkedIn: "签到成功：摊位 {stall}。",
  cameraFailed: "无法打开摄像头，请输入摊位码文字。",
  meTitle: "我的资料",
  "profile.id": "摊贩编号（巡查员问起时出示）",
  "profile.name": "姓名",
  "profile.phone": "手机",
  "profile.priority": "优先群体（已核实）",
  "profile.categories": "经营类别（已核实）",
  "profile.health": "健康证（已核实）",
  "profile.noShows": "近 30 天未到场",
  "profile.suspended": "暂停预约至",
  none: "无",
  notSuspended: "未暂停",
  claimsTitle: "资格核实",
  noClaims: "暂无资格申请。",
  "claim.claimed": "待核实",
  "claim.verified": "已核实",
  "claim.rejected": "未通过",
  "claimKind.priority_group": "优先群体",
  "claimKind.category": "经营类别",
  "claimKind.health_certificate": "健康证",
  claimReason: "原因：{reason}",
  until: "有效期至 {date}",
  offline: "网络不可用，请稍后再试。",
  warningsTitle: "巡查警告与案件",
  noWarnings: "没有警告或案件。",
  warningsUnavailable: "暂时无法读取巡查记录。",
  "item.warning": "警告",
  "item.case": "案件",
  "caseState.reported": "已上报",
  "caseState.filed": "已立案",
  "caseState.dispatched": "已派遣",
  "caseState.handled": "已处置",
  "caseState.verified": "已核查",
  "caseState.closed": "已结案",
  deadline: "处置期限 {at}",
  "category.cooked_food": "熟食",
  "category.fresh_produce": "生鲜果蔬",
  "category.daily_goods": "日用百货",
  "category.services": "便民服务",
  "category.crafts_culture": "文创手作",
  "district.xiangzhou": "香洲区",
  "district.doumen": "斗门区",
  "district.jinwan": "金湾区",
  "district.hengqin": "横琴粤澳深度合作区",
  "district.gaoxin": "高新区",
  "district.wanshan": "万山区",
  "district.gaolangang": "高栏港区",
};

const EN = {
  title: "Market stall booking",
  heading: "Market stall booking",
  signOut: "Sign out",
  signInTitle: "Sign in",
  phone: "Mobile number",
  password: "Password",
  signIn: "Sign in",
  noAccount: "No account yet? Register",
  registerTitle: "Register as a vendor",
  name: "Name",
  newPassword: "Password (at least 8 characters)",
  identity: "Resident identity number",
  identityHint: "Only a salted digest is kept; one account per person.",
  priorityGroup: "Priority group (staff verify it)",
  "priority.none": "None",
  "priority.laid_off": "Laid-off worker",
  "priority.low_income": "Low-income resident",
  "priority.college_student": "College student",
  categoriesLegend: "Categories you sell (staff verify them)",
  healthCertificate: "Health certificate valid until (cooked food needs one)",
  register: "Text me a code",
  smsCode: "Code from the text message",
  verify: "Finish registering",
  haveAccount: "Have an account? Sign in",
  codeSent: "A code was texted to your phone; it is valid for 10 minutes.",
  registered: "Registered. What you stated counts once staff have verified it.",
  sections: "Sections",
  "tab.markets": "Find a stall",
  "tab.bookings": "My bookings",
  "tab.me": "Me",
  marketsTitle: "Markets",
  district: "District",
  category: "Category",
  anyDistrict: "All districts",
  anyCategory: "All categories",
  openNow: "Open now only",
  noMarkets: "No market matches.",
  stallsCount: "{n} stalls",
  openBadge: "Open",
  date: "Date",
  back: "Back",
  freeOf: "{free} free of {total}",
  heldForPriority: "{n} of them held for priority groups",
  suspended: "Suspended: {reason}",
  noFree: "No free stall.",
  bookStall: "Book stall {stall}",
  applyStall: "Apply in the draw: {stall}",
  booked: "Booked: {stall}, {when}.",
  applied: "Applied for {stall} in the draw. You will be told the result.",
  applicationsOnly: "This window is not drawn yet: apply in its draw (drawn at {at}).",
  bookingsTitle: "My bookings",
  noBookings: "No bookings yet.",
  applicationsTitle: "Draw applications",
  noApplications: "No applications.",
  "state.booked": "Booked",
  "state.checked_in": "Checked in",
  "state.cancelled": "Cancelled",
  "state.no_show": "No-show",
  "state.suspended_by_market": "Market suspended",
  "application.pending": "Waiting for the draw",
  "application.won": "Won",
  "application.lost": "Not drawn",
  "application.void": "Void",
  checkInWindow: "Check in {from} – {to}",
  checkIn: "Check in by scanning",
  cancel: "Cancel booking",
  confirmCancel: "Cancel this booking? Within 2 hours of the start it counts as a no-show.",
  cancelled: "Booking cancelled.",
  withdraw: "Withdraw",
  withdrawn: "Application withdrawn.",
  checkInTitle: "Check in",
  checkInWhat: "Stall {stall}, {when}",
  cameraLabel: "Camera picture",
  scanStart: "Scan the stall's code with the camera",
  scanStop: "Close the camera",
  scanning: "Point the camera at the QR code on the stall.",
  codeText: "Or type the code's text",
  submitCode: "Send the code",
  checkedIn: "Checked in at stall {stall}.",
  cameraFailed: "The camera could not be opened; type the code's text instead.",
  meTitle: "My profile",
  "profile.id": "Vendor id (show it to a patrol officer who asks)",
  "profile.name": "Name",
  "profile.phone": "Mobile",
  "profile.priority": "Priority group (verified)",
  "profile.categories": "Categories (verified)",
  "profile.health": "Health certificate (verified)",
  "profile.noShows": "No-shows in the last 30 days",
  "profile.suspended": "Booking suspended until",
  none: "None",
  notSuspended: "Not suspended",
  claimsTitle: "Verification",
  noClaims: "No claims.",
  "claim.claimed": "Waiting for staff",
  "claim.verified": "Verified",
  "claim.rejected": "Rejected",
  "claimKind.priority_group": "Priority group",
  "claimKind.category": "Category",
  "claimKind.health_certificate": "Health certificate",
  claimReason: "Reason: {reason}",
  until: "valid until {date}",
  offline: "No network; try again later.",
  warningsTitle: "Patrol warnings and cases",
  noWarnings: "No warnings or cases.",
  warningsUnavailable: "The patrol record cannot be read now.",
  "item.warning": "Warning",
  "item.case": "Case",
  "caseState.reported": "Reported",
  "caseState.filed": "Filed",
  "caseState.dispatched": "Dispatched",
  "caseState.handled": "Handled",
  "caseState.verified": "Verified",
  "caseState.closed": "Closed",
  deadline: "To be handled by {at}",
  "category.cooked_food": "Cooked food",
  "category.fresh_produce": "Fresh produce",
  "category.daily_goods": "Daily goods",
  "category.services": "Services",
  "category.crafts_culture": "Crafts & culture",
  "district.xiangzhou": "Xiangzhou District",
  "district.doumen": "Doumen District",
  "district.jinwan": "Jinwan District",
  "district.hengqin": "Hengqin Cooperation Zone",
  "district.gaoxin": "High-tech Zone",
  "district.wanshan": "Wanshan Zone",
  "district.gaolangang": "Gaolan Port Zone",
};

const CATEGORIES = ["cooked_food", "fresh_produce", "daily_goods", "services", "crafts_culture"];
const DISTRICTS = ["xiangzhou", "doumen", "jinwan", "hengqin", "gaoxin", "wanshan", "gaolangang"];
const TOKEN_KEY = "vendor.token";
//: Where inspection is (its warnings and cases about this vendor); empty: not shown.
const INSPECTION_URL = document.querySelector('meta[name="inspection-url"]').content.replace(/\/$/, "");

const i18n = makeI18n({ zh: ZH, en: EN }, "vendor.lang");
const t = i18n.t;
const state = {
  token: localStorage.getItem(TOKEN_KEY),
  registration: null, // {id, phone, password} between the code being sent and entered
  market: null,
  checkIn: null, // the booking being checked in
  tab: "markets",
};
const scanner = new Scanner($("#video"), { onCode: (text) => submitCode(text), onError: cameraFailed });

// -- calls and messages ------------------------------------------------------------------------

function call(path, options = {}) {
  return api(path, { token: state.token, lang: i18n.acceptLanguage(), ...options });
}

function status(text, kind = "info") {
  say($("#status"), text, kind);
  if (text) $("#status").scrollIntoView({ block: "nearest" });
}

function failed(error) {
  if (error instanceof OfflineError) return status(t("offline"), "error");
  if (error instanceof ApiError) {
    if (error.status === 401 && state.token) return signOut();
    const problem = error.problem;
    return status([problem.title, problem.detail].filter(Boolean).join(": ") || error.code, "error");
  }
  status(String(error), "error");
}

function name(item) {
  return i18n.lang === "en" ? item.name_en : item.name_zh;
}

function when(booking) {
  return `${booking.date} ${formatTime(booking.starts_at, i18n.lang, { date: false })}–${formatTime(booking.ends_at, i18n.lang, { date: false })}`;
}

// -- signed out: sign in and register ------------------------------------------------------------

function show(section) {
  for (const id of ["sign-in", "register", "app"]) $(`#${id}`).hidden = id !== section;
  $("#sign-out").hidden = section !== "app";
}

async function signIn(phone, password) {
  const form = new URLSearchParams({ username: phone, password });
  let response;
  try {
    response = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { Accept: "application/json", "Accept-Language": i18n.acceptLanguage() },
      body: form,
    });
  } catch (error) {
    throw new OfflineError(error.message);
  }
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data);
  state.token = data.access_token;
  localStorage.setItem(TOKEN_KEY, state.token);
  await enter();
}

function signOut() {
  scanner.stop();
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
  show("sign-in");
}

async function register(form) {
  const data = new FormData(form);
  const body = {
    name: data.get("name").trim(),
    phone: data.get("phone").trim(),
    password: data.get("password"),
    identity_number: data.get("identity_number").trim().toUpperCase(),
    priority_group: data.get("priority_group"),
    categories: data.getAll("categories"),
    health_certificate_expires: data.get("health_certificate_expires") || null,
  };
  const started = await call("/v1/vendors", { method: "POST", body });
  state.registration = { id: started.registration_id, phone: body.phone, password: body.password };
  $("#register-form").hidden = true;
  $("#verify-form").hidden = false;
  $("#verify-code").focus();
  status(t("codeSent"), "info");
}

async function verify(code) {
  const registration = state.registration;
  await call("/v1/vendors/verify", { method: "POST", body: { registration_id: registration.id, code } });
  state.registration = null;
  $("#register-form").reset();
  $("#register-form").hidden = false;
  $("#verify-form").hidden = true;
  await signIn(registration.phone, registration.password);
  status(t("registered"), "ok");
}

// -- signed in ---------------------------------------------------------------------------------

async function enter() {
  show("app");
  await openTab(state.tab);
}

async function openTab(tab) {
  state.tab = tab;
  for (const button of $$("nav.tabs button")) {
    if (button.dataset.tab === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  $("#tab-markets").hidden = tab !== "markets" || state.market !== null;
  $("#market").hidden = tab !== "markets" || state.market === null;
  $("#tab-bookings").hidden = tab !== "bookings" || state.checkIn !== null;
  $("#check-in").hidden = tab !== "bookings" || state.checkIn === null;
  $("#tab-me").hidden = tab !== "me";
  if (tab === "markets") await (state.market ? loadAvailability() : loadMarkets());
  if (tab === "bookings" && !state.checkIn) await loadBookings();
  if (tab === "me") await loadProfile();
}

// Markets and their free stalls.

async function loadMarkets() {
  const params = new URLSearchParams();
  const district = $("#filter-district").value;
  const category = $("#filter-category").value;
  if (district) params.set("district", district);
  if (category) params.set("category", category);
  if ($("#filter-open").checked) params.set("open_now", "true");
  const markets = await call(`/v1/markets?${params}`);
  const list = $("#markets");
  list.replaceChildren(
    ...markets.map((market) =>
      h(
        "li",
        {},
        h("div", { class: "title" }, name(market), " ", market.open_now ? h("span", { class: "badge ok" }, t("openBadge")) : null),
        h("div", { class: "meta" }, `${t(`district.${market.district}`)} · ${t("stallsCount", { n: market.stall_count })}`),
        h("div", { class: "meta" }, market.zones.map((zone) => t(`category.${zone}`)).join("、")),
        h("button", { type: "button", class: "secondary", onclick: () => openMarket(market) }, name(market)),
      ),
    ),
  );
  if (!markets.length) list.replaceChildren(h("li", {}, t("noMarkets")));
}

function tomorrow() {
  const now = new Date();
  const local = new Date(now.getTime() + 8 * 3600 * 1000 + 24 * 3600 * 1000); // Asia/Shanghai
  return local.toISOString().slice(0, 10);
}

async function openMarket(market) {
  state.market = market;
  $("#market-title").textContent = name(market);
  $("#market-address").textContent = market.address_zh || "";
  if (!$("#market-date").value) $("#market-date").value = tomorrow();
  await openTab("markets");
  $("#market-title").focus?.();
}

async function loadAvailability() {
  const market = state.market;
  const day = $("#market-date").value;
  const windows = $("#windows");
  if (!day) return windows.replaceChildren();
  const availability = await call(`/v1/markets/${encodeURIComponent(market.id)}/availability?date=${day}`);
  const names = Object.fromEntries(market.windows.map((w) => [w.id, name(w)]));
  windows.replaceChildren(
    ...availability.windows.map((window) => {
      const time = `${formatTime(window.starts_at, i18n.lang, { date: false })}–${formatTime(window.ends_at, i18n.lang, { date: false })}`;
      const stalls = window.free_stalls.map((stall) =>
        h("button", {
          type: "button",
          class: "secondary",
          "aria-label": t("bookStall", { stall }),
          onclick: () => book(market, day, window.window_id, stall),
        }, stall),
      );
      return h(
        "div",
        { class: "window" },
        h("h3", {}, `${names[window.window_id] || window.window_id} ${time}`),
        window.suspended_reason
          ? h("p", { class: "status", "data-kind": "warn" }, t("suspended", { reason: window.suspended_reason }))
          : h("p", { class: "hint" }, t("freeOf", { free: window.free, total: window.total }),
              window.held_for_priority ? ` · ${t("heldForPriority", { n: window.held_for_priority })}` : ""),
        stalls.length ? h("div", { class: "stalls" }, stalls) : h("p", { class: "hint" }, t("noFree")),
      );
    }),
  );
}

async function book(market, day, windowId, stall) {
  try {
    const booking = await call("/v1/bookings", {
      method: "POST",
      body: { stall_id: stall, date: day, window_id: windowId },
      headers: { "Idempotency-Key": newKey("book") },
    });
    status(t("booked", { stall, when: when(booking) }), "ok");
    await loadAvailability();
  } catch (error) {
    if (error instanceof ApiError && error.code === "applications_only") {
      return offerDraw(market, day, windowId, stall, error.problem.draw_at);
    }
    failed(error);
  }
}

function offerDraw(market, day, windowId, stall, drawAt) {
  const at = drawAt ? formatTime(drawAt, i18n.lang) : "";
  status(t("applicationsOnly", { at }), "warn");
  const button = h("button", {
    type: "button",
    onclick: async () => {
      try {
        await call("/v1/applications", {
          method: "POST",
          body: { market_id: market.id, date: day, window_id: windowId, stall_ids: [stall] },
        });
        button.remove();
        status(t("applied", { stall }), "ok");
      } catch (error) {
        failed(error);
      }
    },
  }, t("applyStall", { stall }));
  $("#status").after(button);
}

// Bookings, applications and check-in.

async function loadBookings() {
  const [bookings, applications] = await Promise.all([call("/v1/bookings"), call("/v1/applications")]);
  const list = $("#bookings");
  list.replaceChildren(
    ...bookings.map((booking) => {
      const kind = { booked: "", checked_in: "ok", no_show: "bad", cancelled: "warn" }[booking.state] ?? "warn";
      const actions = [];
      if (booking.state === "booked") {
        actions.push(
          h("button", { type: "button", onclick: () => openCheckIn(booking) }, t("checkIn")),
          h("button", { type: "button", class: "secondary", onclick: () => cancel(booking) }, t("cancel")),
        );
      }
      return h(
        "li",
        { "data-booking": booking.id },
        h("div", { class: "title" }, `${booking.stall_id} `, h("span", { class: `badge ${kind}` }, t(`state.${booking.state}`))),
        h("div", { class: "meta" }, when(booking)),
        booking.state === "booked" && booking.check_in_opens_at
          ? h("div", { class: "meta" }, t("checkInWindow", {
              from: formatTime(booking.check_in_opens_at, i18n.lang),
              to: formatTime(booking.check_in_closes_at, i18n.lang),
            }))
          : null,
        actions,
      );
    }),
  );
  if (!bookings.length) list.replaceChildren(h("li", {}, t("noBookings")));
  const drawn = $("#applications");
  drawn.replaceChildren(
    ...applications.map((application) =>
      h(
        "li",
        {},
        h("div", { class: "title" }, `${application.market_id} ${application.date} `,
          h("span", { class: "badge" }, t(`application.${application.status}`))),
        h("div", { class: "meta" }, application.stall_id || application.stall_ids.join(" > ") || "—"),
        application.status === "pending"
          ? h("button", { type: "button", class: "secondary", onclick: () => withdraw(application) }, t("withdraw"))
          : null,
      ),
    ),
  );
  if (!applications.length) drawn.replaceChildren(h("li", {}, t("noApplications")));
}

async function cancel(booking) {
  if (!window.confirm(t("confirmCancel"))) return;
  try {
    await call(`/v1/bookings/${encodeURIComponent(booking.id)}`, { method: "DELETE" });
    status(t("cancelled"), "ok");
    await loadBookings();
  } catch (error) {
    failed(error);
  }
}

async function withdraw(application) {
  const path = [application.market_id, application.date, application.window_id].map(encodeURIComponent).join("/");
  try {
    await call(`/v1/applications/${path}`, { method: "DELETE" });
    status(t("withdrawn"), "ok");
    await loadBookings();
  } catch (error) {
    failed(error);
  }
}

async function openCheckIn(booking) {
  state.checkIn = booking;
  $("#check-in-what").textContent = t("checkInWhat", { stall: booking.stall_id, when: when(booking) });
  $("#code-text").value = "";
  await openTab("bookings");
  if (Scanner.available()) await startCamera();
}

function closeCheckIn() {
  scanner.stop();
  cameraShown(false);
  state.checkIn = null;
  return openTab("bookings");
}

function cameraShown(on) {
  $("#camera").hidden = !on;
  $("#scan-start").hidden = on;
  $("#scan-stop").hidden = !on;
}

async function startCamera() {
  try {
    cameraShown(true);
    status(t("scanning"), "info");
    await scanner.start();
  } catch (error) {
    cameraFailed(error);
  }
}

function cameraFailed() {
  scanner.stop();
  cameraShown(false);
  status(t("cameraFailed"), "warn");
  $("#code-text").focus();
}

async function submitCode(text) {
  cameraShown(false);
  const booking = state.checkIn;
  if (!booking) return;
  try {
    await call(`/v1/bookings/${encodeURIComponent(booking.id)}/check-in`, {
      method: "POST",
      body: { code: text.trim() },
    });
    state.checkIn = null;
    await openTab("bookings");
    status(t("checkedIn", { stall: booking.stall_id }), "ok");
  } catch (error) {
    failed(error);
  }
}

// The vendor's profile: what is verified, what waits for staff, no-shows and suspension.

async function loadProfile() {
  const me = await call("/v1/vendors/me");
  const rows = [
    ["profile.id", me.id],
    ["profile.name", me.name],
    ["profile.phone", me.phone_masked],
    ["profile.priority", t(`priority.${me.priority_group}`)],
    ["profile.categories", me.categories.length ? me.categories.map((c) => t(`category.${c}`)).join("、") : t("none")],
    ["profile.health", me.health_certificate_expires ? t("until", { date: me.health_certificate_expires }) : t("none")],
    ["profile.noShows", String(me.no_shows_last_30_days)],
    ["profile.suspended", me.suspended_until ? formatTime(me.suspended_until, i18n.lang) : t("notSuspended")],
  ];
  $("#profile").replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, t(key)), h("dd", {}, value)]));
  const claims = $("#claims");
  claims.replaceChildren(
    ...me.claims.map((claim) => {
      const value = claim.kind === "category" ? t(`category.${claim.value}`)
        : claim.kind === "priority_group" ? t(`priority.${claim.value}`) : claim.value;
      const kind = { verified: "ok", rejected: "bad" }[claim.status] ?? "warn";
      return h(
        "li",
        {},
        h("div", { class: "title" }, `${t(`claimKind.${claim.kind}`)}: ${value} `, h("span", { class: `badge ${kind}` }, t(`claim.${claim.status}`))),
        claim.reason ? h("div", { class: "meta" }, t("claimReason", { reason: claim.reason })) : null,
        claim.expires ? h("div", { class: "meta" }, t("until", { date: claim.expires })) : null,
      );
    }),
  );
  if (!me.claims.length) claims.replaceChildren(h("li", {}, t("noClaims")));
  await loadWarnings();
}

// What inspection holds about the vendor: warnings ("1+1" first minor offences) and cases.
async function loadWarnings() {
  $("#warnings-panel").hidden = !INSPECTION_URL;
  if (!INSPECTION_URL) return;
  const list = $("#warnings");
  let items;
  try {
    items = await call(`${INSPECTION_URL}/v1/me/warnings`);
  } catch {
    list.replaceChildren(h("li", { class: "meta" }, t("warningsUnavailable")));
    return;
  }
  list.replaceChildren(
    ...items.map((item) => {
      const violation = (i18n.lang === "en" ? item.violation_en : item.violation_zh) || item.violation;
      const at = item.issued_at || item.opened_at || item.observed_at;
      return h(
        "li",
        {},
        h("div", { class: "title" },
          h("span", { class: `badge ${item.kind === "case" ? "bad" : "warn"}` }, t(`item.${item.kind}`)), " ", violation),
        h("div", { class: "meta" }, [item.stall_id, at ? formatTime(at, i18n.lang) : null].filter(Boolean).join(" · ")),
        item.kind === "case" ? h("div", { class: "meta" }, t(`caseState.${item.state}`),
          item.deadline && item.state !== "closed" ? ` · ${t("deadline", { at: formatTime(item.deadline, i18n.lang) })}` : "") : null,
      );
    }),
  );
  if (!items.length) list.replaceChildren(h("li", {}, t("noWarnings")));
}

// -- wiring ------------------------------------------------------------------------------------

function options(select, first, values, prefix) {
  select.replaceChildren(
    h("option", { value: "" }, t(first)),
    ...values.map((value) => h("option", { value }, t(`${prefix}.${value}`))),
  );
}

function localize() {
  i18n.apply();
  const language = $("#language");
  language.textContent = i18n.lang === "en" ? "中文" : "English";
  language.lang = i18n.lang === "en" ? "zh-CN" : "en";
  for (const [id, first, values, prefix] of [
    ["#filter-district", "anyDistrict", DISTRICTS, "district"],
    ["#filter-category", "anyCategory", CATEGORIES, "category"],
  ]) {
    const chosen = $(id).value;
    options($(id), first, values, prefix);
    $(id).value = chosen;
  }
  $("#reg-categories").replaceChildren(
    ...CATEGORIES.map((category) =>
      h("label", { class: "check" },
        h("input", { type: "checkbox", name: "categories", value: category }),
        h("span", {}, t(`category.${category}`))),
    ),
  );
}

function guard(handler) {
  return async (event) => {
    event?.preventDefault?.();
    try {
      await handler(event);
    } catch (error) {
      failed(error);
    }
  };
}

$("#language").addEventListener("click", guard(async () => {
  i18n.toggle();
  localize();
  if (state.token) await openTab(state.tab);
}));
$("#sign-out").addEventListener("click", signOut);
$("#show-register").addEventListener("click", () => show("register"));
$("#show-sign-in").addEventListener("click", () => show("sign-in"));
$("#sign-in-form").addEventListener("submit", guard(async () => {
  await signIn($("#login-phone").value.trim(), $("#login-password").value);
  status("", "info");
}));
$("#register-form").addEventListener("submit", guard(() => register($("#register-form"))));
$("#verify-form").addEventListener("submit", guard(() => verify($("#verify-code").value.trim())));
for (const button of $$("nav.tabs button")) {
  button.addEventListener("click", guard(() => {
    status("", "info");
    if (button.dataset.tab === "markets") state.market = null;
    return openTab(button.dataset.tab);
  }));
}
$("#market-filter").addEventListener("change", guard(loadMarkets));
$("#market-date").addEventListener("change", guard(loadAvailability));
$("#back-to-markets").addEventListener("click", guard(() => {
  state.market = null;
  return openTab("markets");
}));
$("#scan-start").addEventListener("click", guard(startCamera));
$("#scan-stop").addEventListener("click", () => {
  scanner.stop();
  cameraShown(false);
});
$("#manual-code").addEventListener("submit", guard(() => submitCode($("#code-text").value)));
$("#check-in-close").addEventListener("click", guard(closeCheckIn));

localize();
if (state.token) {
  guard(enter)();
} else {
  show("sign-in");
}
