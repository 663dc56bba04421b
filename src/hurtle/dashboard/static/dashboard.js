// hurtle dashboard: each page polls its JSON and draws it. Everything from the
// broker (task names, reasons, arguments) goes into the document as text.
"use strict";
(function () {
  const body = document.body;
  const PAGE = body.dataset.page;
  const CSRF = body.dataset.csrf;
  const READ_ONLY = body.dataset.readOnly === "1";
  const content = document.getElementById("content");
  const status = document.getElementById("status");
  const Chart = window.HurtleChart;

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  function table(headers, rows, attrs) {
    return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  async function getJSON(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {accept: "application/json"}});
    const data = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"content-type": "application/json", "x-csrf-token": CSRF},
      body: JSON.stringify(data),
    });
    const answer = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  }

  // Calls draw(data) now and every `every` ms while the tab is visible; the
  // next request starts only once the last one was answered.
  function poll(url, every, draw) {
    let timer = null;
    async function tick() {
      clearTimeout(timer);
      try {
        const data = await getJSON(typeof url === "function" ? url() : url);
        draw(data);
        status.textContent = `updated ${new Date().toLocaleTimeString()}`;
        status.className = "";
      } catch (error) {
        status.textContent = `error: ${error.message}`;
        status.className = "error";
      }
      timer = setTimeout(tick, document.hidden ? every * 5 : every);
    }
    tick();
    return tick;
  }

  function replace(node, ...kids) { node.replaceChildren(...kids.flat().filter((k) => k != null)); }

  // -- formats ---------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds == null) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
    const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    if (m < 60) return `${m}m${String(s).padStart(2, "0")}s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`;
    return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
  }
  const rate = (r) => r == null ? "?" : r >= 100 ? r.toFixed(0) : r.toFixed(1);
  const percent = (share) => share == null ? "–" : `${(share * 100).toFixed(1)}%`;
  const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
  const when = (at) => at == null ? "–" : new Date(at * 1000).toLocaleString();
  const count = (n) => n == null ? "?" : n.toLocaleString();
  const taskLink = (id, text) => el("a", {href: `/task/${encodeURIComponent(id)}`, class: "mono"}, text || id);

  // -- overview --------------------------------------------------------------------------

  function overview() {
    const head = el("p", {class: "note"});
    const queues = el("div");
    const charts = el("div", {class: "charts"});
    replace(content, head, queues, charts);
    poll("/api/overview", 2000, (data) => {
      replace(head, `broker ${data.broker}`,
        data.history ? "" : " · no task history kept: rates are not known");
      replace(queues, table(
        ["queue", "ready", "oldest ready", "delayed", "in flight", "dead", "in/min", "out/min"],
        data.queues.map((q) => el("tr", {}, el("td", {}, q.name), el("td", {class: "num"}, count(q.ready)),
          el("td", {class: "num"}, duration(q.oldest_ready_age)), el("td", {class: "num"}, count(q.delayed)),
          el("td", {class: "num"}, count(q.in_flight)),
          el("td", {class: "num"}, q.dead ? el("a", {href: `/dead?queue=${encodeURIComponent(q.name)}`}, count(q.dead)) : "0"),
          el("td", {class: "num"}, rate(q.rate_in)), el("td", {class: "num"}, rate(q.rate_out)))),
        {id: "queues"}));
      if (!data.queues.length) queues.append(el("p", {class: "note"}, "no queue has been sent to yet"));
      const times = data.depths.map((d) => d.at);
      replace(charts, data.queues.map((q, i) => el("section", {class: "chart-box"},
        el("h3", {}, q.name),
        Chart.line({title: "messages per minute (last hour)", times: data.minutes, marks: data.deploys,
          series: [{name: "in", values: q.series_in}, {name: "out", values: q.series_out}]}),
        Chart.line({title: "ready (sampled while this page is open)", times, marks: data.deploys,
          series: [{name: "ready", values: data.depths.map((d) => d.ready[i])}]}))));
    });
  }

  // -- workers ---------------------------------------------------------------------------

  function workers() {
    const box = el("div");
    replace(content, box);
    poll("/api/workers", 2000, (data) => {
      if (!data.visible) {
        replace(box, el("p", {class: "note"}, "the app's stores keep no worker registry"));
        return;
      }
      const rows = data.workers.map((w) => el("tr", {},
        el("td", {class: "mono"}, `${w.host}:${w.pid}`), el("td", {}, w.queues.join(", ")),
        el("td", {class: "num"}, `${w.busy_async}/${w.concurrency}`),
        el("td", {class: "num"}, `${w.busy_threads}/${w.threads}`),
        el("td", {class: "num"}, mib(w.rss_bytes)), el("td", {class: "num"}, duration(w.uptime)),
        el("td", {class: "num"}, duration(Math.max(0, data.now - w.beat_at))),
        el("td", {}, w.running.length ? el("ul", {class: "running"}, w.running
          .slice().sort((a, b) => (b.elapsed || 0) - (a.elapsed || 0))
          .map((t) => el("li", {}, t.name, " ", taskLink(t.id, t.id.slice(0, 8)), " ",
            el("span", {class: "dim"}, t.elapsed == null ? "starting" : duration(t.elapsed))))) : "–")));
      replace(box, el("p", {class: "note"}, `${data.workers.length} worker process(es); elapsed times as of each one's last heartbeat`),
        table(["worker", "queues", "async busy", "threads busy", "RSS", "uptime", "heartbeat", "running"], rows,
          {id: "workers"}));
    });
  }

  // -- tasks -----------------------------------------------------------------------------

  function tasks() {
    let minutes = Number(new URLSearchParams(location.search).get("minutes")) || 60;
    let chosen = decodeURIComponent(location.hash.slice(1));
    let last = null;
    const idBox = el("input", {type: "search", placeholder: "task id", "aria-label": "task id"});
    const find = el("form", {class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (idBox.value.trim()) location.href = `/task/${encodeURIComponent(idBox.value.trim())}`;
    }}, idBox, el("button", {type: "submit"}, "Open task"));
    const windows = el("span", {class: "windows"}, [60, 180, 360].map((m) => el("button", {
      type: "button", "data-minutes": m, onclick: () => { minutes = m; refresh(); }}, `${m / 60} h`)));
    const list = el("div");
    const detail = el("div", {class: "charts"});
    replace(content, el("div", {class: "toolbar"}, windows, find), list, detail);
    const refresh = poll(() => `/api/tasks?minutes=${minutes}`, 5000, (data) => { last = data; draw(); });
    function draw() {
      const data = last;
      for (const b of windows.children) b.classList.toggle("on", Number(b.dataset.minutes) === data.window);
      const rows = data.tasks.map((t) => el("tr", {class: t.task === chosen ? "chosen" : null,
        onclick: () => { chosen = t.task; location.hash = encodeURIComponent(chosen); draw(); }},
        el("td", {class: "task-name"}, t.task), el("td", {class: "num"}, rate(t.rate)),
        el("td", {class: "num"}, t.recent ? rate(t.recent.rate) : "0"),
        el("td", {class: "num"}, percent(t.failure_rate)),
        el("td", {class: "num"}, duration(t.wait_p50)), el("td", {class: "num"}, duration(t.wait_p95)),
        el("td", {class: "num"}, duration(t.run_p50)), el("td", {class: "num"}, duration(t.run_p95)),
        el("td", {class: "num"}, duration(t.run_seconds)), el("td", {}, Chart.spark(t.series.settled))));
      replace(list,
        data.history ? null : el("p", {class: "note"}, "the app keeps no task history"),
        table(["task", "/min", "/min (5 min)", "failed", "wait p50", "wait p95", "run p50", "run p95",
          "total run", "settled per minute"], rows, {id: "tasks"}),
        data.more ? el("p", {class: "note"}, `${data.more} more task(s) with less run time not shown`) : null);
      const t = data.tasks.find((x) => x.task === chosen);
      if (!t) { replace(detail, el("p", {class: "note"}, "click a task for its charts; dashed lines mark deploys")); return; }
      replace(detail, el("section", {class: "chart-box wide"}, el("h3", {}, t.task),
        Chart.line({title: "settled and not succeeded, per minute", width: 1200, times: data.minutes, marks: data.deploys,
          series: [{name: "settled", values: t.series.settled}, {name: "failed", values: t.series.failed}]}),
        Chart.line({title: "p95 run and wait (seconds)", width: 1200, times: data.minutes, marks: data.deploys,
          series: [{name: "run p95", values: t.series.run_p95}, {name: "wait p95", values: t.series.wait_p95}]})));
    }
  }

  // -- one task --------------------------------------------------------------------------

  function task() {
    const id = decodeURIComponent(location.pathname.slice("/task/".length));
    const box = el("div");
    const message = el("p", {class: "message", role: "status"});
    const cancel = READ_ONLY ? null : el("button", {type: "button", id: "cancel", class: "danger", hidden: true, onclick: async () => {
      if (!window.confirm("cancel this task?")) return;
      try {
        const done = await post("/api/task/cancel", {id});
        message.textContent = done.requested ? "cancel requested: workers act on it within about a second" : done.why;
        message.className = done.requested ? "message ok" : "message error";
      } catch (error) {
        message.textContent = `refused: ${error.message}`;
        message.className = "message error";
      }
      refresh();
    }}, "Cancel task");
    replace(content, el("div", {class: "toolbar"}, cancel), message, box);
    const refresh = poll(`/api/task/${encodeURIComponent(id)}`, 2000, (t) => {
      if (cancel) cancel.hidden = !["queued", "running", "unknown"].includes(t.state) || t.cancel_requested;
      const rows = [["task id", el("span", {class: "mono"}, t.id)],
        ["state", el("span", {class: `state ${t.state}`}, t.state)]];
      if (t.task) rows.push(["task", t.task]);
      if (t.attempts != null) rows.push(["attempts", t.attempts]);
      if (t.worker) rows.push(["worker", t.worker]);
      if (t.running) rows.push(["running", `for ${duration(t.running.elapsed)} at its last heartbeat`]);
      if (t.cancel_requested) rows.push(["cancel", "requested, not yet carried out by a worker"]);
      if (t.progress) {
        const p = t.progress;
        const done = p.total == null ? `${p.done}` : `${p.done}/${p.total} (${Math.round(100 * Math.min(1, p.done / (p.total || 1)))}%)`;
        rows.push(["progress", [done, p.note ? ` ${p.note}` : "", p.at ? `, reported ${when(p.at)}` : ""].join("")]);
      }
      for (const [label, key] of [["ready at", "ready_at"], ["started", "started_at"], ["finished", "finished_at"]]) {
        if (t[key] != null) rows.push([label, when(t[key])]);
      }
      if (t.queue_wait != null) rows.push(["queue wait", duration(t.queue_wait)]);
      if (t.run_time != null) rows.push(["run time", duration(t.run_time)]);
      if (t.args != null) rows.push(["arguments", el("code", {class: "args"}, t.args)]);
      if (t.state === "succeeded") rows.push(["result", el("code", {}, cut(JSON.stringify(t.value), 2000))]);
      if (t.error) rows.push(["error", el("pre", {}, t.error)]);
      if (t.traceback) rows.push(["traceback", el("pre", {}, t.traceback)]);
      if (t.dead_letter) {
        rows.push(["dead letter", `${t.dead_letter.id} (queue ${t.dead_letter.queue}), ${when(t.dead_letter.failed_at)}`]);
        if (!t.traceback) rows.push(["reason", el("pre", {}, t.dead_letter.reason)]);
      }
      const unknown = t.looked_in_queues ? "nothing is known of this task: not queued, not running, no result stored, no dead letter"
        : `no result, no worker and no dead letter for it; its message was not looked for among the ${count(t.waiting)} waiting (more than a page reads: \`hurtle status task ID\` looks)`;
      replace(box, t.known ? null : el("p", {class: "note"}, unknown),
        el("dl", {id: "task"}, rows.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)])),
        t.workflow ? [el("h2", {}, "workflow"), el("ul", {id: "workflow", class: "tree"}, flowPart(t.workflow))] : null);
    });
  }

  const FLOW_SHOWN = 50; // a group's members drawn; the rest are counted by state

  // One part of a workflow and its children: kind, task, state, run time; a step links to its page.
  function flowPart(part) {
    const ran = part.started_at != null && part.finished_at != null ? ` ${duration(part.finished_at - part.started_at)}` : "";
    const name = part.task ? (part.id ? el("a", {href: `/task/${encodeURIComponent(part.id)}`}, part.task) : part.task) : null;
    const kids = part.children || [];
    const rest = kids.slice(FLOW_SHOWN);
    const counts = {};
    for (const kid of rest) counts[kid.state] = (counts[kid.state] || 0) + 1;
    const more = rest.length ? el("li", {class: "note"}, `${count(rest.length)} more: ` +
      Object.entries(counts).map(([state, n]) => `${count(n)} ${state}`).join(", ")) : null;
    return el("li", {},
      el("span", {class: "kind"}, part.kind), " ", name, " ",
      el("span", {class: `state ${part.state}`}, part.state), ran,
      part.error ? el("pre", {}, part.error) : null,
      kids.length ? el("ul", {}, kids.slice(0, FLOW_SHOWN).map(flowPart), more) : null);
  }

  const cut = (text, width) => text == null ? "null" : text.length > width ? `${text.slice(0, width)}… (${text.length} characters)` : text;

  // -- dead letters ----------------------------------------------------------------------

  function deadLetters() {
    const params = new URLSearchParams(location.search);
    const state = {queue: params.get("queue") || "", q: params.get("q") || "", page: 0};
    const selected = new Set();
    const open = new Set();
    const queueBox = el("select", {"aria-label": "queue"}, el("option", {value: ""}, "every queue"));
    const searchBox = el("input", {type: "search", placeholder: "task name, reason or id", value: state.q, "aria-label": "search"});
    const form = el("form", {class: "inline", onsubmit: (e) => { e.preventDefault(); state.q = searchBox.value.trim(); state.page = 0; selected.clear(); refresh(); }},
      queueBox, searchBox, el("button", {type: "submit"}, "Search"));
    queueBox.addEventListener("change", () => { state.queue = queueBox.value; state.page = 0; selected.clear(); refresh(); });
    const message = el("p", {class: "message", role: "status"});
    const actions = READ_ONLY ? null : el("div", {class: "actions"},
      el("button", {type: "button", id: "requeue-selected", onclick: () => act("/api/dead/requeue", {ids: [...selected]}, `requeue ${selected.size} dead letter(s)?`)}, "Requeue selected"),
      el("button", {type: "button", id: "requeue-matching", onclick: () => act("/api/dead/requeue-matching", {queue: state.queue, q: state.q},
        state.q || state.queue ? "requeue every dead letter that matches?" : "requeue EVERY dead letter?")}, "Requeue all matching"),
      el("button", {type: "button", id: "purge", class: "danger", onclick: () => act("/api/dead/purge", {queue: state.queue, confirm: true},
        `delete the dead letters of ${state.queue ? `queue ${state.queue}` : "EVERY queue"} for good?`)}, "Purge"));
    const summary = el("p", {class: "note"});
    const list = el("div");
    const pager = el("div", {class: "pager"});
    replace(content, el("div", {class: "toolbar"}, form, actions), message, summary, list, pager);
    const refresh = poll(() => `/api/dead?${new URLSearchParams({queue: state.queue, q: state.q, page: state.page})}`, 5000, draw);

    async function act(url, data, question) {
      if (!window.confirm(question)) return;
      try {
        const done = await post(url, data);
        message.textContent = done.purged != null ? `deleted ${done.purged} dead letter(s)` :
          `requeued ${done.requeued} message(s)` + (done.unknown && done.unknown.length ? `; ${done.unknown.length} not found` : "");
        message.className = "message ok";
        selected.clear();
      } catch (error) {
        message.textContent = `refused: ${error.message}`;
        message.className = "message error";
      }
      refresh();
    }

    function draw(data) {
      const known = new Set([...queueBox.options].map((o) => o.value));
      for (const name of data.queues) if (!known.has(name)) queueBox.append(el("option", {value: name}, name));
      queueBox.value = state.queue;
      const from = data.page * data.page_size;
      replace(summary, data.matched == null
        ? `${count(data.total)} dead letter(s)${state.queue ? ` in ${state.queue}` : ""}; showing ${data.letters.length ? from + 1 : 0}–${from + data.letters.length}, newest first`
        : `${data.matched} match(es) among the newest ${count(Math.min(data.scanned, data.total))} of ${count(data.total)}`);
      const rows = [];
      for (const d of data.letters) {
        rows.push(el("tr", {class: "letter", "data-id": d.id},
          READ_ONLY ? null : el("td", {}, el("input", {type: "checkbox", "aria-label": "select", checked: selected.has(d.id),
            onchange: (e) => { if (e.target.checked) selected.add(d.id); else selected.delete(d.id); }})),
          el("td", {}, when(d.failed_at)), el("td", {}, d.queue),
          el("td", {class: "task-name"}, d.task == null ? el("i", {}, "(undecodable)") : d.task),
          el("td", {class: "reason"}, d.summary),
          el("td", {}, d.task_id ? taskLink(d.task_id, d.task_id.slice(0, 12)) : "–"),
          el("td", {}, el("button", {type: "button", class: "inspect", onclick: () => { open.has(d.id) ? open.delete(d.id) : open.add(d.id); draw(data); }}, open.has(d.id) ? "hide" : "inspect"),
            READ_ONLY ? null : el("button", {type: "button", class: "requeue-one", onclick: () => act("/api/dead/requeue", {ids: [d.id]}, "requeue this dead letter?")}, "requeue"))));
        if (open.has(d.id)) {
          rows.push(el("tr", {class: "details"}, el("td", {colspan: READ_ONLY ? 6 : 7}, el("dl", {},
            el("dt", {}, "dead letter id"), el("dd", {class: "mono"}, d.id),
            el("dt", {}, "attempts"), el("dd", {}, d.attempts == null ? "?" : d.attempts),
            el("dt", {}, "arguments"), el("dd", {}, el("code", {class: "args"}, d.args == null ? "(undecodable body)" : d.args)),
            el("dt", {}, "reason"), el("dd", {}, el("pre", {}, d.reason))))));
        }
      }
      replace(list, data.letters.length ? table([READ_ONLY ? null : "", "failed at", "queue", "task", "reason", "task id", ""].filter((h) => h != null), rows, {id: "dead"})
        : el("p", {class: "note"}, "no dead letters here"));
      replace(pager,
        el("button", {type: "button", disabled: data.page === 0, onclick: () => { state.page -= 1; refresh(); }}, "‹ newer"),
        ` page ${data.page + 1} `,
        el("button", {type: "button", disabled: !data.more, onclick: () => { state.page += 1; refresh(); }}, "older ›"));
    }
  }

  // -- profiles --------------------------------------------------------------------------

  function profiles() {
    const names = el("ul", {class: "profiles"});
    const view = el("div");
    replace(content, names, view);
    let shown = null;
    poll("/api/profiles", 10000, (data) => {
      if (!data.kept) { replace(names, el("li", {}, "the app's stores keep no profiles")); return; }
      replace(names, data.tasks.length ? data.tasks.map((name) => el("li", {}, el("a", {href: `#${encodeURIComponent(name)}`}, name)))
        : el("li", {class: "note"}, "no task has a profile: run workers with --profile all, or @app.task(profile=True)"));
      const wanted = decodeURIComponent(location.hash.slice(1));
      if (wanted && wanted !== shown) show(wanted);
    });
    window.addEventListener("hashchange", () => show(decodeURIComponent(location.hash.slice(1))));
    async function show(name) {
      shown = name;
      try {
        const p = await getJSON(`/api/profile?task=${encodeURIComponent(name)}`);
        const zoom = el("p", {class: "note"}, "click a frame to zoom in, the top one to zoom out");
        replace(view, el("h2", {}, p.task),
          el("p", {}, `${p.executions} execution(s) profiled, ${(p.wall_us / 1e6).toFixed(3)} s wall, ${(p.cpu_us / 1e6).toFixed(3)} s CPU`),
          zoom, el("div", {id: "flame"}, Chart.flame(p.stacks)));
      } catch (error) {
        replace(view, el("p", {class: "note"}, `no profile for ${name}: ${error.message}`));
      }
    }
  }

  // -- schedules -------------------------------------------------------------------------

  function schedules() {
    const box = el("div");
    replace(content, box);
    poll("/api/schedules", 5000, (data) => {
      const rows = data.schedules.map((s) => el("tr", {}, el("td", {}, s.name), el("td", {class: "task-name"}, s.task),
        el("td", {class: "mono"}, s.cron || `every ${s.every} s`), el("td", {}, s.tz || "UTC"),
        el("td", {}, s.last_run || "–"), el("td", {}, s.next_run), el("td", {}, el("code", {class: "args"}, s.args))));
      replace(box,
        el("p", {class: "note"}, !data.kept ? "the app's stores keep no schedule records: no leader, no last run"
          : data.leader ? `leader: ${data.leader}` : "leader: none (no worker runs the scheduler now)"),
        data.schedules.length ? table(["name", "task", "when", "zone", "last run", "next run", "arguments"], rows, {id: "schedules"})
          : el("p", {class: "note"}, "the app declares no periodic task"));
    });
  }

  const PAGES = {overview, workers, tasks, task, dead: deadLetters, profiles, schedules};
  (PAGES[PAGE] || overview)();
})();
