// The patrol page's service worker (scope /app/): the page and its files are precached, so the
// page opens on a phone without a network. Rendered by the service, so the list below holds the
// files' versioned URLs; a new release changes them, this script with them, and the browser
// installs the new worker, which drops the old cache.
//
// The API (/v1/...) is never answered from here: a request without a network must fail in the
// page, which then keeps the scan in its IndexedDB queue (patrol.js).

const PAGE = "/app/";
const PRECACHE = [
  PAGE,
  "/app/manifest.webmanifest",
  "{{ static:kit/field.css }}",
  "{{ static:kit/field.js }}",
  "{{ static:kit/scanner.js }}",
  "{{ static:kit/vendor/jsqr/jsQR.js }}",
  "{{ static:patrol/patrol.css }}",
  "{{ static:patrol/patrol.js }}",
  "{{ static:patrol/queue.js }}",
  "{{ static:patrol/texts.js }}",
  "{{ static:patrol/icon.svg }}",
];

/** A short name for this release's cache, from the versioned URLs it holds. */
function releaseName(urls) {
  let hash = 0;
  for (const ch of urls.join("\n")) hash = (Math.imul(hash, 31) + ch.charCodeAt(0)) | 0;
  return `patrol-${(hash >>> 0).toString(16)}`;
}

const CACHE = releaseName(PRECACHE);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("patrol-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(pageFirstFromNetwork(request));
  } else if (url.pathname.startsWith("/app/static/") || url.pathname === "/app/manifest.webmanifest") {
    event.respondWith(fromCacheFirst(request));
  }
  // anything else (the API above all) goes to the network as if there were no worker
});

/** The page from the network when there is one (a new release is seen at once), else cached. */
async function pageFirstFromNetwork(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(PAGE, response.clone());
    return response;
  } catch {
    const cached = await cache.match(PAGE);
    if (cached) return cached;
    throw new Error("offline and the page is not cached");
  }
}

/** A versioned file (?v=) never changes: the cached copy if there is one. A module's own
 * imports have no version (../kit/field.js): from the network while there is one, so that they
 * match the page, else this release's copy. */
async function fromCacheFirst(request) {
  const versioned = new URL(request.url).searchParams.has("v");
  const cache = await caches.open(CACHE);
  if (versioned) {
    const cached = await cache.match(request);
    if (cached) return cached;
  }
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}
