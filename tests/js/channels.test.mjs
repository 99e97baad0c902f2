// The browser client's logic in Node, against a fake WebSocket: backoff, close policy, positions, gaps,
// subscriptions. tests/test_client_js.py runs this file with `node --test`; the same client is tested in
// Chromium against real servers there too.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, ChannelClient, RESYNC_CODE, shouldRetry } from "../../fastapi_channels/static/channels.js";

class FakeSocket {
  static opened = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.protocol = "";
    this.sent = [];
    FakeSocket.opened.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.onclose?.({ code, reason, wasClean: true });
  }

  open() {
    this.onopen?.();
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  drop(code = 1006) {
    this.onclose?.({ code, reason: "", wasClean: false });
  }
}
globalThis.WebSocket = FakeSocket;

function latest() {
  return FakeSocket.opened.at(-1);
}

function record(client, ...types) {
  const events = [];
  for (const type of types) client.on(type, (detail) => events.push({ type, ...detail }));
  return events;
}

function publication(channel, offset, n, epoch = "e1") {
  return { type: "publication", channel, offset, epoch, data: { n } };
}

test("backoff grows by the factor up to the cap, less a random share", () => {
  const backoff = { initial: 100, max: 1000, factor: 2, jitter: 0.5 };
  assert.deepEqual([1, 2, 3, 4, 5, 9].map((attempt) => backoffDelay(attempt, backoff, () => 0)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffDelay(3, backoff, () => 1), 200); // half of 400 taken off at most
  assert.equal(backoffDelay(3, { ...backoff, jitter: 0 }, () => 1), 400);
});

test("closes after a denial, a bad frame or a normal close are not retried; drops and restarts are", () => {
  for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4401, 4403]) assert.equal(shouldRetry(code), false, code);
  for (const code of [1001, 1005, 1006, 1011, 1012, 1013, 1014, RESYNC_CODE, 4408]) assert.equal(shouldRetry(code), true, code);
});

test("a drop reconnects after the backoff and resumes from the last publication", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = new ChannelClient("ws://server/room", { backoff: { initial: 100, jitter: 0 } });
  const events = record(client, "publication", "resume", "close", "reconnecting");
  client.connect();
  latest().open();
  latest().receive({ type: "resume", channel: "lobby", recovered: false, offset: 4, epoch: "e1" });
  latest().receive(publication("lobby", 5, "a"));
  latest().receive(publication("lobby", 5, "a")); // a repeat: dropped
  latest().drop(1012);
  assert.equal(client.state, "reconnecting");
  const sockets = FakeSocket.opened.length;
  t.mock.timers.tick(99);
  assert.equal(FakeSocket.opened.length, sockets);
  t.mock.timers.tick(1);
  assert.equal(FakeSocket.opened.length, sockets + 1);
  assert.equal(latest().url, "ws://server/room?offset=5&epoch=e1");
  latest().open();
  latest().receive(publication("lobby", 6, "b"));
  assert.deepEqual(events.filter((e) => e.type === "publication").map((e) => e.data.n), ["a", "b"]);
  assert.deepEqual(events.find((e) => e.type === "close"), { type: "close", code: 1012, reason: "", wasClean: false, willRetry: true });
  assert.deepEqual(events.find((e) => e.type === "reconnecting"), { type: "reconnecting", attempt: 1, delay: 100 });
  client.close();
});

test("a denial stops the client and rejects connect() and pending requests", async () => {
  const client = new ChannelClient("ws://server/room");
  const connected = client.connect();
  latest().open();
  await connected;
  const sockets = FakeSocket.opened.length;
  await client.connect(); // open already: resolves at once, opens nothing more
  assert.equal(FakeSocket.opened.length, sockets);
  const pending = client.request("echo", { text: "hi" });
  latest().receive({ type: "response", status: "bad", action: null, request_id: null, errors: "No.", code: 1008, close: true });
  latest().drop(1008);
  await assert.rejects(pending, (error) => error.name === "ChannelError" && error.code === 1008);
  assert.equal(client.state, "closed");
  await assert.rejects(client.request("echo"), /Not connected \(closed\)/);
});

test("a gap in the offsets closes with 4000 and reconnects at once from the last publication in order", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = new ChannelClient("ws://server/room?token=x");
  const events = record(client, "publication", "gap", "close");
  client.connect();
  latest().open();
  latest().receive(publication("lobby", 1, "a"));
  latest().receive(publication("lobby", 3, "c"));
  assert.deepEqual(latest().closedWith, { code: RESYNC_CODE, reason: "Resuming after a gap." });
  t.mock.timers.tick(0);
  assert.equal(latest().url, "ws://server/room?token=x&offset=1&epoch=e1");
  assert.deepEqual(events.map((e) => e.type), ["publication", "gap", "close"]);
  client.close();
});

test("a request resolves with its reply's data and rejects with the error frame, matched by request_id", async () => {
  const client = new ChannelClient("ws://server/room");
  client.connect();
  latest().open();
  const first = client.request("echo", { text: "one" });
  const second = client.request("echo", { text: "" });
  assert.deepEqual(latest().sent, [
    { text: "one", action: "echo", request_id: 1 },
    { text: "", action: "echo", request_id: 2 },
  ]);
  latest().receive({ type: "response", status: "bad", action: "echo", request_id: 2, errors: "Too short.", code: 1007, close: false });
  latest().receive({ type: "response", status: "ok", action: "echo", request_id: 1, data: { text: "one" } });
  assert.deepEqual(await first, { text: "one" });
  await assert.rejects(second, (error) => error.frame.errors === "Too short." && error.code === 1007);
  assert.throws(() => client.send("echo", ["not", "an", "object"]), TypeError);
  client.close();
});

