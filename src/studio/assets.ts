/**
 * The studio's script and style, embedded as strings so a compiled binary carries them and
 * the page needs nothing from the network. Served as `/app.js` and `/app.css`, so the page's
 * Content-Security-Policy allows no inline script or style at all.
 *
 * @module
 */

/** `/app.js`: live rows over server-sent events, and the steering buttons. */
export const APP_JS = `"use strict";
(() => {
  const body = document.body;
  const batch = body.dataset.batch;
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const root = document.querySelector('meta[name="base"]').content;
  const notice = document.getElementById("notice");
  const say = (text) => {
    notice.textContent = text;
    notice.hidden = !text;
  };
  if (!batch) return;
  const base = root + "b/" + encodeURIComponent(batch) + "/";

  async function post(action) {
    const response = await fetch(base + "action", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(action),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(text.trim() || response.statusText);
    return text;
  }

  // Rows are fetched again when they change; a burst of events for one row fetches it once.
  const refreshing = new Map();
  function refreshRow(folder) {
    if (!folder || !document.getElementById("row-" + folder)) return;
    if (refreshing.has(folder)) {
      refreshing.set(folder, true);
      return;
    }
    refreshing.set(folder, false);
    (async () => {
      try {
        const response = await fetch(base + "row/" + encodeURIComponent(folder));
        if (!response.ok) return;
        const template = document.createElement("template");
        template.innerHTML = (await response.text()).trim();
        const fresh = template.content.firstElementChild;
        const old = document.getElementById("row-" + folder);
        if (!fresh || !old) return;
        // A note being typed survives the row's update.
        const typing = old.querySelector("textarea");
        const keep = fresh.querySelector("textarea");
        if (typing && keep && typing.value) {
          keep.value = typing.value;
        }
        const focused = typing && document.activeElement === typing;
        old.replaceWith(fresh);
        if (focused && keep) keep.focus();
      } finally {
        const again = refreshing.get(folder);
        refreshing.delete(folder);
        if (again) refreshRow(folder);
      }
    })().catch((error) => say("Could not update a row: " + error.message));
  }

  function working(folder, text) {
    const row = folder && document.getElementById("row-" + folder);
    const slot = row && row.querySelector(".working");
    if (slot) slot.textContent = text;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.type === "submit") return;
    const action = { type: button.dataset.action };
    const holder = button.closest("[data-id]");
    if (holder && action.type !== "pause" && action.type !== "resume") {
      action.id = holder.dataset.id;
    }
    if (button.dataset.iteration) action.iteration = Number(button.dataset.iteration);
    if (action.type === "confirm") {
      // A note from the file, run as the user's own now that they asked for it.
      action.type = "reject";
      action.note = button.dataset.note;
      action.confirms = Number(button.dataset.seq);
    }
    button.disabled = true;
    post(action).then(() => say(""), (error) => say(error.message)).finally(() => {
      button.disabled = false;
    });
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-action='reject']");
    if (!form) return;
    event.preventDefault();
    const holder = form.closest("[data-id]");
    const note = form.querySelector("textarea").value.trim();
    if (!holder || !note) return;
    const button = form.querySelector("button");
    button.disabled = true;
    post({ type: "reject", id: holder.dataset.id, note }).then(() => {
      form.querySelector("textarea").value = "";
      form.classList.add("sent");
      say("");
    }, (error) => say(error.message)).finally(() => {
      button.disabled = false;
    });
  });

  function setPaused(paused) {
    body.dataset.paused = paused ? "true" : "false";
    const button = document.getElementById("pause");
    if (button) {
      button.dataset.action = paused ? "resume" : "pause";
      button.textContent = paused ? "Resume" : "Pause";
    }
  }

  const events = new EventSource(root + "events?batch=" + encodeURIComponent(batch));
  events.onopen = () => {
    body.dataset.connected = "true";
  };
  events.onerror = () => {
    body.dataset.connected = "false";
  };
  const data = (event) => JSON.parse(event.data);
  const STEP_WORDS = { generate: "generating", critique: "critiquing", refine: "refining" };
  events.addEventListener("step-start", (event) => {
    const e = data(event);
    working(e.folder, STEP_WORDS[e.step] + " round " + e.iteration + "…");
  });
  for (const type of ["step-end", "prompt-end", "saved", "row"]) {
    events.addEventListener(type, (event) => refreshRow(data(event).folder));
  }
  events.addEventListener("progress", (event) => {
    const e = data(event);
    const bar = document.getElementById("bar");
    if (bar) {
      bar.max = e.total;
      bar.value = e.done;
    }
    const text = document.getElementById("progress-text");
    if (text) text.textContent = e.text;
    setPaused(e.paused);
  });
  events.addEventListener("feedback", (event) => {
    const e = data(event);
    const type = e.action && e.action.type;
    if (type === "pause" || type === "resume") setPaused(type === "pause");
    if (e.folder) refreshRow(e.folder);
  });
  events.addEventListener("notice", (event) => say(data(event).text));
  events.addEventListener("ended", () => {
    // The run is over: the queue's buttons no longer apply; a reject now adds one round.
    body.dataset.live = "false";
    for (const button of document.querySelectorAll("#pause, button[data-action='front'], button[data-action='cancel']")) {
      button.remove();
    }
    const text = document.getElementById("progress-text");
    if (text) text.textContent = "Run ended · " + text.textContent;
  });
})();
`;

