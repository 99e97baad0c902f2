// The fastapi-channels browser client: one WebSocket that reconnects, resumes channels with history and
// matches replies to requests. An ES module without dependencies or a build step; types in channels.d.ts.

/** Close codes after which the client connects again (the server went away, restarts, or is busy). */
export const RETRY_CODES = Object.freeze([1001, 1005, 1006, 1011, 1012, 1013, 1014, 4000, 4408]);
/** The code the client closes with to connect again at once, when publications of a channel went missing. */
export const RESYNC_CODE = 4000;

const DEFAULT_BACKOFF = Object.freeze({ initial: 500, max: 30000, factor: 2, jitter: 0.5, maxAttempts: Infinity });
const STABLE_AFTER = 5000; // ms a connection must stay open before the delays start again from `initial`

/** Whether a connection closed with `code` is tried again: no after a denial, a bad frame or a normal close. */
export function shouldRetry(code) {
  return RETRY_CODES.includes(code);
}

/** The delay before reconnect `attempt` (1, 2, ...): exponential, capped, minus a random share (jitter). */
export function backoffDelay(attempt, backoff = {}, random = Math.random) {
  const { initial, max, factor, jitter } = { ...DEFAULT_BACKOFF, ...backoff };
  const capped = Math.min(max, initial * factor ** Math.max(0, attempt - 1));
  return Math.round(capped * (1 - Math.min(1, Math.max(0, jitter)) * random()));
}

/** A request the server refused (`frame` is its error frame), or one the connection could not answer. */
export class ChannelError extends Error {
  constructor(message, { frame = null, code = null, timeout = false } = {}) {
    super(message);
    this.name = "ChannelError";
    this.frame = frame; // the error frame: errors, code, close, action, request_id, detail...
    this.code = code ?? frame?.code ?? null;
    this.timeout = timeout;
  }
}

/** One connection to a channel endpoint, kept open across drops, with its extra channels and positions. */
export class ChannelClient extends EventTarget {
  #url;
  #options;
  #socket = null;
  #state = "idle";
  #stopped = true;
  #attempt = 0;
  #openedAt = 0;
  #timer = null;
  #drainDelay = null;
  #nextId = 1;
  #pending = new Map(); // request_id -> {resolve, reject, timer, action}
  #positions = new Map(); // channel -> {offset, epoch}: the last publication handled
  #subs = new Map(); // channel -> {joined, waiters}
  #left = new Set(); // channels unsubscribed from: their frames still on the way are dropped
  #main = null; // the name of the connection's own channel, once a frame named it
  #connecting = []; // the promises connect() returned, settled at the next open or when the client gives up
  #resyncing = false;

