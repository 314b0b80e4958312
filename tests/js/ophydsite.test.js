// Tests of static/ophydsite/ophydsite.js with Node's built-in runner.
//   node --experimental-websocket --test tests/js/
// The state-merging tests need nothing; with OPHYDSITE_HTTP set (tests/system_tests/test_js_client.py
// sets it to a `serve --demo` it started) the client also runs against that real server, and with
// OPHYDSITE_RESTART (a file name) set it writes that file and waits while the server is restarted.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { Client, Camera, Console, merge, format, keyOf, socketUrl } = require(path.join(__dirname, "..", "..", "static", "ophydsite", "ophydsite.js"));

const HTTP = process.env.OPHYDSITE_HTTP;
const WS = HTTP ? HTTP.replace(/^http/, "ws") : null;

test("value and metadata messages merge into one state", () => {
  let state = merge(undefined, { pv: "X", value: 1.23456, timestamp: 5, connected: true, severity: 0 });
  state = merge(state, { pv: "X", sub_type: "meta", obj: "X", units: "mm", precision: 2, connected: true,
    lower_ctrl_limit: -1, upper_ctrl_limit: 1 });
  assert.equal(state.value, 1.23456);
  assert.equal(state.units, "mm");
  assert.equal(state.upper_ctrl_limit, 1);
  assert.equal(format(state), "1.23 mm");
  state = merge(state, { pv: "X", value: 2, timestamp: 6, connected: false, severity: 3 });
  assert.equal(state.connected, false);
  assert.equal(state.units, "mm"); // metadata kept when a value arrives
  assert.equal(format(state), "2.00 mm"); // the PV's precision, also for a whole number
});

test("enums, arrays, nulls and device keys", () => {
  assert.equal(format(merge({ enum_strs: ["Off", "On"] }, { value: 1 })), "On");
  assert.equal(format(merge({}, { value: [1, 2, 3, 4, 5, 6] })), "[6] 1, 2, 3, 4, …");
  assert.equal(format(merge({}, { value: null })), "—");
  assert.equal(format(undefined), "…");
  assert.equal(keyOf({ device: "motor1", signal: "motor1_user_readback" }), "motor1/motor1_user_readback");
  assert.equal(keyOf({ pv: "A:B" }), "A:B");
  assert.equal(keyOf({ action: "subscribe" }), null);
});

test("units left out for a page that shows them in a column; socket URLs from the page's address", () => {
  const state = merge(merge(undefined, { pv: "X", value: 1.5 }), { pv: "X", sub_type: "meta", units: "V", precision: 3 });
  assert.equal(format(state, { units: false }), "1.500");
  assert.equal(format(state), "1.500 V");
  assert.equal(socketUrl("/api/v1/pv-socket", { protocol: "http:", host: "h:8001" }), "ws://h:8001/api/v1/pv-socket");
  assert.equal(socketUrl("/api/v1/camera-socket", { protocol: "https:", host: "h" }), "wss://h/api/v1/camera-socket");
  assert.throws(() => socketUrl("/api/v1/pv-socket"), /ws:\/\/ URL/); // Node has no page
});

/** A WebSocket stand-in the test drives by hand: open(), receive(data), drop(). */
function fakeWebSocket() {
  const made = [];
  class FakeSocket {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; made.push(this); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.drop(); }
    open() { this.readyState = 1; this.onopen(); }
    receive(data) { this.onmessage({ data: data }); }
    drop() { if (this.readyState !== 3) { this.readyState = 3; this.onclose(); } }
  }
  return { FakeSocket, made };
}

test("a first connect that fails is reported as lost, then each change once", async () => {
  const { FakeSocket, made } = fakeWebSocket();
  const client = new Client("ws://x/api/v1/pv-socket", { WebSocket: FakeSocket, reconnectMs: 1 });
  const statuses = [];
  client.onStatus((up) => statuses.push(up));
  made[0].drop(); // the server is not there yet: the page shows its banner at once
  await waitFor(() => made.length === 2, 1000, "a second attempt");
  made[1].drop(); // still not there: nothing new to say
  await waitFor(() => made.length === 3, 1000, "a third attempt");
  made[2].open();
  client.close();
  assert.deepEqual(statuses, [false, true, false]);
});