test("the connection answers pings, and a drain frame sets the next delay", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = new ChannelClient("ws://server/room");
  const events = record(client, "reconnecting");
  client.connect();
  latest().open();
  latest().receive({ type: "ping" });
  assert.deepEqual(latest().sent, [{ action: "pong" }]);
  latest().receive({ type: "drain", reason: "Server restarting: reconnect.", reconnect_in: 2.5 });
  latest().drop(1012);
  assert.deepEqual(events, [{ type: "reconnecting", attempt: 1, delay: 2500 }]);
  client.close();
});

test("subscriptions are joined at each open with their positions, and forgotten by unsubscribe", async () => {
  const client = new ChannelClient("ws://server/room", { backoff: { initial: 0, jitter: 0 } });
  const events = record(client, "publication", "join", "leave");
  const joined = client.subscribe("room:2", { offset: 7, epoch: "e2" });
  client.connect();
  latest().open();
  assert.deepEqual(latest().sent, [{ channel: "room:2", offset: 7, epoch: "e2", action: "subscribe", request_id: 1 }]);
  latest().receive({ type: "response", status: "ok", action: "subscribe", request_id: 1, data: { channel: "room:2" } });
  assert.deepEqual(await joined, { channel: "room:2" });
  latest().receive(publication("room:2", 8, "x", "e2"));
  assert.deepEqual(client.position("room:2"), { offset: 8, epoch: "e2" });
  assert.deepEqual(client.channels, ["room:2"]);

  const left = client.unsubscribe("room:2");
  assert.deepEqual(latest().sent.at(-1), { channel: "room:2", action: "unsubscribe", request_id: 2 });
  latest().receive(publication("room:2", 9, "late", "e2")); // on its way before the server took the unsubscribe
  latest().receive({ type: "response", status: "ok", action: "unsubscribe", request_id: 2, data: { channel: "room:2" } });
  await left;
  assert.deepEqual(events.map((e) => e.type), ["join", "publication", "leave"]);
  assert.equal(client.position("room:2"), undefined);
  client.close();
});

test("a refused subscription rejects and is not joined again", async () => {
  const client = new ChannelClient("ws://server/room");
  const errors = record(client, "error");
  client.connect();
  latest().open();
  const joined = client.subscribe("secret");
  latest().receive({ type: "response", status: "bad", action: "subscribe", request_id: 1, errors: "No.", code: 1008, close: false });
  await assert.rejects(joined, (error) => error.code === 1008);
  assert.deepEqual(client.channels, []);
  assert.equal(errors[0].channel, "secret");
  client.close();
});

test("positions kept in storage let a new client resume where the last one stopped", () => {
  const store = new Map();
  const storage = { getItem: (key) => store.get(key) ?? null, setItem: (key, value) => store.set(key, value) };
  const first = new ChannelClient("ws://server/room", { storage });
  first.connect();
  latest().open();
  latest().receive({ type: "resume", channel: "lobby", recovered: false, offset: 41, epoch: "e9" });
  latest().receive(publication("lobby", 42, "x", "e9"));
  first.close();
  const second = new ChannelClient("ws://server/room", { storage });
  assert.equal(second.channel, "lobby");
  assert.equal(second.url, "ws://server/room?offset=42&epoch=e9");
  const other = new ChannelClient("ws://server/elsewhere", { storage });
  assert.equal(other.url, "ws://server/elsewhere");
});

test("a non-recovered resume takes the server's position, and URLs from pages become ws URLs", () => {
  const client = new ChannelClient("https://example.com/room");
  assert.equal(client.url, "wss://example.com/room");
  client.connect();
  latest().open();
  latest().receive(publication("lobby", 10, "x"));
  latest().receive({ type: "resume", channel: "lobby", recovered: false, offset: 3, epoch: "e2" });
  assert.deepEqual(client.position("lobby"), { offset: 3, epoch: "e2" });
  client.close();
  assert.throws(() => new ChannelClient("ftp://example.com/room"), /not ftp:/);
});

test("broadcasts wrapped for a connection in several channels name their channel; other frames have none", () => {
  const client = new ChannelClient("ws://server/room");
  const messages = record(client, "message");
  client.connect();
  latest().open();
  latest().receive({ type: "broadcast", channel: "side", data: { hi: 1 } });
  latest().receive({ type: "broadcast", channel: "side", text: "plain words" });
  latest().receive({ kind: "private", text: "psst" });
  latest().receive("not json");
  latest().receive("[1, 2]");
  assert.deepEqual(messages, [
    { type: "message", data: { hi: 1 }, channel: "side" },
    { type: "message", text: "plain words", channel: "side" },
    { type: "message", data: { kind: "private", text: "psst" }, channel: null },
    { type: "message", text: "not json", channel: null },
    { type: "message", data: [1, 2], channel: null },
  ]);
  client.close();
});
