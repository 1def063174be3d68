// The skillswitch playground: a chat over /v1/chat/completions (streamed) that shows, beside each
// answer, the route it took, read from the trace (schema skillswitch.trace/1) on the last chunk.
//
// Plain JavaScript, no build step and nothing fetched from elsewhere. Everything the server sends
// is inserted as text (textContent, or strings passed to append), never parsed as HTML.
"use strict";

const KEY_STORAGE = "skillswitch.apiKey";
const DEFAULT_MODEL = "skillswitch";

const AGGREGATION_MODES = {
  pass_through: "pass-through: one answer, no aggregator call",
  agreement: "agreement: the experts agreed, aggregator skipped",
  voted: "voted: the answer most experts gave",
  synthesised: "synthesized by the aggregator",
  aggregator_failed: "aggregator failed: one expert's answer kept",
};

const state = {
  history: [], // the conversation sent with each request: [{role, content}]
  controller: null, // the AbortController of the answer being streamed
};

const $ = (id) => document.getElementById(id);

// --- small DOM helpers (text only) ----------------------------------------------------------

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function definitions(pairs) {
  const list = el("dl", "facts");
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    const description = el("dd", null, value);
    description.dataset.term = term;
    list.append(el("dt", null, term), description);
  }
  return list;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return `${Number(value).toFixed(value < 10 ? 1 : 0)} ms`;
}

function cost(value) {
  if (value === null || value === undefined) return "–";
  return value === 0 ? "0" : String(Number(Number(value).toPrecision(4)));
}

function score(value) {
  return Number(value).toFixed(3);
}

function tokens(usage) {
  if (!usage) return "–";
  return `${usage.prompt_tokens} in / ${usage.completion_tokens} out`;
}

function json(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 1);
  } catch {
    return String(value);
  }
}

// --- the API: key, errors, streaming ----------------------------------------------------------

class ApiError extends Error {
  // status: the HTTP status (null for an error event inside a stream); error: OpenAI's error.
  constructor(status, error, midStream = false) {
    super(error.message || "unknown error");
    this.status = status;
    this.error = error;
    this.midStream = midStream;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "object" && body.error !== null) return body.error;
  } catch {
    // not JSON: the text itself is the message
  }
  return { message: text || response.statusText || `HTTP ${response.status}`, code: null };
}

// A fetch that asks for the API key when the server answers 401, then tries again.
async function apiFetch(path, init = {}) {
  for (;;) {
    const response = await fetch(path, {
      ...init,
      headers: { ...(init.headers || {}), ...authHeaders() },
    });
    if (response.status !== 401) return response;
    const error = await errorOf(response);
    if (!(await askForKey(error.message))) throw new ApiError(401, error);
  }
}