test("a camera viewer sends its request on every connect and keeps changed settings", async () => {
  const { FakeSocket, made } = fakeWebSocket();
  const camera = new Camera("ws://x/api/v1/camera-socket", { camera: "sim", max_fps: 10 },
    { WebSocket: FakeSocket, reconnectMs: 1 });
  const frames = [], messages = [], errors = [];
  camera.onFrame((frame, count) => frames.push([frame, count]));
  camera.onMessage((message) => messages.push(message));
  camera.onError((err) => errors.push(err));
  assert.equal(made[0].binaryType, "blob");
  assert.equal(camera.send({ max_fps: 5 }), false); // not connected yet: goes with the first message
  made[0].open();
  assert.deepEqual(made[0].sent, [{ camera: "sim", max_fps: 5 }]);
  made[0].receive(JSON.stringify({ x: 640, y: 480, colorMode: "Mono", dataType: "UInt16" }));
  made[0].receive(new Uint8Array([0xff, 0xd8]));
  made[0].receive(new Uint8Array([0xff, 0xd9]));
  made[0].receive(JSON.stringify({ error: "no such field", code: "unknown_field" }));
  assert.deepEqual(messages, [{ x: 640, y: 480, colorMode: "Mono", dataType: "UInt16" }]);
  assert.deepEqual(frames.map(([, count]) => count), [1, 2]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unknown_field");
  assert.equal(camera.send({ toggleLogNormalization: true }), true);
  assert.deepEqual(made[0].sent[1], { toggleLogNormalization: true });
  made[0].drop();
  await waitFor(() => made.length === 2, 1000, "the reconnect");
  made[1].open(); // the same viewer again, log scale included (the first message's name for it)
  assert.deepEqual(made[1].sent, [{ camera: "sim", max_fps: 5, logNormalization: true }]);
  camera.close();
  assert.equal(made.length, 2);
});

test("a camera viewer asks for processing, switches it off for reconnects too, and hears results", async () => {
  const { FakeSocket, made } = fakeWebSocket();
  const camera = new Camera("ws://x/api/v1/camera-socket", { camera: "sim", processing: true },
    { WebSocket: FakeSocket, reconnectMs: 1 });
  const messages = [];
  camera.onMessage((message) => messages.push(message));
  made[0].open();
  assert.deepEqual(made[0].sent, [{ camera: "sim", processing: true }]);
  const results = { processing: { width: 640, height: 480, x_center_of_mass_raw: 320.5, x_profile: [1, 2] }, frame: 7 };
  made[0].receive(JSON.stringify(results)); // results and frames interleave
  made[0].receive(new Uint8Array([0xff, 0xd8]));
  assert.deepEqual(messages, [results]);
  assert.equal(camera.frames, 1);
  assert.equal(camera.send({ processing: false }), true);
  assert.deepEqual(made[0].sent[1], { processing: false });
  made[0].receive(JSON.stringify({ processing: "off" }));
  assert.deepEqual(messages[1], { processing: "off" });
  made[0].drop();
  await waitFor(() => made.length === 2, 1000, "the reconnect");
  made[1].open();
  assert.deepEqual(made[1].sent, [{ camera: "sim", processing: false }]);
  camera.close();
});

/** A console entry as the server sends it. */
const line = (seq, msg) => JSON.stringify({ time: seq / 1e6, msg: msg, seq: seq });

test("a console shows the source state and each line once, and resumes after its last seq", async () => {
  const { FakeSocket, made } = fakeWebSocket();
  const qs = new Console("ws://x/api/v1/qs-console-socket", { WebSocket: FakeSocket, reconnectMs: 1 });
  const lines = [], states = [], statuses = [], messages = [], errors = [];
  qs.onLine((text, entry) => lines.push([text, entry.seq]));
  qs.onState((source) => states.push([source.console, source.connected, source.message]));
  qs.onStatus((up) => statuses.push(up));
  qs.onMessage((message) => messages.push(message));
  qs.onError((err) => errors.push(err));
  assert.equal(made[0].url, "ws://x/api/v1/qs-console-socket"); // the first connect: state, then the backlog
  made[0].open();
  assert.deepEqual(made[0].sent, []); // the console socket needs no request
  made[0].receive(JSON.stringify({ console: "connected", connected: true, source: "tcp://qs:60625", message: "" }));
  made[0].receive(line(10, "plan step 1"));
  made[0].receive(line(11, "\n"));
  made[0].receive(line(11, "\n")); // the same entry again: shown once
  made[0].receive(JSON.stringify({ console: "disconnected", connected: false, source: "tcp://qs:60625",
    message: "no heartbeat for 10 s" }));
  assert.equal(qs.source.connected, false);
  assert.equal(qs.lastSeq, 11);
  made[0].drop();
  await waitFor(() => made.length === 2, 1000, "the reconnect");
  assert.equal(made[1].url, "ws://x/api/v1/qs-console-socket?after=11"); // the entries it missed, not the backlog
  made[1].open();
  made[1].receive(JSON.stringify({ console: "connected", connected: true, source: "tcp://qs:60625", message: "" }));
  made[1].receive(line(11, "\n")); // an entry it had: dropped
  made[1].receive(line(12, "plan step 2\n"));
  const replay = { action: "replay", after: 11, sent: 1, complete: true, last_seq: 12 };
  made[1].receive(JSON.stringify(replay));
  made[1].receive(JSON.stringify({ error: "3 console entries were skipped", code: "entries_skipped", skipped: 3 }));
  made[1].receive(new Uint8Array([1])); // not a console message: ignored
  assert.deepEqual(lines, [["plan step 1", 10], ["\n", 11], ["plan step 2\n", 12]]);
  assert.deepEqual(states, [["connected", true, ""], ["disconnected", false, "no heartbeat for 10 s"],
    ["connected", true, ""]]);
  assert.deepEqual(statuses, [true, false, true]);
  assert.deepEqual(messages, [replay]);
  assert.deepEqual(errors.map((err) => [err.code, err.reply.skipped]), [["entries_skipped", 3]]);
  made[1].drop();
  await waitFor(() => made.length === 3, 1000, "the second reconnect");
  assert.equal(made[2].url, "ws://x/api/v1/qs-console-socket?after=12");
  qs.close();
  assert.equal(made.length, 3);
});

test("a console started after a seq asks for that from its first connect", () => {
  const { FakeSocket, made } = fakeWebSocket();
  const qs = new Console("ws://x/api/v1/qs-console-socket?token=t", { WebSocket: FakeSocket, after: 5 });
  const lines = [];
  qs.onLine((text) => lines.push(text));
  assert.equal(made[0].url, "ws://x/api/v1/qs-console-socket?token=t&after=5");
  made[0].open();
  made[0].receive(line(5, "an entry it had"));
  made[0].receive(line(6, "the first after"));
  assert.deepEqual(lines, ["the first after"]);
  assert.equal(qs.lastSeq, 6);
  qs.close();
});

test("a batch frame is dispatched element by element, exactly as single frames would be", () => {
  const messages = [
    { pv: "A", value: 1, timestamp: 1, connected: true, severity: 0 },
    { pv: "B", sub_type: "meta", obj: "B", units: "mm", precision: 1, connected: true },
    { pv: "B", value: 2.25, timestamp: 2, connected: true, severity: 1 },
    { device: "m1", signal: "m1_rbv", value: 3, connected: true, signal_connected: true },
  ];
  const heard = (client) => { const out = []; client.onChange((key, state) => out.push([key, state])); return out; };
  const single = fakeWebSocket(), batched = fakeWebSocket();
  const one = new Client("ws://x/api/v1/pv-socket", { WebSocket: single.FakeSocket });
  const many = new Client("ws://x/api/v1/pv-socket", { WebSocket: batched.FakeSocket, batchMs: 20 });
  const fromSingles = heard(one), fromBatch = heard(many);
  const errors = [];
  many.onError((err) => errors.push(err));
  single.made[0].open();
  batched.made[0].open();
  for (const m of messages) single.made[0].receive(JSON.stringify(m));
  batched.made[0].receive(JSON.stringify({ action: "options", batch_ms: 20 })); // the reply: nothing to show
  batched.made[0].receive(JSON.stringify(messages));
  batched.made[0].receive("[]");
  assert.deepEqual(fromBatch, fromSingles);
  assert.equal(fromBatch.length, 4);
  assert.equal(format(many.state("B")), "2.3 mm");
  assert.equal(many.state("m1/m1_rbv").value, 3);
  assert.deepEqual(errors, []);
  one.close();
  many.close();
});

test("batchMs asks for batches on every connect, before subscribing; without it nothing is asked", async () => {
  const { FakeSocket, made } = fakeWebSocket();
  const client = new Client("ws://x/api/v1/pv-socket", { WebSocket: FakeSocket, batchMs: 50, reconnectMs: 1 });
  client.subscribe(["A", "B"]);
  made[0].open();
  assert.deepEqual(made[0].sent, [{ action: "options", batch_ms: 50 }, { action: "subscribe", pvs: ["A", "B"] }]);
  made[0].drop();
  await waitFor(() => made.length === 2, 1000, "the reconnect");
  made[1].open();
  assert.deepEqual(made[1].sent, [{ action: "options", batch_ms: 50 }, { action: "subscribe", pvs: ["A", "B"] }]);
  client.close();
  const plain = fakeWebSocket();
  const old = new Client("ws://x/api/v1/device-socket", { WebSocket: plain.FakeSocket });
  old.subscribe("motor1");
  plain.made[0].open();
  assert.deepEqual(plain.made[0].sent, [{ action: "subscribe", devices: ["motor1"] }]); // ophyd-websocket's traffic
  old.close();
});

test("long name lists go in requests of at most namesPerRequest names", () => {
  const { FakeSocket, made } = fakeWebSocket();
  const client = new Client("ws://x/api/v1/pv-socket", { WebSocket: FakeSocket });
  const names = Array.from({ length: 1200 }, (_, i) => "P:" + i);
  client.subscribe(names); // 2,000-row pages resubscribe everything on a reconnect
  made[0].open();
  assert.deepEqual(made[0].sent.map((m) => [m.action, m.pvs.length]), [["subscribe", 500], ["subscribe", 500],
    ["subscribe", 200]]);
  assert.deepEqual(made[0].sent.flatMap((m) => m.pvs), names);
  client.unsubscribe(names.slice(0, 600));
  assert.deepEqual(made[0].sent.slice(3).map((m) => [m.action, m.pvs.length]), [["unsubscribe", 500], ["unsubscribe", 100]]);
  client.close();
});

function waitFor(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const got = predicate();
      if (got) { clearInterval(timer); resolve(got); }
      else if (Date.now() - started > ms) { clearInterval(timer); reject(new Error("timed out waiting for " + what)); }
    }, 20);
  });
}

