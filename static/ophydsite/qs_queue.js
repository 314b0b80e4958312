/*
 * qs_queue.js — the Queue Server page's queue (templates/console/qs_console.html): the manager
 * and RunEngine state, the queue, the running plan and the history, polled from
 * /api/v1/queue-server/status and /api/v1/qserver/queue (every second, faster after an
 * action), and the controls, which POST the queue actions of docs/qserver.md with Django's
 * CSRF token; destructive ones (data-confirm on the button) ask first. The server's access
 * rules answer every action; the page only shows the answer.
 * Plain DOM: every text from the server goes in with textContent.
 *
 *   const queue = OphydSiteQueue.start();   // on the page; .act(path, body, label), .poll()
 *
 * In Node, require() gives the pure helpers (expectation, parseValue, describe, userOf).
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.OphydSiteQueue = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const API = "/api/v1/";
  const POLL_MS = 1000; // steady polling
  const FAST_MS = 250; // after an action, this many polls come faster
  const FAST_POLLS = 8;
  const HISTORY_SHOWN = 30; // newest first; the Queue Server keeps them all
  const KIND = { POSITIONAL_ONLY: 0, POSITIONAL_OR_KEYWORD: 1, VAR_POSITIONAL: 2, KEYWORD_ONLY: 3, VAR_KEYWORD: 4 };

  // --- plan parameters: what the annotation asks for, and the typed value of a field ---------

  /** Split "a | b[c | d]" at the top-level "|" only. */
  function unionParts(type) {
    const parts = [];
    let depth = 0, start = 0;
    for (let i = 0; i < type.length; i++) {
      const c = type[i];
      if (c === "[") depth++;
      else if (c === "]") depth--;
      else if (c === "|" && depth === 0) { parts.push(type.slice(start, i)); start = i + 1; }
    }
    parts.push(type.slice(start));
    return parts;
  }

  /** {kind: int|number|bool|str|list|dict|any, nullable} from a Queue Server annotation type
   *  ("int | None", "collections.abc.Sequence[__READABLE__]", "typing.Optional[float]" …).
   *  Unions of several types are "any": left to the Queue Server's own validation. */
  function expectation(type) {
    let t = String(type || "").replace(/\s+/g, "").toLowerCase();
    let nullable = false;
    const optional = /^(typing\.)?optional\[(.*)\]$/.exec(t);
    if (optional) { t = optional[2]; nullable = true; }
    const parts = unionParts(t).filter(function (p) {
      if (p === "none" || p === "nonetype") { nullable = true; return false; }
      return p !== "";
    });
    if (parts.length !== 1) return { kind: "any", nullable: nullable || !t };
    const one = parts[0];
    const simple = { int: "int", float: "number", bool: "bool", str: "str" }[one];
    if (simple) return { kind: simple, nullable: nullable };
    if (/^((typing|collections\.abc)\.)?(sequence|list|tuple|iterable)(\[|$)/.test(one)) return { kind: "list", nullable: nullable };
    if (/^((typing|collections\.abc)\.)?(dict|mapping)(\[|$)/.test(one)) return { kind: "dict", nullable: nullable };
    return { kind: "any", nullable: nullable };
  }

  function fail(name, why) { return Object.assign(new Error(name + ": " + why), { param: name }); }

  function json(name, text) {
    try { return JSON.parse(text); } catch (err) { throw fail(name, "not valid JSON (" + err.message + ")"); }
  }

  /** A word of a list written without brackets: a number if it reads as one, else a name. */
  function word(text) { return text !== "" && !isNaN(Number(text)) ? Number(text) : text; }

  /** The JSON value of one field (text as typed) for parameter `name`, checked against `exp`
   *  (from expectation). Lists may be written as JSON or as names separated by commas or spaces;
   *  "None" or "null" is null where the annotation allows it. Throws an Error naming the field. */
  function parseValue(name, raw, exp) {
    const text = String(raw).trim();
    if (exp.nullable && (text === "None" || text === "null")) return null;
    switch (exp.kind) {
      case "int":
        if (!/^[-+]?\d+$/.test(text)) throw fail(name, "expects a whole number, not " + JSON.stringify(text));
        return Number(text);
      case "number":
        if (text === "" || !isFinite(Number(text))) throw fail(name, "expects a number, not " + JSON.stringify(text));
        return Number(text);
      case "bool":
        if (/^(true|false)$/i.test(text)) return text.toLowerCase() === "true";
        throw fail(name, "expects true or false, not " + JSON.stringify(text));
      case "str":
        return text.startsWith("\"") ? json(name, text) : text;
      case "list": {
        if (text.startsWith("[")) {
          const value = json(name, text);
          if (!Array.isArray(value)) throw fail(name, "expects a list");
          return value;
        }
        return text.split(/[\s,]+/).filter(Boolean).map(word);
      }
      case "dict": {
        const value = json(name, text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) throw fail(name, "expects a JSON object");
        return value;
      }
      default: // a number, JSON, or else the text itself (a device or a name)
        if (/^[[{"]/.test(text) || /^(true|false|null)$/.test(text)) return json(name, text);
        return word(text);
    }
  }

  function kindOf(p) { return p.kind && typeof p.kind.value === "number" ? p.kind.value : KIND.POSITIONAL_OR_KEYWORD; }
  function typeOf(p) { return p.annotation && typeof p.annotation.type === "string" ? p.annotation.type : ""; }
  function isRequired(p) { const k = kindOf(p); return !("default" in p) && k !== KIND.VAR_POSITIONAL && k !== KIND.VAR_KEYWORD; }

  /** {name, args?, kwargs} from a plan description and its fields' texts ({param: text});
   *  throws an Error listing every field that is missing or wrong (.params: their names). */
  function planItem(plan, texts) {
    const args = [], kwargs = {}, errors = [];
    for (const p of plan.parameters || []) {
      const text = (texts[p.name] || "").trim();
      const kind = kindOf(p);
      if (text === "") {
        if (isRequired(p)) errors.push(fail(p.name, "is required"));
        continue;
      }
      let value;
      try {
        value = parseValue(p.name, text, kind === KIND.VAR_POSITIONAL ? { kind: "list", nullable: false }
          : kind === KIND.VAR_KEYWORD ? { kind: "dict", nullable: false } : expectation(typeOf(p)));
      } catch (err) { errors.push(err); continue; }
      if (kind === KIND.POSITIONAL_ONLY) args.push(value);
      else if (kind === KIND.VAR_POSITIONAL) args.push.apply(args, value);
      else if (kind === KIND.VAR_KEYWORD) Object.assign(kwargs, value);
      else kwargs[p.name] = value;
    }
    if (errors.length) {
      throw Object.assign(new Error(errors.map(function (e) { return e.message; }).join("; ")),
                          { params: errors.map(function (e) { return e.param; }) });
    }
    const item = { name: plan.name, kwargs: kwargs };
    if (args.length) item.args = args;
    return item;
  }

  /** A plan item's arguments in one line: positional ones, then name=value. */
  function describe(item) {
    const words = (item.args || []).map(function (a) { return JSON.stringify(a); });
    for (const key of Object.keys(item.kwargs || {})) words.push(key + "=" + JSON.stringify(item.kwargs[key]));
    return words.join(", ");
  }

  /** Who added an item: our user (meta.ophydsite_user) or the Queue Server's own. */
  function userOf(item) { return (item.meta && item.meta.ophydsite_user) || item.user || ""; }

  // --- the page ----------------------------------------------------------------------------

  function start() {
    const $ = function (id) { return document.getElementById(id); };
    const outcome = $("qs-outcome");
    const banner = $("qs-banner");
    const select = $("plan-name");
    const fields = $("plan-params");
    let plans = {}; // name -> description
    let plansUid = null; // the plans_allowed_uid they were read for
    let loadingPlans = false;
    let shownQueue = null; // what the tables show (uids), to redraw only on change
    let items = []; // the queue as last drawn
    let timer = null, polling = false, fastLeft = 0, actions = 0;

    function csrfToken() {
      const input = document.querySelector("input[name=csrfmiddlewaretoken]");
      return input ? input.value : "";
    }

    async function getJson(path) {
      const response = await fetch(API + path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      return { status: response.status, body: body };
    }

    function cell(tr, text, className) {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      tr.appendChild(td);
      return td;
    }

    function say(text, className, code) {
      outcome.textContent = text;
      outcome.className = className || "";
      outcome.dataset.code = code || "";
      outcome.dataset.n = String(actions);
    }

    // Live state --------------------------------------------------------------------------

    function lost(text) {
      banner.textContent = text;
      banner.hidden = false;
      document.body.dataset.qserver = "lost";
      $("qs-state").classList.add("disconnected");
    }

    function found() {
      banner.hidden = true;
      document.body.dataset.qserver = "up";
      $("qs-state").classList.remove("disconnected");
    }

    function showStatus(s) {
      const env = s.worker_environment_exists ? "open" : "closed";
      $("manager-state").textContent = s.manager_state || "—";
      $("re-state").textContent = s.re_state || "—";
      $("env-state").textContent = env;
      $("stop-pending").textContent = s.queue_stop_pending ? "yes" : "no";
      document.body.dataset.manager = s.manager_state || "";
      document.body.dataset.re = s.re_state || "";
      document.body.dataset.environment = env;
    }

    function itemRow(item, i, count) {
      const tr = document.createElement("tr");
      tr.dataset.uid = item.item_uid || "";
      tr.dataset.plan = item.name || "";
      cell(tr, String(i + 1));
      cell(tr, item.name || "", "plan");
      cell(tr, describe(item), "params");
      cell(tr, userOf(item), "user");
      const td = cell(tr, "", "edit");
      for (const [move, label, text, off] of [["up", "Move up", "↑", i === 0], ["down", "Move down", "↓", i === count - 1],
                                              ["remove", "Remove", "✕", false]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.move = move;
        button.textContent = text;
        button.disabled = off;
        button.setAttribute("aria-label", label + " " + (item.name || "") + " (" + (i + 1) + ")");
        td.appendChild(button);
      }
      return tr;
    }

    function historyRow(item) {
      const tr = document.createElement("tr");
      const result = item.result || {};
      tr.dataset.uid = item.item_uid || "";
      tr.dataset.plan = item.name || "";
      tr.dataset.exit = result.exit_status || "";
      cell(tr, item.name || "", "plan");
      cell(tr, describe(item), "params");
      cell(tr, userOf(item), "user");
      const status = cell(tr, result.exit_status || "—", "exit exit-" + (result.exit_status || "unknown"));
      if (result.msg) status.title = result.msg;
      return tr;
    }

    function showQueue(q) {
      const running = q.running_item || null;
      const key = [q.plan_queue_uid, q.plan_history_uid, running && running.item_uid].join(" ");
      if (key === shownQueue) return;
      shownQueue = key;
      items = q.items || [];
      const rows = $("queue-rows");
      rows.replaceChildren.apply(rows, items.map(function (item, i) { return itemRow(item, i, items.length); }));
      $("queue-empty").hidden = items.length > 0;

      const now = $("running");
      now.dataset.uid = running ? running.item_uid || "" : "";
      now.dataset.plan = running ? running.name || "" : "";
      if (running) {
        const who = userOf(running);
        now.textContent = running.name + "(" + describe(running) + ")" + (who ? ", added by " + who : "");
      } else {
        now.textContent = "Nothing is running.";
      }

      const history = (q.history || []).slice(-HISTORY_SHOWN).reverse();
      const past = $("history-rows");
      past.replaceChildren.apply(past, history.map(historyRow));
      $("history-empty").hidden = history.length > 0;
    }

    async function poll() {
      polling = true;
      try {
        const [status, queue] = await Promise.all([getJson("queue-server/status"), getJson("qserver/queue")]);
        const bad = [status, queue].find(function (r) { return r.status !== 200; });
        if (bad) {
          const why = bad.body && bad.body.error ? bad.body.error : "HTTP " + bad.status;
          lost([502, 503, 504].includes(bad.status) ? why : "The queue cannot be read: " + why);
        } else {
          found();
          showStatus(status.body);
          showQueue(queue.body);
          // none yet (e.g. the environment was never opened): asked again at each poll
          if (status.body.plans_allowed_uid !== plansUid || !Object.keys(plans).length) {
            loadPlans(status.body.plans_allowed_uid);
          }
        }
      } catch (err) {
        lost("The ophydsite server cannot be reached (" + err.message + ")");
      } finally {
        polling = false;
        clearTimeout(timer);
        timer = setTimeout(poll, fastLeft > 0 ? FAST_MS : POLL_MS);
        if (fastLeft > 0) fastLeft--;
      }
    }

    /** Poll now and fast for a while (after an action); a poll in flight schedules the next. */
    function soon() {
      fastLeft = FAST_POLLS;
      if (!polling) { clearTimeout(timer); timer = setTimeout(poll, 0); }
    }

    // Actions -----------------------------------------------------------------------------

    /** POST one queue action; the status line shows the Queue Server's answer or the refusal. */
    async function act(path, body, label) {
      actions += 1;
      say(label + "…", "", "sending");
      try {
        const response = await fetch(API + "qserver/" + path, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        let reply = null;
        try { reply = await response.json(); } catch (err) { reply = null; }
        if (response.ok && reply && reply.ok) {
          say(label + ": " + (reply.message || "done"), "ok", "done");
        } else {
          const why = reply && typeof reply.error === "string" ? reply.error : "HTTP " + response.status;
          say(label + " refused: " + why, "refused", (reply && reply.code) || String(response.status));
        }
        soon();
        return reply;
      } catch (err) {
        say(label + " could not be sent: " + err.message, "refused", "network");
        return null;
      }
    }

    // A button with data-confirm (what the action ends or loses) asks first; "Cancel" sends nothing.
    document.querySelectorAll("[data-qs-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        const option = button.dataset.option;
        const label = button.textContent.trim();
        if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
          actions += 1;
          say(label + ": cancelled, nothing sent", "", "cancelled");
          return;
        }
        act(button.dataset.qsAction, option ? { option: option } : undefined, label);
      });
    });

    $("queue-rows").addEventListener("click", function (event) {
      const button = event.target.closest("button[data-move]");
      if (!button) return;
      const uid = button.closest("tr").dataset.uid;
      const at = items.findIndex(function (item) { return item.item_uid === uid; });
      if (at < 0) return;
      const name = items[at].name;
      if (button.dataset.move === "remove") act("queue/remove", { uid: uid }, "Remove " + name);
      else if (button.dataset.move === "up" && at > 0) {
        act("queue/move", { uid: uid, before_uid: items[at - 1].item_uid }, "Move " + name + " up");
      } else if (button.dataset.move === "down" && at < items.length - 1) {
        act("queue/move", { uid: uid, after_uid: items[at + 1].item_uid }, "Move " + name + " down");
      }
    });

    // Adding a plan: the form from the plan's parameter descriptions -----------------------

    function showParams(name) {
      const plan = plans[name];
      $("plan-description").textContent = plan && plan.description ? plan.description : "";
      fields.replaceChildren();
      if (!plan) return;
      (plan.parameters || []).forEach(function (p, i) {
        const kind = kindOf(p);
        const box = document.createElement("div");
        box.className = "param";
        const id = "param-" + i;
        const label = document.createElement("label");
        label.htmlFor = id;
        label.textContent = (kind === KIND.VAR_POSITIONAL ? "*" : kind === KIND.VAR_KEYWORD ? "**" : "") + p.name +
          (isRequired(p) ? " (required)" : "");
        const input = document.createElement("input");
        input.id = id;
        input.name = p.name;
        input.autocomplete = "off";
        input.dataset.param = p.name;
        if ("default" in p) input.placeholder = String(p.default);
        if (isRequired(p)) input.required = true;
        const hint = document.createElement("small");
        hint.textContent = [typeOf(p), (p.description || "").split("\n")[0]].filter(Boolean).join(" — ");
        box.append(label, input, hint);
        fields.appendChild(box);
      });
    }

    async function loadPlans(uid) {
      if (loadingPlans) return;
      loadingPlans = true;
      try {
        const reply = await getJson("qserver/plans/allowed");
        if (reply.status !== 200 || !reply.body) return; // asked again at the next poll
        plans = reply.body.plans_allowed || {};
        plansUid = uid;
        const chosen = select.value;
        const options = [new Option("Choose a plan…", "")].concat(Object.keys(plans).sort().map(function (name) {
          return new Option(name, name); // Option() sets text, never markup
        }));
        select.replaceChildren.apply(select, options);
        if (chosen && plans[chosen]) select.value = chosen;
        else showParams("");
      } finally {
        loadingPlans = false;
      }
    }

    select.addEventListener("change", function () { showParams(select.value); });

    $("add-plan").addEventListener("submit", function (event) {
      event.preventDefault();
      const plan = plans[select.value];
      fields.querySelectorAll("input").forEach(function (input) { input.removeAttribute("aria-invalid"); });
      if (!plan) { actions += 1; say("Choose a plan first", "refused", "invalid"); return; }
      const texts = {};
      fields.querySelectorAll("input[data-param]").forEach(function (input) { texts[input.dataset.param] = input.value; });
      let item;
      try {
        item = planItem(plan, texts);
      } catch (err) {
        (err.params || []).forEach(function (name) {
          const input = fields.querySelector("input[data-param='" + CSS.escape(name) + "']");
          if (input) input.setAttribute("aria-invalid", "true");
        });
        actions += 1;
        say("Not sent: " + err.message, "refused", "invalid");
        return;
      }
      item.pos = $("plan-pos").value;
      act("queue/add", item, "Add " + plan.name);
    });

    poll();
    return { act: act, poll: soon, plans: function () { return plans; } };
  }

  return { start: start, expectation: expectation, parseValue: parseValue, planItem: planItem, describe: describe,
           userOf: userOf };
});
