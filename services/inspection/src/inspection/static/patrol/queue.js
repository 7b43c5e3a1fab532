// The phone's queue of scans not yet sent, in IndexedDB (it survives closing the tab, a reload
// and a phone without a network). One record per scan, keyed by its Idempotency-Key, which is
// made once, when the scan is taken: sending it again, however often, records it once.
//
// A record: {key, sub, observed_at, body, photos: [Blob], queued_at, attempts, last_error}.
// `sub` is the officer who took it: only that officer's token sends it.

const DB_NAME = "patrol";
const DB_VERSION = 1;
const STORE = "scans";

let opening = null;

function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: "key" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    opening.catch(() => {
      opening = null;
    });
  }
  return opening;
}

async function run(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    let result;
    const request = work(tx.objectStore(STORE));
    if (request) request.onsuccess = () => (result = request.result);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** Every queued scan, oldest observation first. */
export async function queued() {
  const all = (await run("readonly", (store) => store.getAll())) || [];
  return all.sort((a, b) => Date.parse(a.observed_at) - Date.parse(b.observed_at));
}

/** Keeps (or updates) a scan in the queue. */
export function put(scan) {
  return run("readwrite", (store) => store.put(scan));
}

/** Removes a scan from the queue (sent, or refused for good). */
export function remove(key) {
  return run("readwrite", (store) => store.delete(key));
}