test("live: subscribe, see values with units and precision, set with a promise", { skip: !HTTP }, async () => {
  const client = new Client(WS + "/api/v1/pv-socket");
  try {
    const values = [];
    client.onChange((name, state) => { if (name === "DEMO:sine" && state.hasValue) values.push(state.value); });
    client.subscribe(["DEMO:sine", "DEMO:m1:sp"]);
    const sine = await waitFor(() => { const s = client.state("DEMO:sine"); return s && s.hasMeta && s.hasValue && s; },
      10000, "DEMO:sine");
    assert.equal(sine.connected, true);
    assert.equal(sine.units, "V");
    assert.match(format(sine), /^-?\d+\.\d{3} V$/);
    await waitFor(() => new Set(values).size > 2, 10000, "DEMO:sine to move");

    const reply = await client.set("DEMO:m1:sp", 1.25);
    assert.equal(reply.status, "done");
    await waitFor(() => client.state("DEMO:m1:sp") && client.state("DEMO:m1:sp").value === 1.25, 5000, "readback");

    await assert.rejects(client.set("DEMO:ro", 3), (err) => err.code === "read_only" && err.reply.target === "DEMO:ro");
    await assert.rejects(client.set("DEMO:m1:sp", "not a number"), (err) => err.code === "bad_value");
  } finally {
    client.close();
  }
});

