// The demo page: connect to a room, send actions, show every frame the server sends.
// No framework and no CDN: it works offline.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    connectForm: $("connect-form"),
    user: $("user"),
    room: $("room"),
    connect: $("connect-button"),
    disconnect: $("disconnect-button"),
    reconnect: $("reconnect-button"),
    state: $("state"),
    count: $("count"),
    sendForm: $("send-form"),
    action: $("action"),
    message: $("message"),
    requestId: $("request-id"),
    send: $("send-button"),
    buttons: $("action-buttons"),
    log: $("log"),
    clear: $("clear-log"),
  };

  const RELAY = "message"; // what the page puts in "action" for a relay room, which has no actions
  const COUNT_EVERY_MS = 4000;

  let socket = null;
  let userClosed = false;
  let countTimer = null;
  let connectedRoom = null;
  const sent = new Map(); // request_id -> action, to label the replies to this page's own requests

  function roomOption() {
    return ui.room.options[ui.room.selectedIndex];
  }

  function roomActions(option) {
    try {
      const actions = JSON.parse(option.dataset.actions || "[]");
      return Array.isArray(actions) ? actions : [];
    } catch (error) {
      return [];
    }
  }

  function socketUrl(path) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + path;
  }

  function setState(text, kind) {
    ui.state.textContent = text;
    ui.state.className = "state state-" + kind;
  }

  function setConnected(connected) {
    for (const element of [ui.action, ui.message, ui.requestId, ui.send]) {
      element.disabled = !connected;
    }
    for (const button of ui.buttons.querySelectorAll("button")) {
      button.disabled = !connected;
    }
    ui.connect.hidden = connected;
    ui.disconnect.hidden = !connected;
    ui.user.disabled = connected;
    ui.room.disabled = connected;
    if (connected) {
      ui.reconnect.hidden = true;
    }
  }

  function fillActions() {
    const option = roomOption();
    const actions = roomActions(option);
    ui.action.replaceChildren();
    ui.buttons.replaceChildren();
    if (actions.length === 0) {
      const relay = new Option("(relay: sent as it is)", RELAY);
      ui.action.add(relay);
      return;
    }
    for (const name of actions) {
      ui.action.add(new Option(name, name));
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = name;
      button.disabled = !(socket && socket.readyState === WebSocket.OPEN);
      button.addEventListener("click", () => sendAction(name));
      ui.buttons.append(button);
    }
  }

  function time() {
    return new Date().toLocaleTimeString();
  }

  function addEntry(kind, label, body, details) {
    const item = document.createElement("li");
    item.className = "entry entry-" + kind;
    const head = document.createElement("div");
    head.className = "entry-head";
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = label;
    const when = document.createElement("span");
    when.className = "muted";
    when.textContent = time();
    head.append(tag, when);
    const text = document.createElement("div");
    text.className = "entry-body";
    text.textContent = body;
    item.append(head, text);
    if (details) {
      const extra = document.createElement("div");
      extra.className = "entry-details muted";
      extra.textContent = details;
      item.append(extra);
    }
    ui.log.prepend(item);
  }

  function describeFrame(frame) {
    // Returns [kind, label, body, details] for one decoded JSON frame.
    if (frame.status === "bad" || frame.errors) {
      const parts = [];
      if (frame.action != null) parts.push("action " + frame.action);
      if (frame.request_id != null) parts.push("request_id " + frame.request_id);
      if (frame.code != null) parts.push("code " + frame.code);
      if (frame.retry_after != null) parts.push("retry in " + frame.retry_after + " s");
      parts.push(frame.close ? "the server closes the connection" : "still connected");
      return ["error", "error", String(frame.errors || "error"), parts.join(" · ")];
    }
    const mine = frame.request_id != null && sent.has(String(frame.request_id)) && frame.user === ui.user.value;
    const who = frame.user != null ? frame.user : "?";
    const message = typeof frame.message === "string" ? frame.message : JSON.stringify(frame.message);
    const details = "action " + frame.action + (frame.request_id != null ? " · request_id " + frame.request_id : "");
    if (mine && frame.action === "count") {
      return ["reply", "reply to you", "connections in the room: " + message, details];
    }
    return [mine ? "own" : "broadcast", mine ? "you" : "broadcast", who + ": " + message, details];
  }

  function onFrame(event) {
    const text = event.data;
    let frame = null;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      frame = null;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      // Join/leave notices are plain strings.
      addEntry("notice", "notice", String(text));
      refreshCount();
      return;
    }
    const [kind, label, body, details] = describeFrame(frame);
    addEntry(kind, label, body, details);
  }

  function nextRequestId() {
    const current = Math.max(1, Math.floor(Number(ui.requestId.value) || 1));
    ui.requestId.value = String(current + 1);
    return current;
  }

  function sendAction(name) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      addEntry("error", "not sent", "The connection is not open.");
      return;
    }
    const requestId = nextRequestId();
    const frame = {
      action: name,
      user: ui.user.value,
      message: ui.message.value,
      request_id: requestId,
    };
    sent.set(String(requestId), name);
    socket.send(JSON.stringify(frame));
    addEntry("sent", "sent", name + (frame.message ? ": " + frame.message : ""), "request_id " + requestId);
  }

  async function refreshCount() {
    if (!connectedRoom) {
      ui.count.textContent = "";
      return;
    }
    try {
      const response = await fetch("/count" + connectedRoom, { cache: "no-store" });
      if (!response.ok) {
        ui.count.textContent = "";
        return;
      }
      const body = await response.json();
      const limit = body.max_connection ? " of " + body.max_connection : "";
      ui.count.textContent = body.connections + limit + " connected";
    } catch (error) {
      ui.count.textContent = "";
    }
  }

  function connect() {
    const name = ui.user.value.trim();
    if (!name) {
      ui.user.focus();
      return;
    }
    ui.user.value = name;
    const path = roomOption().value;
    if (socket) {
      userClosed = true;
      socket.close();
    }
    userClosed = false;
    connectedRoom = path;
    setState("connecting to " + path + "…", "connecting");
    ui.connect.hidden = true;
    ui.reconnect.hidden = true;
    const ws = new WebSocket(socketUrl(path));
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      setState("connected to " + path + " as " + name, "open");
      setConnected(true);
      refreshCount();
      clearInterval(countTimer);
      countTimer = setInterval(refreshCount, COUNT_EVERY_MS);
    });
    ws.addEventListener("message", (event) => {
      if (socket === ws) onFrame(event);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      clearInterval(countTimer);
      setConnected(false);
      const reason = event.reason ? ": " + event.reason : "";
      const how = "closed (code " + event.code + reason + ")";
      setState(userClosed ? "disconnected" : how, userClosed ? "idle" : "closed");
      if (!userClosed) {
        addEntry("closed", "connection", "The connection " + how + ".");
        ui.reconnect.hidden = false;
      }
      connectedRoom = null;
      ui.count.textContent = "";
    });
  }

  ui.connectForm.addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  ui.reconnect.addEventListener("click", connect);
  ui.disconnect.addEventListener("click", () => {
    if (socket) {
      userClosed = true;
      socket.close(1000, "bye");
    }
  });
  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendAction(ui.action.value);
  });
  ui.room.addEventListener("change", fillActions);
  ui.clear.addEventListener("click", () => ui.log.replaceChildren());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshCount();
  });

  fillActions();
  setConnected(false);
})();
