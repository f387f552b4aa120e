// Gatehouse console: live updates for approvals. Pages work without this
// script (reload to refresh); with it, the inbox is re-read whenever
// approvalChanged reports a change, and an approval's page reloads when
// someone else decides it. No framework, no build step.
"use strict";

(function () {
  const status = document.getElementById("live-status");

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // watch long-polls url (the console's approvalChanged) from since and
  // calls onChange after each reported change.
  async function watch(url, since, onChange) {
    for (;;) {
      try {
        const u = new URL(url, window.location.href);
        u.searchParams.set("since", since);
        const resp = await fetch(u, { credentials: "same-origin" });
        if (resp.status === 401 || resp.redirected) {
          window.location.reload(); // the session ended: sign in again
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
          since = (await onChange()) || since;
        }
      } catch (e) {
        say("Live updates paused (" + e.message + "); retrying.");
        await sleep(5000);
      }
    }
  }

  // The inbox: re-read this page and swap in its live section.
  const live = document.getElementById("live");
  if (live && live.dataset.live) {
    watch(live.dataset.live, live.dataset.since || new Date().toISOString(), async function () {
      const resp = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (resp.redirected || !resp.ok) {
        window.location.reload();
        return "";
      }
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const fresh = doc.getElementById("live");
      if (!fresh) {
        return "";
      }
      live.replaceChildren(...fresh.childNodes);
      say("Updated " + new Date().toLocaleTimeString() + ".");
      return fresh.dataset.since || "";
    });
  }

  // An approval's page: reload when it changes, unless a comment is being
  // written (then say so, and leave the reload to the approver).
  if (status && status.dataset.watch) {
    watch(status.dataset.watch, status.dataset.since || new Date().toISOString(), async function () {
      const comment = document.getElementById("comment");
      if (comment && comment.value.trim() !== "") {
        say("This approval changed since you opened it: reload the page to see where it stands.");
        return "";
      }
      window.location.reload();
      return "";
    });
  }
})();
