// The demo chat, built on the browser client the app serves. Rooms keep their messages by offset, so what the
// server replays after a reconnect, what /rooms/<room>/recent returns and what arrives live merge without repeats.
import { ChannelClient } from "/fastapi-channels/channels.js";

const CLOSE_MEANINGS = {
  1000: "closed normally",
  1001: "the server asked to reconnect",
  1005: "closed without a code",
  1006: "the network or the server went away",
  1008: "refused: sign in again",
  1011: "the server hit an error",
  1012: "the server is restarting",
  1013: "the server is busy: try again later",
  4000: "resuming after a gap",
  4408: "closed for being idle",
};
const PRIVATE = "@private";
const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

function clock(at) {
  const date = at ? new Date(at) : new Date();
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function hue(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) % 360;
  return hash;
}

function closeText(code) {
  return `code ${code}: ${CLOSE_MEANINGS[code] ?? "closed"}`;
}

function signIn() {
  const form = $("#signin-form");
  const problem = $("#signin-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const response = await fetch("/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: $("#signin-name").value.trim() }),
    });
    if (response.ok) return location.reload();
    const body = await response.json().catch(() => ({}));
    problem.textContent = typeof body.detail === "string" ? body.detail : "Pick a name of 1 to 24 letters or digits.";
    problem.hidden = false;
  });
}