test("live: the device socket, keyed by device and signal", { skip: !HTTP }, async () => {
  const client = new Client(WS + "/api/v1/device-socket");
  try {
    client.subscribe("motor1");
    await waitFor(() => client.state("motor1/motor1_user_readback"), 15000, "motor1's readback");
    const reply = await client.set("motor1", 0.5, { timeout: 30 });
    assert.equal(reply.status, "done");
    await waitFor(() => Math.abs(client.state("motor1/motor1_user_readback").value - 0.5) < 0.01, 10000,
      "the readback to follow");
  } finally {
    client.close();
  }
});

test("live: batched delivery, as arrays of the usual messages, and the client follows them", { skip: !HTTP }, async () => {
  const frames = [];
  const raw = new WebSocket(WS + "/api/v1/pv-socket");
  raw.onmessage = (event) => frames.push(JSON.parse(event.data));
  const client = new Client(WS + "/api/v1/pv-socket", { batchMs: 50 });
  try {
    await waitFor(() => raw.readyState === 1, 10000, "the raw socket to open");
    raw.send(JSON.stringify({ action: "options", batch_ms: 50, id: 1 }));
    raw.send(JSON.stringify({ action: "subscribe", pvs: ["DEMO:sine", "DEMO:counter"], id: 2 }));
    await waitFor(() => frames.filter(Array.isArray).length >= 3, 10000, "batch frames");
    assert.deepEqual(frames[0], { action: "options", batch_ms: 50, id: 1 });
    assert.equal(frames[1].id, 2); // replies stay single objects
    for (const batch of frames.filter(Array.isArray)) {
      assert.ok(batch.length >= 1 && batch.every((m) => typeof m.pv === "string"));
      const keys = batch.map((m) => m.pv + (m.sub_type || ""));
      assert.equal(new Set(keys).size, keys.length); // the latest per PV and kind
    }
    const values = [];
    client.onChange((name, state) => { if (name === "DEMO:sine" && state.hasValue) values.push(state.value); });
    client.subscribe(["DEMO:sine"]);
    await waitFor(() => new Set(values).size > 2, 10000, "DEMO:sine to move through batches");
    assert.equal(client.state("DEMO:sine").units, "V");
  } finally {
    raw.close();
    client.close();
  }
});