/** `/app.css`. */
export const APP_CSS = `
:root {
  --bg: #f4f5f7; --card: #fff; --ink: #1d2430; --soft: #5b6472; --line: #e1e4ea;
  --accent: #3d5afe; --ok: #1b873f; --warn: #b26a00; --bad: #c62828; --muted: #7a828f;
  --best: #f5b400; --pick: #d81b60;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15181d; --card: #1f242c; --ink: #e6e9ee; --soft: #a4acb8; --line: #323944;
    --accent: #8c9eff; --ok: #5fd07f; --warn: #ffb74d; --bad: #ff7b7b; --muted: #8d95a1;
  }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 20px clamp(12px, 3vw, 36px) 40px; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
a { color: var(--accent); }
code { font: 0.85em ui-monospace, Menlo, Consolas, monospace; color: var(--soft); }
h1, h2 { margin: 0; line-height: 1.25; }
h1 { font-size: 24px; } h2 { font-size: 18px; }
.top { max-width: 1500px; margin: 0 auto 16px; }
.title { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.crumbs, .sub { margin: 0 0 6px; color: var(--soft); }
main { max-width: 1500px; margin: 0 auto; }
.notice-bar { position: sticky; top: 0; z-index: 2; background: var(--bad); color: #fff; padding: 8px 14px;
  border-radius: 8px; margin: 0 auto 12px; max-width: 1500px; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 9px; border-radius: 999px;
  border: 1px solid currentColor; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); } .badge.warn { color: var(--warn); }
.badge.muted { color: var(--muted); }
.progress { display: flex; gap: 12px; align-items: center; margin: 12px 0; flex-wrap: wrap; }
.progress progress { width: min(420px, 100%); height: 14px; accent-color: var(--accent); }
#progress-text { color: var(--soft); font-size: 13px; font-variant-numeric: tabular-nums; }
.controls { display: flex; gap: 10px; margin: 8px 0; }
button, .button { font: inherit; font-size: 13px; padding: 4px 12px; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--line); background: var(--card); color: var(--ink); text-decoration: none; }
button:hover, .button:hover { border-color: var(--accent); }
button:disabled { opacity: .5; cursor: progress; }
.filters { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin: 10px 0; }
.filters a { padding: 3px 12px; border-radius: 999px; border: 1px solid var(--line); background: var(--card);
  text-decoration: none; color: var(--ink); font-size: 13px; }
.filters a.on { border-color: var(--accent); background: var(--accent); color: #fff; }
.filters .count { color: var(--soft); font-size: 13px; margin-left: 6px; }
.pager { display: flex; gap: 14px; align-items: center; margin: 10px auto; max-width: 1500px; font-size: 14px; }
table.batches { border-collapse: collapse; width: 100%; background: var(--card); border-radius: 10px; overflow: hidden; }
table.batches th, table.batches td { text-align: left; padding: 8px 12px; border-bottom: 1px solid var(--line); }
table.batches td.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 16px;
  margin: 0 0 16px; display: grid; gap: 14px 20px; }
@media (min-width: 1000px) { .row:not(.comparison) { grid-template-columns: 300px minmax(0, 1fr); } }
.row.model { border: 0; padding: 0; margin: 0; }
.ctx .id { margin: 4px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.ctx .working { color: var(--accent); font-size: 13px; }
.facts, .stop { color: var(--soft); font-size: 13px; margin: 4px 0; font-variant-numeric: tabular-nums; }
.facts b { color: var(--ink); }
.ctx .prompt { font-size: 13px; margin: 8px 0; overflow-wrap: anywhere; }
.ctx dl.context { font-size: 12px; margin: 0 0 8px; display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; }
.ctx dl.context dt { color: var(--soft); }
.ctx dl.context dd { margin: 0; overflow-wrap: anywhere; }
.actions { display: flex; flex-direction: column; gap: 8px; }
.actions > button { align-self: flex-start; }
.reject label { display: block; font-size: 12px; color: var(--soft); }
.reject textarea { display: block; width: 100%; margin: 4px 0 6px; font: inherit; font-size: 13px;
  border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px; background: var(--bg); color: var(--ink); }
.reject.sent button::after { content: " ✓ sent"; color: var(--ok); }
.held { margin-top: 8px; font-size: 12px; color: var(--soft); border-left: 3px solid var(--warn);
  padding-left: 8px; }
.held ul { margin: 4px 0; padding-left: 16px; }
.held q { color: var(--ink); }
.rounds { display: flex; gap: 14px; overflow-x: auto; align-items: flex-start; padding-bottom: 4px; }
.round { flex: 0 0 280px; border: 1px solid var(--line); border-radius: 12px; overflow: hidden;
  display: flex; flex-direction: column; gap: 6px; padding-bottom: 10px; }
.round > :not(.shot):not(.noimg) { margin-inline: 10px; }
.round.best { border-color: var(--best); box-shadow: 0 0 0 2px var(--best); }
.round.chosen { border-color: var(--pick); box-shadow: 0 0 0 2px var(--pick); }
.shot { display: block; line-height: 0; background: var(--line); }
.shot img { width: 100%; height: auto; aspect-ratio: 4 / 3; object-fit: cover; display: block; }
.noimg { display: grid; place-items: center; aspect-ratio: 4 / 3; background: var(--line); color: var(--soft); }
.head { display: flex; gap: 6px; align-items: center; margin-top: 4px; white-space: nowrap; }
.head > * { flex-shrink: 0; }
.head .how { flex-shrink: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
.head .n { font-weight: 650; }
.how { font-size: 12px; color: var(--soft); border: 1px solid var(--line); border-radius: 999px; padding: 0 8px; }
.star { font-size: 12px; font-weight: 700; color: #5a4300; background: var(--best); border-radius: 999px; padding: 0 8px; }
.pick { font-size: 12px; font-weight: 700; color: #fff; background: var(--pick); border-radius: 999px; padding: 0 8px; }
.score { margin-left: auto; font-size: 19px; font-weight: 750; font-variant-numeric: tabular-nums; }
.good { color: var(--ok); } .fair { color: var(--warn); } .poor { color: var(--bad); }
.checks { font-size: 12.5px; }
.checks p { margin: 0; color: var(--soft); }
.checks ul { list-style: none; padding: 0; margin: 2px 0; }
.checks li.pass { color: var(--ok); } .checks li.fail { color: var(--bad); }
.checks summary { cursor: pointer; color: var(--accent); }
.summary, .note { font-size: 13px; margin: 0; }
.note { color: var(--pick); }
.fav { align-self: flex-start; }
.error { color: var(--bad); }
.empty { color: var(--soft); font-style: italic; }
.log { max-width: 1500px; margin: 20px auto 0; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; padding: 10px 14px; }
.log summary { cursor: pointer; color: var(--accent); }
.log ol { list-style: none; padding: 0; margin: 8px 0 0; font: 12px/1.5 ui-monospace, Menlo, monospace;
  max-height: 320px; overflow: auto; }
.log li.warning, .log li.warn { color: var(--warn); } .log li.error, .log li.fatal { color: var(--bad); }
.log time { color: var(--muted); }
`;