  constructor(url, options = {}) {
    super();
    this.#url = toWebSocketUrl(url);
    this.#options = {
      protocols: options.protocols ?? [],
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
      resume: options.resume ?? true,
      requestTimeout: options.requestTimeout ?? 10000,
      storage: options.storage ?? null,
      storageKey: options.storageKey ?? `fastapi-channels:${this.#url}`,
      retry: options.retry ?? ((event) => shouldRetry(event.code)),
    };
    this.#main = options.channel ?? null;
    this.#load();
  }

  /** "idle", "connecting", "open", "reconnecting" (waiting to try again) or "closed" (stopped). */
  get state() {
    return this.#state;
  }

  /** The URL the next connection opens, with the position of the connection's channel when it resumes. */
  get url() {
    const url = new URL(this.#url);
    const position = this.#main === null ? undefined : this.#positions.get(this.#main);
    if (this.#options.resume && position) {
      url.searchParams.set("offset", String(position.offset));
      url.searchParams.set("epoch", position.epoch);
    }
    return url.href;
  }

  /** The connection's own channel, once a publication or resume frame named it (or as given). */
  get channel() {
    return this.#main;
  }

  /** The channels subscribed to beyond the connection's own. */
  get channels() {
    return [...this.#subs.keys()];
  }

  /** The position of the last publication of `channel` handled, if any: `{offset, epoch}`. */
  position(channel) {
    const found = this.#positions.get(channel);
    return found ? { ...found } : undefined;
  }

  /** Listen to `type` with `listener(detail)`; return a function that stops listening. */
  on(type, listener) {
    const handler = (event) => listener(event.detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /** Open the connection (again after `close()`); resolve once it is open, reject if the client gives up. */
  connect() {
    if (this.#state === "open") return Promise.resolve();
    const opened = new Promise((resolve, reject) => this.#connecting.push({ resolve, reject }));
    if (this.#stopped) {
      this.#stopped = false;
      this.#attempt = 0;
      this.#open();
    }
    return opened;
  }

  /** Close the connection and stop reconnecting. */
  close(code = 1000, reason = "") {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const socket = this.#socket;
    if (socket) {
      socket.close(code, reason);
      this.#closed(socket, { code, reason, wasClean: true }); // at once: the socket's own close event comes later
    } else if (this.#state !== "closed") {
      this.#stop(new ChannelError("The client was closed.", { code }));
    }
  }

  /** Send `{action, ...payload}` without waiting for an answer; throw a ChannelError when not connected. */
  send(action, payload = {}) {
    if (typeof action !== "string" || !action) throw new TypeError("send() takes an action name, a string.");
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      throw new TypeError(`The payload of '${action}' must be an object such as {"text": "hi"}.`);
    }
    const frame = { ...payload, action };
    this.#write(frame);
    return frame;
  }

  /** Send an action with a fresh request_id; resolve with its reply's data, reject with a ChannelError. */
  request(action, payload = {}, { timeout = this.#options.requestTimeout } = {}) {
    const requestId = this.#nextId++;
    return new Promise((resolve, reject) => {
      const frame = this.send(action, { ...payload, request_id: requestId });
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new ChannelError(`No reply to '${action}' within ${timeout} ms.`, { timeout: true }));
      }, timeout);
      this.#pending.set(requestId, { resolve, reject, timer, action: frame.action });
    });
  }

  /** Join `channel` too (again after each reconnect, resuming it); resolve once the server confirmed it. */
  subscribe(channel, { offset, epoch } = {}) {
    if (typeof channel !== "string" || !channel) throw new TypeError("subscribe() takes a channel name, a string.");
    if (offset !== undefined) this.#remember(channel, { offset, epoch });
    this.#left.delete(channel);
    let entry = this.#subs.get(channel);
    if (!entry) {
      entry = { joined: false, waiters: [] };
      this.#subs.set(channel, entry);
      if (this.#state === "open") this.#join(channel, entry);
    }
    if (entry.joined) return Promise.resolve({ channel });
    return new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
  }

  /** Leave `channel` and forget its position; resolve with the server's answer (at once when offline). */
  unsubscribe(channel) {
    const entry = this.#subs.get(channel);
    if (!entry) return Promise.resolve({ channel });
    this.#subs.delete(channel);
    this.#positions.delete(channel);
    this.#left.add(channel);
    this.#save();
    settle(entry.waiters, "reject", new ChannelError(`Unsubscribed from '${channel}' before it was joined.`));
    if (this.#state !== "open") {
      this.#emit("leave", { channel });
      return Promise.resolve({ channel });
    }
    return this.request("unsubscribe", { channel }).then((data) => {
      this.#emit("leave", { channel });
      return data;
    });
  }

  #open() {
    this.#setState("connecting");
    const socket = new WebSocket(this.url, this.#options.protocols);
    this.#socket = socket;
    socket.onopen = () => {
      this.#openedAt = Date.now();
      this.#setState("open");
      settle(this.#connecting.splice(0), "resolve");
      this.#emit("open", { url: socket.url, protocol: socket.protocol, attempt: this.#attempt });
      for (const [channel, entry] of this.#subs) this.#join(channel, entry);
    };
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onclose = (event) => this.#closed(socket, event);
  }

  #closed(socket, { code, reason, wasClean }) {
    if (socket !== this.#socket) return; // a socket already given up on
    this.#socket = socket.onopen = socket.onmessage = socket.onclose = null;
    if (this.#openedAt && Date.now() - this.#openedAt >= STABLE_AFTER) this.#attempt = 0;
    this.#openedAt = 0;
    for (const entry of this.#subs.values()) entry.joined = false;
    const error = new ChannelError(`The connection closed (code ${code}) before the reply.`, { code });
    for (const [id, request] of this.#pending) {
      clearTimeout(request.timer);
      request.reject(error);
      this.#pending.delete(id);
    }
    const { maxAttempts } = this.#options.backoff;
    const resync = this.#resyncing;
    this.#resyncing = false;
    const retry = resync || this.#options.retry({ code, reason });
    const willRetry = !this.#stopped && this.#attempt < maxAttempts && retry;
    this.#emit("close", { code, reason, wasClean, willRetry });
    if (!willRetry) {
      this.#stop(new ChannelError(`The connection closed (code ${code}) and will not be retried.`, { code }));
      return;
    }
    this.#attempt += 1;
    const delay = resync ? 0 : this.#drainDelay ?? backoffDelay(this.#attempt, this.#options.backoff);
    this.#drainDelay = null;
    this.#setState("reconnecting");
    this.#emit("reconnecting", { attempt: this.#attempt, delay });
    this.#timer = setTimeout(() => this.#open(), delay);
  }

  #stop(error) {
    this.#stopped = true;
    this.#setState("closed");
    settle(this.#connecting.splice(0), "reject", error);
    for (const entry of this.#subs.values()) settle(entry.waiters, "reject", error);
  }

  #join(channel, entry) {
    const position = this.#options.resume ? this.#positions.get(channel) : undefined;
    this.request("subscribe", { channel, ...position }).then(
      (data) => {
        if (this.#subs.get(channel) !== entry) return;
        entry.joined = true;
        settle(entry.waiters, "resolve", data);
        this.#emit("join", { channel });
      },
      (error) => {
        if (this.#subs.get(channel) !== entry) return;
        if (error.frame) {
          this.#subs.delete(channel); // refused: the server said why
          this.#emit("error", { frame: error.frame, channel });
        }
        // A drop is not settled: the channel is joined again at the next open. A timeout is.
        if (error.frame || error.timeout) settle(entry.waiters, "reject", error);
      },
    );
  }

  #receive(text) {
    if (this.#resyncing) return; // the socket is closing to resume: what still arrives comes again
    if (typeof text !== "string") return this.#emit("message", { data: text, channel: null });
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return this.#emit("message", { text, channel: null });
    }
    this.#emit("frame", { frame, text });
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      return this.#emit("message", { data: frame, channel: null });
    }
    switch (frame.type) {
      case "ping":
        return this.#write({ action: "pong" });
      case "drain":
        this.#drainDelay = Math.max(0, Number(frame.reconnect_in) * 1000 || 0);
        return this.#emit("drain", { reason: frame.reason, reconnectIn: frame.reconnect_in });
      case "publication":
        return this.#publication(frame);
      case "resume":
        return this.#resumed(frame);
      case "response":
        return this.#response(frame);
      case "broadcast":
        if (this.#left.has(frame.channel)) return;
        return this.#emit("message", { ...pick(frame), channel: frame.channel });
      default:
        return this.#emit("message", { data: frame, channel: null });
    }
  }

  #publication(frame) {
    const { channel, offset, epoch } = frame;
    if (!isPosition(offset, epoch) || !this.#tracks(channel)) return;
    const known = this.#positions.get(channel);
    if (known && known.epoch === epoch && offset <= known.offset) return; // had it already
    if (known && (known.epoch !== epoch || offset !== known.offset + 1)) {
      // Some went missing on the way (or the stream started again): reconnect and ask for them.
      this.#emit("gap", { channel, expected: known.offset + 1, offset, epoch });
      this.#resyncing = true;
      this.#socket?.close(RESYNC_CODE, "Resuming after a gap.");
      return;
    }
    this.#remember(channel, { offset, epoch });
    this.#emit("publication", { channel, offset, epoch, ...pick(frame) });
  }

  #resumed(frame) {
    const { channel, recovered, offset, epoch } = frame;
    if (!isPosition(offset, epoch) || !this.#tracks(channel)) return;
    const known = this.#positions.get(channel);
    if (!recovered || !known || known.epoch !== epoch || offset > known.offset) this.#remember(channel, { offset, epoch });
    this.#emit("resume", { channel, recovered, offset, epoch });
  }

  #response(frame) {
    const request = this.#pending.get(frame.request_id);
    if (request) {
      this.#pending.delete(frame.request_id);
      clearTimeout(request.timer);
    }
    if (frame.status === "ok") {
      request?.resolve(frame.data);
      return this.#emit("reply", { frame });
    }
    if (request) return request.reject(new ChannelError(String(frame.errors ?? "The request failed."), { frame }));
    this.#emit("error", { frame, channel: null });
  }

  #tracks(channel) {
    if (this.#subs.has(channel) || channel === this.#main) return true;
    if (this.#main !== null || this.#left.has(channel)) return false;
    this.#main = channel; // the connection's own channel speaks first, before any subscription
    return true;
  }

  #remember(channel, { offset, epoch }) {
    if (!isPosition(offset, epoch)) {
      throw new TypeError(`A position is {offset: a whole number >= 0, epoch: a string}, not ${offset}/${epoch}.`);
    }
    this.#positions.set(channel, { offset, epoch });
    this.#save();
  }

  #write(frame) {
    if (this.#state !== "open") {
      throw new ChannelError(`Not connected (${this.#state}): '${frame.action}' was not sent.`);
    }
    this.#socket.send(JSON.stringify(frame));
    this.#emit("send", { frame });
  }

  #setState(state) {
    this.#state = state;
    this.#emit("state", { state });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #load() {
    const stored = this.#options.storage?.getItem(this.#options.storageKey);
    if (!stored) return;
    try {
      const { main, positions } = JSON.parse(stored);
      this.#main ??= main ?? null;
      for (const [channel, position] of Object.entries(positions ?? {})) this.#positions.set(channel, position);
    } catch {
      // A stored value this client cannot read is ignored: it starts afresh.
    }
  }

  #save() {
    const positions = Object.fromEntries(this.#positions);
    this.#options.storage?.setItem(this.#options.storageKey, JSON.stringify({ main: this.#main, positions }));
  }
}

function isPosition(offset, epoch) {
  return Number.isSafeInteger(offset) && offset >= 0 && typeof epoch === "string" && epoch.length > 0;
}

function pick(frame) {
  return "data" in frame ? { data: frame.data } : { text: frame.text };
}

function settle(waiters, how, value) {
  for (const waiter of waiters.splice(0)) waiter[how](value);
}

function toWebSocketUrl(url) {
  const base = typeof location === "undefined" ? undefined : location.href;
  const resolved = new URL(url, base);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  if (resolved.protocol !== "ws:" && resolved.protocol !== "wss:") {
    throw new TypeError(`A channel URL is ws://, wss://, http://, https:// or a path, not ${resolved.protocol}.`);
  }
  return resolved.href;
}