function askForKey(reason) {
  const dialog = $("key-dialog");
  const form = $("key-form");
  const input = $("key-input");
  $("key-reason").textContent = reason || "";
  input.value = "";
  return new Promise((resolve) => {
    const finish = (saved) => {
      form.removeEventListener("submit", onSubmit);
      $("key-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      showKeyState();
      resolve(saved);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      finish(true);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    form.addEventListener("submit", onSubmit);
    $("key-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
}

function showKeyState() {
  const set = sessionStorage.getItem(KEY_STORAGE) !== null;
  $("key-state").hidden = !set;
  $("forget-key").hidden = !set;
}

// Server-sent events of a fetch response: yields each `data:` payload parsed as JSON, until
// `[DONE]`. An error event (OpenAI's `{"error": ...}`, or `event: error`) is thrown.
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = done ? "" : blocks.pop();
      for (const block of blocks) {
        let name = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("event:")) name = line.slice(6).trim();
        }
        if (data.length === 0) continue;
        const payload = data.join("\n");
        if (payload === "[DONE]") return;
        let parsed;
        try {
          parsed = JSON.parse(payload);
        } catch {
          throw new ApiError(null, { message: `the server sent an event that is not JSON: ${payload}` }, true);
        }
        if (parsed && parsed.error) throw new ApiError(null, parsed.error, true);
        if (name === "error") throw new ApiError(null, { message: payload }, true);
        yield parsed;
      }
      if (done) {
        throw new ApiError(null, { message: "the stream ended without [DONE]" }, true);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// --- models -----------------------------------------------------------------------------------

async function loadModels() {
  const select = $("model");
  const help = $("model-help");
  try {
    const response = await apiFetch("/v1/models");
    if (!response.ok) throw new ApiError(response.status, await errorOf(response));
    const cards = (await response.json()).data || [];
    const groups = [
      ["auto", "Routed by skill"],
      ["skill", "Force a skill"],
      ["expert", "One expert, no routing"],
    ];
    const previous = select.value;
    select.replaceChildren();
    const descriptions = new Map();
    for (const [kind, label] of groups) {
      const members = cards.filter((card) => card.kind === kind);
      if (members.length === 0) continue;
      const group = el("optgroup");
      group.label = label;
      for (const card of members) {
        const option = el("option", null, card.id);
        option.value = card.id;
        option.title = card.description || "";
        descriptions.set(card.id, card);
        group.append(option);
      }
      select.append(group);
    }
    select.value = descriptions.has(previous) ? previous : DEFAULT_MODEL;
    if (!select.value && cards.length) select.value = cards[0].id;
    const describe = () => {
      const card = descriptions.get(select.value);
      help.textContent = card ? `${card.description} Experts: ${card.experts.join(", ")}.` : "";
    };
    select.onchange = describe;
    describe();
    select.disabled = false;
    hideBanner();
  } catch (error) {
    showBanner(`Could not list the models: ${describeError(error)}`);
    select.disabled = false; // the default model still works
  }
}

// --- the conversation -------------------------------------------------------------------------

function describeError(error) {
  if (error instanceof ApiError) {
    const parts = [];
    if (error.status !== null) parts.push(`HTTP ${error.status}`);
    if (error.error.code) parts.push(error.error.code);
    const head = parts.length ? `${parts.join(" ")}: ` : "";
    return `${head}${error.message}`;
  }
  return error && error.message ? error.message : String(error);
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function addTurn(text, model) {
  $("empty").hidden = true;
  const turn = el("article", "turn");
  const user = el("div", "msg user", el("div", "who", "You"), el("div", "text", text));
  const answerText = el("div", "text");
  const status = el("div", "status muted small", "Routing…");
  const answer = el("div", "msg assistant", el("div", "who", model), answerText, status);
  const route = el("aside", "route", el("h3", null, "Route"), el("p", "muted small", "Waiting for the trace…"));
  route.dataset.state = "pending";
  turn.append(user, el("div", "exchange", answer, route));
  $("conversation").append(turn);
  scrollToEnd();
  return { turn, answer, answerText, status, route };
}

function scrollToEnd() {
  const conversation = $("conversation");
  conversation.scrollTop = conversation.scrollHeight;
}

function showError(view, error) {
  const box = el("div", "error-box", el("strong", null, error.midStream ? "The stream broke: " : "Error: "), describeError(error));
  box.setAttribute("role", "alert");
  view.status.before(box);
  view.answer.classList.add("failed");
}

async function send(text) {
  const model = $("model").value || DEFAULT_MODEL;
  const view = addTurn(text, model);
  const messages = [...state.history, { role: "user", content: text }];
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let answer = "";
  let trace = null;
  let finish = null;
  try {
    const response = await apiFetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true } }),
      signal: controller.signal,
    });
    if (!response.ok) throw new ApiError(response.status, await errorOf(response));
    view.status.textContent = "Streaming…";
    for await (const chunk of sseEvents(response.body)) {
      for (const choice of chunk.choices || []) {
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          answer += piece;
          view.answerText.textContent = answer;
          scrollToEnd();
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (chunk.skillswitch) trace = chunk.skillswitch;
    }
    state.history = [...messages, { role: "assistant", content: answer }];
    view.status.textContent = finish && finish !== "stop" ? `Finished: ${finish}` : "";
    view.answer.classList.add("done");
    renderRoute(view.route, trace, model, messages.length);
  } catch (error) {
    const stopped = controller.signal.aborted;
    view.status.textContent = stopped
      ? "Stopped. This turn is left out of the conversation."
      : "This turn is left out of the conversation.";
    if (stopped) view.answer.classList.add("stopped");
    else showError(view, error);
    // A failed run's error carries the trace of what was tried (502, 504): draw it.
    const failedTrace = !stopped && error instanceof ApiError ? error.error.skillswitch : null;
    if (failedTrace) {
      renderRoute(view.route, failedTrace, model, messages.length);
      view.route.dataset.state = "failed";
    } else {
      renderFailedRoute(view.route, stopped ? "Stopped before the trace arrived." : "No trace: the request failed.");
    }
  } finally {
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("prompt").disabled = busy;
  if (!busy) $("prompt").focus();
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.history = [];
  for (const turn of document.querySelectorAll("#conversation .turn")) turn.remove();
  $("empty").hidden = false;
}

// --- the route of one answer ------------------------------------------------------------------

function renderFailedRoute(panel, reason) {
  panel.dataset.state = "failed";
  panel.replaceChildren(el("h3", null, "Route"), el("p", "muted small", reason));
}

function routeKind(routing) {
  if (routing.classifier === "forced") return "forced skill";
  if (routing.classifier === "direct") return "one expert, no routing";
  return "routed by skill";
}

function stage(name, title, ...body) {
  const item = el("li", `stage ${name}`, el("h4", null, title), ...body);
  item.dataset.stage = name;
  return item;
}

function renderRoute(panel, trace, model, messageCount) {
  if (!trace) {
    renderFailedRoute(panel, "The server sent no trace with this answer.");
    return;
  }
  panel.dataset.state = "done";
  const routing = trace.routing || {};
  const aggregation = trace.aggregation;
  const timing = trace.timing_ms || {};

  // The route at a glance: request → skills → experts → aggregator → answer.
  const summary = el("ol", "summary");
  const chip = (kind, ...content) => {
    if (summary.childElementCount) {
      const arrow = el("li", "arrow", "→");
      arrow.setAttribute("aria-hidden", "true");
      summary.append(arrow);
    }
    return el("li", `chip ${kind}`, ...content);
  };
  summary.append(chip("request", "request"));
  const skills = routing.skills || [];
  summary.append(
    routing.out_of_scope
      ? chip("skill out", "out of scope")
      : chip("skill", skills.length ? skills.map((s) => `${s.skill} ${score(s.score)}`).join(", ") : routing.label),
  );
  const experts = (trace.experts || []).map((selection) => selection.expert);
  const fallbacks = (trace.results || []).filter((r) => r.fallback_for).map((r) => `${r.expert} (for ${r.fallback_for})`);
  summary.append(chip("experts", [...experts, ...fallbacks].join(", ") || "no expert"));
  summary.append(chip("aggregator", aggregation ? aggregation.mode.replace("_", "-") : "none"));
  summary.append(chip("answer", `${ms(timing.total)} · cost ${cost(trace.usage && trace.usage.cost)}`));

  const flow = el("ol", "flow");
  flow.append(
    stage(
      "request",
      "Request",
      definitions([
        ["model", model],
        ["route", routeKind(routing)],
        ["messages", String(messageCount)],
        ["truncated", routing.truncated ? "yes: the router read the start of the text only" : null],
      ]),
    ),
  );
  flow.append(stage("skills", "Skills", ...skillsView(routing)));
  if (trace.recruitment) flow.append(stage("recruitment", "Recruitment", recruitmentView(trace.recruitment)));
  flow.append(stage("experts", "Experts", ...expertsView(trace)));
  flow.append(stage("aggregator", "Aggregator", aggregatorView(aggregation)));
  flow.append(
    stage(
      "answer",
      "Answer",
      definitions([
        ["tokens", tokens(trace.usage)],
        ["total cost", cost(trace.usage && trace.usage.cost)],
        ["routing", ms(timing.route)],
        ["experts", ms(timing.dispatch)],
        ["total", ms(timing.total)],
      ]),
    ),
  );
  panel.replaceChildren(el("h3", null, "Route"), summary, flow);
}

function skillsView(routing) {
  const nodes = [];
  if (routing.out_of_scope) {
    nodes.push(el("p", "badge out", "Out of scope: no skill passed its threshold"));
  }
  const table = el("table", "skills");
  table.append(el("thead", null, el("tr", null, el("th", null, "skill"), el("th", null, "score"))));
  const body = el("tbody");
  for (const item of routing.skills || []) {
    const meter = el("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = Math.max(0, Math.min(1, item.score));
    body.append(
      el("tr", null, el("td", "skill-name", item.skill), el("td", "score", meter, " ", el("span", "skill-score", score(item.score)))),
    );
  }
  if (!(routing.skills || []).length) {
    body.append(el("tr", null, el("td", "muted", "none"), el("td")));
  }
  table.append(body);
  nodes.push(table);
  nodes.push(
    definitions([
      ["label", routing.label],
      ["confidence", routing.confidence !== undefined ? `${score(routing.confidence)} (threshold ${score(routing.threshold)})` : null],
      ["classifier", routing.classifier],
      ["encoder", routing.encoder],
      [
        "router time",
        routing.timing_ms ? `${ms(routing.timing_ms.total)} (encode ${ms(routing.timing_ms.encode)}, classify ${ms(routing.timing_ms.classify)})` : null,
      ],
    ]),
  );
  const candidates = routing.candidates || [];
  if (candidates.length) {
    const list = el("ol", "candidates");
    for (const item of candidates) list.append(el("li", null, `${item.skill} ${score(item.score)}`));
    nodes.push(el("details", null, el("summary", null, `Candidates (${candidates.length})`), list));
  }
  return nodes;
}

function recruitmentView(basis) {
  const weights = Object.entries(basis.weights || {})
    .map(([name, weight]) => `${name} ${Number(weight).toFixed(2)}`)
    .join(", ");
  return definitions([
    ["source", basis.source],
    ["keywords", (basis.keywords || []).join(", ")],
    ["weights", weights],
    ["stages", (basis.stages || []).map((names) => names.join(", ")).join(" → ")],
    ["note", basis.note],
  ]);
}

function expertsView(trace) {
  const selections = trace.experts || [];
  const results = trace.results || [];
  if (!selections.length && !results.length) return [el("p", "muted small", "No expert was asked.")];
  const shown = new Set();
  const cards = [];
  for (const selection of selections) {
    const own = results.filter((r) => r.expert === selection.expert && !r.fallback_for);
    const replacing = results.filter((r) => r.fallback_for === selection.expert);
    own.forEach((r) => shown.add(r));
    replacing.forEach((r) => shown.add(r));
    const card = el("div", "expert");
    card.append(el("div", "expert-head", el("span", "expert-name", selection.expert), selection.skill ? el("span", "tag", selection.skill) : null));
    card.append(el("p", "why small", selection.reason));
    if (own.length) for (const result of own) card.append(resultView(result));
    else if (!replacing.length) card.append(el("p", "muted small", "Not called."));
    if (replacing.length && !own.length) {
      card.append(el("p", "small error", `${selection.expert} failed; its fallback was asked.`));
    }
    for (const result of replacing) {
      const fallback = el("div", "expert fallback");
      fallback.append(el("div", "expert-head", el("span", "expert-name", result.expert), el("span", "tag", `fallback for ${selection.expert}`)));
      fallback.append(resultView(result));
      card.append(fallback);
    }
    cards.push(card);
  }
  for (const result of results) {
    if (shown.has(result)) continue;
    const card = el("div", "expert");
    card.append(el("div", "expert-head", el("span", "expert-name", result.expert), result.fallback_for ? el("span", "tag", `fallback for ${result.fallback_for}`) : null));
    card.append(resultView(result));
    cards.push(card);
  }
  return cards;
}

function resultView(result) {
  const box = el("div", `result ${result.ok ? "ok" : "failed"}`);
  box.append(
    definitions([
      ["result", result.ok ? "answered" : "failed"],
      ["error", result.error],
      ["latency", result.ok ? ms(result.latency_ms) : null],
      ["tokens", result.usage ? tokens(result.usage) : null],
      ["cost", result.usage ? cost(result.usage.cost) : null],
    ]),
  );
  const attempts = result.attempts || [];
  const plain = attempts.length === 1 && attempts[0].outcome === "ok";
  if (plain) {
    box.querySelector(".facts").append(el("dt", null, "attempts"), el("dd", null, "1 (ok)"));
  } else if (attempts.length) {
    const list = el("ol", "attempts small");
    for (const a of attempts) {
      const parts = [`#${a.number} ${a.outcome}`, ms(a.duration_ms)];
      if (a.status !== null && a.status !== undefined) parts.push(`HTTP ${a.status}`);
      if (a.waited_ms) parts.push(`waited ${ms(a.waited_ms)}`);
      if (a.error) parts.push(a.error);
      list.append(el("li", a.outcome === "ok" ? null : "error", parts.join(" · ")));
    }
    box.append(el("div", "small muted", `Attempts (${attempts.length})`), list);
  }
  const calls = result.tool_calls || [];
  if (calls.length) {
    const table = el("table", "tools");
    table.append(el("thead", null, el("tr", null, el("th", null, "tool"), el("th", null, "arguments"), el("th", null, "result"), el("th", null, "time"))));
    const body = el("tbody");
    for (const call of calls) {
      const outcome = el("td", call.is_error ? "error" : null, el("pre", null, (call.is_error ? "error: " : "") + json(call.result)));
      body.append(el("tr", null, el("td", "tool-name", call.tool), el("td", null, el("pre", null, json(call.arguments))), outcome, el("td", null, ms(call.duration_ms))));
    }
    table.append(body);
    box.append(el("div", "small muted", `Tool calls (${calls.length})`), table);
  }
  if (result.output !== null && result.output !== undefined) {
    box.append(el("details", null, el("summary", null, "Reply"), el("pre", "reply", result.output)));
  }
  return box;
}

function aggregatorView(aggregation) {
  if (!aggregation) return el("p", "muted small", "None: no expert answered.");
  const mode = el("span", `mode ${aggregation.mode}`, AGGREGATION_MODES[aggregation.mode] || aggregation.mode);
  // Calls of the client's own tools the answer asks for (the playground offers none).
  const clientCalls = (aggregation.tool_calls || []).map((call) => `${call.name}(${json(call.arguments)})`);
  return el(
    "div",
    null,
    mode,
    definitions([
      ["tokens", aggregation.usage && aggregation.usage.prompt_tokens + aggregation.usage.completion_tokens ? tokens(aggregation.usage) : null],
      ["cost", aggregation.usage ? cost(aggregation.usage.cost) : null],
      ["answers", aggregation.answers && aggregation.answers.length > 1 ? String(aggregation.answers.length) : null],
      ["error", aggregation.error],
      ["detail", aggregation.detail],
      ["asks the client to call", clientCalls.join(", ")],
    ]),
  );
}

// --- start ------------------------------------------------------------------------------------

function start() {
  const prompt = $("prompt");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.controller) return;
    prompt.value = "";
    send(text);
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("new-chat").addEventListener("click", newChat);
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
  });
  showKeyState();
  loadModels();
}

start();
