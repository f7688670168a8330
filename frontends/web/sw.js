// The page shell offline: index.html, styles.css, the modules and the icon, cached on install and
// refreshed on every load. Network first, so a new version shows as soon as the server has it;
// the cache answers only when the network fails. Nothing else is touched: /ws never passes
// through a service worker, and /healthz, /readyz, /metrics and the API are not in the shell.

const CACHE = "joey-chat-shell-v1";
const SHELL = [
  "./", "index.html", "styles.css", "favicon.svg",
  "js/app.js", "js/banner.js", "js/chats.js", "js/composer.js", "js/connection.js", "js/context.js", "js/continue.js",
  "js/conversation.js", "js/edit.js", "js/errors.js", "js/export.js", "js/feedback.js", "js/outbox.js", "js/phase.js", "js/queue.js", "js/replies.js",
  "js/session.js", "js/settings.js", "js/socket.js", "js/status.js", "js/store.js", "js/versions.js", "js/view.js",
];
const SHELL_URLS = new Set(SHELL.map((path) => new URL(path, self.registration.scope).href));

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  const old = caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))));
  event.waitUntil(old.then(() => self.clients.claim()));
});

/** The shell file a request is for (its query string aside), or null: the rest is not ours to cache. */
function shellUrl(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  url.search = "";
  return SHELL_URLS.has(url.href) ? url.href : null;
}

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(key);
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const key = shellUrl(event.request);
  if (key) event.respondWith(networkFirst(event.request, key));
});
