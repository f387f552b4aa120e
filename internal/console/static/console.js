// Gatehouse console: live updates for the approvals inbox. The page works
// without this script (reload to refresh); with it, the list is re-read
// whenever approvalChanged reports a change. No framework, no build step.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.live) {
    return;
  }
  const status = document.getElementById("live-status");
  let since = live.dataset.since || new Date().toISOString();

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // refresh re-reads this page and swaps in its live section.
  async function refresh() {
    const resp = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (resp.redirected || !resp.ok) {
      window.location.reload();
      return;
    }
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("live");
    if (fresh) {
      live.replaceChildren(...fresh.childNodes);
      since = fresh.dataset.since || since;
    }
    say("Updated " + new Date().toLocaleTimeString() + ".");
  }

  async function poll() {
    for (;;) {
      try {
        const resp = await fetch(live.dataset.live + "?since=" + encodeURIComponent(since), { credentials: "same-origin" });
        if (resp.status === 401 || resp.redirected) {
          window.location.reload();
          return;
        }
        if (!resp.ok) {
          say("Live updates paused (HTTP " + resp.status + "); retrying.");
          await sleep(5000);
          continue;
        }
        const body = await resp.json();
        since = body.cursor || since;
        if (body.changed > 0) {
          await refresh();
        }
      } catch (e) {
        say("Live updates paused (" + e.message + "); retrying.");
        await sleep(5000);
      }
    }
  }

  poll();
})();
