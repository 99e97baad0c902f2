// The demo page: connect to a room, send actions, show every frame the server sends.
// No framework and no CDN: it works offline.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    connectForm: $("connect-form"),
    user: $("user"),
    room: $("room"),
    about: $("room-about"),
    connect: $("connect-button"),
    disconnect: $("disconnect-button"),
    state: $("state"),
    count: $("count"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    reconnect: $("reconnect-button"),
    stopRetry: $("stop-retry-button"),
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
  const COUNT_EVERY_MS = 3000;
  // Close codes that mean "the connection dropped, try again": going away (server restart), abnormal
  // closure (no close frame: network or process gone), internal error, service restart, try again later.
  const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
  const RETRY_DELAYS_S = [1, 2, 4, 8, 16, 30];
  const CLOSE_MEANINGS = {
    1000: "closed normally",
    1001: "the server is going away",
    1006: "no close frame: the network or the server went away",
    1007: "the frame could not be read",
    1008: "policy violation",
    1011: "the server hit an unexpected error",
    1012: "the server is restarting",
    1013: "try again later",
  };

  let socket = null;
  let userClosed = false;
  let connectedRoom = null; // the room of the open (or last dropped) connection
  let retryTimer = null;
  let retryTick = null;
  let attempts = 0;
  const sent = new Set(); // request_ids this page sent, to tell its own messages and replies apart

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

  function isOpen() {
    return socket !== null && socket.readyState === WebSocket.OPEN;
  }

  function setState(text, kind) {
    ui.state.textContent = text;
    ui.state.className = "state state-" + kind;
    document.body.dataset.state = kind;
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
  }

  function fillActions() {
    const option = roomOption();
    const actions = roomActions(option);
    ui.about.textContent = option.dataset.about || "";
    ui.action.replaceChildren();
    ui.buttons.replaceChildren();
    if (actions.length === 0) {
      ui.action.add(new Option("(relay: sent as it is)", RELAY));
      return;
    }
    for (const name of actions) {
      ui.action.add(new Option(name, name));
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = name;
      button.dataset.action = name;
      button.disabled = !isOpen();
      button.addEventListener("click", () => sendAction(name));
      ui.buttons.append(button);
    }
  }

  function addEntry(kind, label, body, details, data) {
    const item = document.createElement("li");
    item.className = "entry entry-" + kind;
    item.dataset.kind = kind;
    for (const [key, value] of Object.entries(data || {})) {
      if (value != null) item.dataset[key] = String(value);
    }
    const head = document.createElement("div");
    head.className = "entry-head";
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = label;
    const when = document.createElement("span");
    when.className = "muted";
    when.textContent = new Date().toLocaleTimeString();
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

  function describeError(frame) {
    // An error frame answers this page's own request: the server sends it to the sender only.
    const parts = ["only you see this"];
    if (frame.action != null) parts.push("action " + frame.action);
    if (frame.request_id != null) parts.push("request_id " + frame.request_id);
    if (frame.code != null) parts.push("code " + frame.code);
    parts.push(frame.close ? "the server closes the connection" : "still connected");
    const data = { action: frame.action, code: frame.code, requestId: frame.request_id };
    const message = String(frame.errors || "error");
    if (frame.retry_after != null) {
      const seconds = Number(frame.retry_after).toFixed(1);
      data.retryAfter = frame.retry_after;
      return ["limited", "rate limited", message, "try again in " + seconds + " s · " + parts.join(" · "), data];
    }
    return ["error", "error", message, parts.join(" · "), data];
  }

  function describeFrame(frame) {
    // Returns [kind, label, body, details, data attributes] for one decoded JSON frame.
    if (frame.status === "bad" || frame.errors) {
      return describeError(frame);
    }
    if (frame.type === "response" && frame.status === "ok") {
      // The reply of a typed action: what it returned, sent to this page alone.
      const body = typeof frame.data === "string" ? frame.data : JSON.stringify(frame.data);
      const about = "only you see this · action " + frame.action + " · request_id " + frame.request_id;
      return ["reply", "reply to you", body, about, { action: frame.action, requestId: frame.request_id }];
    }
    const mine = frame.request_id != null && sent.has(String(frame.request_id)) && frame.user === ui.user.value;
    const who = frame.user != null ? frame.user : "?";
    const message = typeof frame.message === "string" ? frame.message : JSON.stringify(frame.message);
    const details = "action " + frame.action + (frame.request_id != null ? " · request_id " + frame.request_id : "");
    const data = { action: frame.action, user: frame.user, requestId: frame.request_id };
    if (mine && frame.action === "count") {
      return ["reply", "reply to you", "connections in the room: " + message, details, data];
    }
    return [mine ? "own" : "broadcast", mine ? "you" : "broadcast", who + ": " + message, details, data];
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
      // Join/leave notices are plain strings: someone came or went, so the count changed too.
      addEntry("notice", "room notice", String(text));
      refreshCount();
      return;
    }
    const [kind, label, body, details, data] = describeFrame(frame);
    addEntry(kind, label, body, details, data);
  }

  function nextRequestId() {
    const current = Math.max(1, Math.floor(Number(ui.requestId.value) || 1));
    ui.requestId.value = String(current + 1);
    return current;
  }

  function sendAction(name) {
    if (!isOpen()) {
      addEntry("error", "not sent", "The connection is not open: connect first.");
      return;
    }
    const requestId = nextRequestId();
    const frame = {
      action: name,
      user: ui.user.value,
      message: ui.message.value,
      request_id: requestId,
    };
    sent.add(String(requestId));
    socket.send(JSON.stringify(frame));
    const body = name + (frame.message ? ": " + frame.message : "");
    addEntry("sent", "sent", body, "request_id " + requestId, { action: name, requestId: requestId });
  }

  async function refreshCount() {
    // The live count of the room this page is in, or else of the room selected in the form.
    const path = connectedRoom || roomOption().value;
    try {
      const response = await fetch("/count" + path, { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      if (path !== (connectedRoom || roomOption().value)) return; // the room changed while we asked
      const limit = body.max_connection ? " of " + body.max_connection : "";
      ui.count.textContent = body.connections + limit + " connections in " + path + " (live)";
      ui.count.dataset.connections = String(body.connections);
    } catch (error) {
      ui.count.textContent = "count unavailable";
      delete ui.count.dataset.connections;
    }
  }

  function stopRetrying() {
    clearTimeout(retryTimer);
    clearInterval(retryTick);
    retryTimer = null;
    retryTick = null;
    ui.stopRetry.hidden = true;
  }

  function showBanner(text) {
    ui.bannerText.textContent = text;
    ui.banner.hidden = false;
  }

  function describeClose(event) {
    const meaning = CLOSE_MEANINGS[event.code];
    const reason = event.reason ? ": " + event.reason : meaning ? ": " + meaning : "";
    return "code " + event.code + reason;
  }

  function scheduleRetry(how) {
    const delay = RETRY_DELAYS_S[attempts];
    attempts += 1;
    let left = delay;
    const show = () =>
      showBanner(how + " Reconnecting in " + left + " s (attempt " + attempts + " of " + RETRY_DELAYS_S.length + ")…");
    show();
    retryTick = setInterval(() => {
      left = Math.max(0, left - 1);
      show();
    }, 1000);
    retryTimer = setTimeout(() => connect(true), delay * 1000);
    ui.stopRetry.hidden = false;
  }

  function onClose(event, path) {
    socket = null;
    setConnected(false);
    if (userClosed) {
      setState("disconnected", "idle");
      connectedRoom = null;
      refreshCount();
      return;
    }
    const how = "The connection to " + path + " closed (" + describeClose(event) + ").";
    setState("connection lost (code " + event.code + ")", "closed");
    addEntry("closed", "connection", how, null, { code: event.code });
    ui.count.textContent = "";
    delete ui.count.dataset.connections;
    if (RETRY_CODES.has(event.code) && attempts < RETRY_DELAYS_S.length) {
      scheduleRetry(how);
    } else {
      showBanner(how);
    }
  }

  function connect(retrying) {
    stopRetrying();
    if (retrying !== true) attempts = 0;
    const name = ui.user.value.trim();
    if (!name) {
      ui.user.focus();
      return;
    }
    ui.user.value = name;
    // Reconnect to the room that dropped; a fresh connect goes to the room selected in the form.
    const path = retrying === true && connectedRoom ? connectedRoom : roomOption().value;
    if (socket) {
      userClosed = true;
      socket.close();
    }
    userClosed = false;
    connectedRoom = path;
    setState("connecting to " + path + "…", "connecting");
    ui.connect.hidden = true;
    const ws = new WebSocket(socketUrl(path));
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      attempts = 0;
      ui.banner.hidden = true;
      setState("connected to " + path + " as " + name, "open");
      setConnected(true);
      refreshCount();
    });
    ws.addEventListener("message", (event) => {
      if (socket === ws) onFrame(event);
    });
    ws.addEventListener("close", (event) => {
      if (socket === ws) onClose(event, path);
    });
  }

  ui.connectForm.addEventListener("submit", (event) => {
    event.preventDefault();
    connect(false);
  });
  ui.reconnect.addEventListener("click", () => connect(true));
  ui.stopRetry.addEventListener("click", () => {
    stopRetrying();
    showBanner("Stopped reconnecting: press Reconnect or Connect when you are ready.");
  });
  ui.disconnect.addEventListener("click", () => {
    stopRetrying();
    ui.banner.hidden = true;
    if (socket) {
      userClosed = true;
      socket.close(1000, "bye");
    }
  });
  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendAction(ui.action.value);
  });
  ui.room.addEventListener("change", () => {
    fillActions();
    if (socket === null) {
      connectedRoom = null; // Reconnect now goes to the room just picked
      refreshCount();
    }
  });
  ui.clear.addEventListener("click", () => ui.log.replaceChildren());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshCount();
  });

  fillActions();
  setConnected(false);
  setState("not connected", "idle");
  refreshCount();
  setInterval(refreshCount, COUNT_EVERY_MS);
})();