test("live: the simulation camera's description and JPEG frames", { skip: !HTTP }, async () => {
  const camera = new Camera(WS + "/api/v1/camera-socket", { camera: "sim", max_fps: 10, logNormalization: false });
  const frames = [];
  let shape = null;
  camera.onMessage((message) => { if (message.x) shape = message; });
  camera.onFrame((frame, count) => frames.push([frame, count]));
  try {
    await waitFor(() => frames.length >= 3, 15000, "three frames");
    assert.deepEqual([shape.x, shape.y, shape.colorMode], [640, 480, "Mono"]);
    const bytes = new Uint8Array(await frames[0][0].arrayBuffer());
    assert.deepEqual([bytes[0], bytes[1]], [0xff, 0xd8]); // a JPEG
    assert.deepEqual(frames.map(([, count]) => count).slice(0, 3), [1, 2, 3]);
  } finally {
    camera.close();
  }
});

test("live: processing results, as the camera page draws them", { skip: !HTTP }, async () => {
  const camera = new Camera(WS + "/api/v1/camera-socket", { camera: "sim", max_fps: 10, processing: true });
  let results = null;
  camera.onMessage((message) => { if (message.processing && typeof message.processing === "object") results = message; });
  try {
    await waitFor(() => results, 15000, "processing results");
    assert.equal(typeof results.frame, "number");
    const r = results.processing;
    for (const key of ["width", "height", "x_center_of_mass_raw", "y_center_of_mass_raw", "x_fit_mean", "y_fit_mean"]) {
      assert.equal(typeof r[key], "number", key);
    }
    assert.deepEqual([r.x_profile.length, r.y_profile.length], [r.width, r.height]);
  } finally {
    camera.close();
  }
});

test("live: the Queue Server console's source state, and a replay after a seq", { skip: !HTTP }, async () => {
  const qs = new Console(WS + "/api/v1/qs-console-socket", { after: 0 }); // every entry the server keeps
  const messages = [];
  qs.onMessage((message) => messages.push(message));
  try {
    const source = await waitFor(() => qs.source, 10000, "the source state");
    assert.equal(source.connected, source.console === "connected"); // no Queue Server here: "disconnected"
    assert.match(source.source, /^tcp:\/\//);
    const replay = await waitFor(() => messages.find((m) => m.action === "replay"), 10000, "the replay's answer");
    assert.equal(replay.after, 0);
    assert.equal(typeof replay.complete, "boolean");
    assert.equal(replay.sent, 0);
  } finally {
    qs.close();
  }
});

test("live: a lost server connection is shown; the client resubscribes and a console resumes by itself",
  { skip: !HTTP || !process.env.OPHYDSITE_RESTART }, async () => {
    const client = new Client(WS + "/api/v1/pv-socket", { reconnectMs: 200, maxReconnectMs: 1000 });
    const statuses = [];
    client.onStatus((up) => statuses.push(up));
    const qs = new Console(WS + "/api/v1/qs-console-socket", { after: 0, reconnectMs: 200, maxReconnectMs: 1000 });
    const replays = [];
    qs.onMessage((message) => { if (message.action === "replay") replays.push(message); });
    try {
      client.subscribe("DEMO:counter");
      await waitFor(() => client.state("DEMO:counter") && client.state("DEMO:counter").connected, 10000, "counter");
      await waitFor(() => replays.length === 1, 10000, "the console's first replay");
      // The Python side watches this file and restarts the server on the same port (the test
      // runner holds a test's stdout until it ends, so a printed marker would come too late).
      require("node:fs").writeFileSync(process.env.OPHYDSITE_RESTART, "now");
      await waitFor(() => statuses.includes(false), 20000, "the connection to drop");
      assert.equal(client.state("DEMO:counter").connected, false); // greyed until it is back
      const before = client.state("DEMO:counter").value;
      await waitFor(() => statuses.filter((s) => s).length >= 2, 60000, "the reconnect");
      await waitFor(() => { const s = client.state("DEMO:counter"); return s.connected && s.value !== before; },
        20000, "live values again, without subscribing again by hand");
      assert.ok(client.reconnects >= 1);
      await waitFor(() => replays.length >= 2, 20000, "the console to resume by itself");
      assert.equal(replays[replays.length - 1].after, qs.lastSeq); // after the last line it had
      assert.ok(qs.reconnects >= 1);
    } finally {
      client.close();
      qs.close();
    }
  });