function chat() {
  const me = document.body.dataset.user;
  const lobby = $("main.chat").dataset.lobby;
  const client = new ChannelClient("/chat", { backoff: { initial: 500, max: 8000 } });
  const rooms = new Map(); // name -> {epoch, messages: Map(offset -> data), members, unread}
  const privates = [];
  let privateUnread = 0;
  let current = lobby;
  let wasOpen = false;

  function room(name) {
    if (!rooms.has(name)) rooms.set(name, { epoch: null, messages: new Map(), members: [], membersAt: 0, unread: 0 });
    return rooms.get(name);
  }

  function store(name, offset, epoch, data) {
    const state = room(name);
    if (state.epoch !== epoch) {
      state.messages.clear(); // a new stream: offsets of the old one do not compare
      state.membersAt = 0;
      state.epoch = epoch;
    }
    if (state.messages.has(offset)) return false;
    state.messages.set(offset, data);
    if (data?.kind === "presence" && offset > state.membersAt) {
      state.members = data.members;
      state.membersAt = offset;
    }
    if (data?.kind === "message" && name !== current) state.unread += 1;
    return true;
  }

  async function loadRecent(name) {
    const response = await fetch(`/rooms/${encodeURIComponent(name)}/recent`);
    if (!response.ok) return;
    const page = await response.json();
    for (const { offset, data } of page.messages) store(name, offset, page.epoch, data);
    render();
  }

  function messageItem(offset, data) {
    if (data?.kind === "presence") {
      if (!data.event) return null;
      const text = `${data.user} ${data.event === "join" ? "joined" : "left"}`;
      return element("li", { class: "msg notice", "data-kind": "presence", "data-offset": offset }, text);
    }
    if (data?.kind !== "message") return null;
    const own = data.user === me;
    const name = element("span", { class: "msg-user", style: `--hue: ${hue(data.user)}` }, data.user);
    const time = element("time", { class: "msg-time" }, clock(data.at));
    const text = element("div", { class: "msg-text" }, data.text);
    const attributes = { class: own ? "msg own" : "msg", "data-kind": "message", "data-offset": offset, "data-user": data.user };
    return element("li", attributes, element("div", { class: "msg-head" }, name, time), text);
  }

  function privateItem(data) {
    const outgoing = data.from === me;
    const head = outgoing ? `to ${data.to}` : `from ${data.from}`;
    const attributes = { class: outgoing ? "msg private own" : "msg private", "data-kind": "private", "data-user": data.from };
    const line = element("div", { class: "msg-head" }, element("span", { class: "msg-user" }, head), element("time", { class: "msg-time" }, clock(data.at)));
    return element("li", attributes, line, element("div", { class: "msg-text" }, data.text));
  }

  function render() {
    const list = $("#messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const items = current === PRIVATE
      ? privates.map(privateItem)
      : [...room(current).messages].sort(([a], [b]) => a - b).map(([offset, data]) => messageItem(offset, data));
    list.replaceChildren(...items.filter(Boolean));
    if (!list.children.length) list.append(element("li", { class: "empty muted" }, current === PRIVATE ? "No private messages yet." : "No messages yet: say hello."));
    if (atBottom) list.scrollTop = list.scrollHeight;
    renderSidebar();
  }

  function renderSidebar() {
    const state = room(current === PRIVATE ? lobby : current);
    $("#room-title").textContent = current === PRIVATE ? "@ private messages" : `# ${current}`;
    $("#leave-button").hidden = current === PRIVATE || current === lobby;
    $("#member-count").textContent = String(state.members.length);
    $("#members").replaceChildren(...state.members.map((name) => {
      const button = element("button", { type: "button", "data-user": name, style: `--hue: ${hue(name)}` }, name, name === me ? " (you)" : "");
      button.disabled = name === me;
      return element("li", { "data-user": name }, button);
    }));
    const recipient = $("#recipient");
    const chosen = recipient.value;
    const people = room(lobby).members.filter((name) => name !== me);
    recipient.replaceChildren(element("option", { value: "" }, "everyone here"), ...people.map((name) => element("option", { value: name }, `${name} (private)`)));
    recipient.value = people.includes(chosen) ? chosen : "";
    for (const button of document.querySelectorAll("#rooms button[data-room]")) {
      const name = button.dataset.room;
      button.toggleAttribute("aria-current", name === current);
      const badge = button.querySelector(".unread");
      const unread = name === PRIVATE ? privateUnread : rooms.get(name)?.unread ?? 0;
      badge.textContent = String(unread);
      badge.hidden = unread === 0;
      button.classList.toggle("joined", name === lobby || client.channels.includes(name));
    }
  }

  function banner(text, kind = "info") {
    const box = $("#banner");
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = !text;
  }

  function log(direction, kind, payload) {
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    const entry = element("li", { class: "frame", "data-dir": direction, "data-kind": kind },
      element("time", {}, clock()), element("span", { class: "dir" }, { in: "←", out: "→", event: "•" }[direction]),
      element("code", {}, text.length > 400 ? `${text.slice(0, 400)}…` : text));
    const devlog = $("#devlog");
    devlog.prepend(entry);
    while (devlog.children.length > 300) devlog.lastChild.remove();
  }

  async function open(name) {
    current = name;
    if (name === PRIVATE) privateUnread = 0;
    else room(name).unread = 0;
    render();
    if (name === PRIVATE || name === lobby || client.channels.includes(name)) return;
    try {
      await client.subscribe(name);
    } catch (error) {
      banner(`Could not join #${name}: ${error.message}`, "bad");
    }
    render();
  }

  async function send(event) {
    event.preventDefault();
    const input = $("#message-input");
    const text = input.value.trim();
    const to = $("#recipient").value;
    const problem = $("#composer-error");
    if (!text) return;
    problem.hidden = true;
    try {
      if (to) await client.request("whisper", { to, text });
      else await client.request("say", { room: current === PRIVATE ? lobby : current, text });
      input.value = "";
    } catch (error) {
      problem.textContent = error.frame?.retry_after ? `${error.message} (retry in ${Math.ceil(error.frame.retry_after)} s)` : error.message;
      problem.hidden = false;
    }
    input.focus();
  }

  client.on("frame", ({ frame }) => log("in", frame?.type ?? frame?.kind ?? "message", frame));
  client.on("send", ({ frame }) => log("out", frame.action, frame));
  client.on("state", ({ state }) => {
    document.body.dataset.state = state;
    $("#state").textContent = state;
  });
  client.on("open", ({ attempt }) => {
    log("event", "open", attempt ? `open again after ${attempt} attempt(s)` : "open");
    if (wasOpen) banner("Reconnected: catching up on what you missed…");
    wasOpen = true;
  });
  client.on("close", ({ code, reason, willRetry }) => {
    log("event", "close", `close ${closeText(code)}${reason ? ` (${reason})` : ""}${willRetry ? ", will retry" : ""}`);
    if (!willRetry) banner(`Disconnected (${closeText(code)}).`, "bad");
  });
  client.on("reconnecting", ({ attempt, delay }) => {
    log("event", "reconnecting", `attempt ${attempt} in ${delay} ms`);
    banner(`Connection lost: reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})…`, "warn");
  });
  client.on("error", ({ frame }) => log("event", "error", `error ${frame.code}: ${frame.errors}`));
  client.on("publication", ({ channel, offset, epoch, data }) => {
    if (store(channel, offset, epoch, data)) render();
  });
  client.on("resume", ({ channel, recovered }) => {
    const state = room(channel);
    if (recovered) {
      if (wasOpen) banner(`Back online: #${channel} is up to date.`, "ok");
      return;
    }
    if (state.epoch !== null && state.messages.size) banner(`The server lost the history of #${channel}: showing what it has now.`, "warn");
    loadRecent(channel); // a first visit, or history no longer covers the gap
  });
  client.on("message", ({ data }) => {
    if (data?.kind !== "private") return;
    privates.push(data);
    if (current !== PRIVATE) privateUnread += 1;
    render();
  });

  $("#composer").addEventListener("submit", send);
  $("#rooms").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-room]");
    if (button) open(button.dataset.room);
  });
  $("#members").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-user]");
    if (!button) return;
    $("#recipient").value = button.dataset.user;
    $("#message-input").focus();
  });
  $("#leave-button").addEventListener("click", async () => {
    const name = current;
    await client.unsubscribe(name).catch((error) => banner(error.message, "bad"));
    rooms.delete(name);
    open(lobby);
  });
  $("#signout-button").addEventListener("click", async () => {
    client.close();
    await fetch("/logout", { method: "POST" });
    location.reload();
  });
  $("#drop-button").addEventListener("click", () => {
    const button = $("#drop-button");
    if (client.state === "closed") {
      button.textContent = "Drop the connection";
      banner("");
      client.connect();
    } else {
      client.close(1000, "Closed from the developer panel.");
      button.textContent = "Reconnect";
    }
  });
  $("#clear-devlog").addEventListener("click", () => $("#devlog").replaceChildren());

  window.chat = { client, rooms, privates }; // for the console, and for the browser tests
  render();
  client.connect();
}

if (document.body.dataset.user) chat();
else signIn();
