/*
 * ophydsite.js — a small client for ophydsite's (and ophyd-websocket's) pv-socket,
 * device-socket, camera-socket and qs-console-socket. No build step, no dependencies; works in browsers and in Node (>= 20 with
 * --experimental-websocket, or any WebSocket passed as options.WebSocket).
 *
 *   const client = new OphydSite.Client("ws://host:8001/api/v1/pv-socket");
 *   client.onChange((name, state) => console.log(name, state.value, state.units, state.connected));
 *   client.subscribe(["IOC:m1"]);
 *   await client.set("IOC:m1", 5);            // resolves with the server's reply, rejects on refusal
 *
 *   const camera = new OphydSite.Camera("/api/v1/camera-socket", { camera: "sim", max_fps: 10 });
 *   camera.onFrame((jpeg) => { img.src = URL.createObjectURL(jpeg); });
 *
 *   const qs = new OphydSite.Console("/api/v1/qs-console-socket");
 *   qs.onLine((text) => pre.append(text));
 *   qs.onState((source) => console.log(source.console));   // "connected" or "disconnected"
 *
 * One state per PV (or device signal) merges value and metadata messages; subscriptions (and a
 * camera's request) are re-sent after a reconnect, which happens by itself with a growing delay;
 * a console resumes after the last line it had. A big display passes {batchMs: 50}: the server
 * then sends its updates as one JSON-array frame per 50 ms (docs/protocol.md, "Batched delivery").
 * A URL that starts with "/" is a socket on the page's own server.
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.OphydSite = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  /** Merge one server message into a target's state; returns the new state object. */
  function merge(previous, message) {
    const state = Object.assign({}, previous || {});
    if (message.sub_type === "meta") {
      for (const key of Object.keys(message)) {
        if (key !== "sub_type" && key !== "obj") state[key] = message[key];
      }
      state.hasMeta = true;
    } else {
      for (const key of ["value", "timestamp", "connected", "severity", "read_access", "write_access",
        "signal_connected"]) {
        if (key in message) state[key] = message[key];
      }
      state.hasValue = true;
    }
    return state;
  }

  /** The value as an operator should read it: enum strings, the PV's precision, units (leave
   *  them out with {units: false} where a page shows them in a column of their own). */
  function format(state, { units = true } = {}) {
    if (!state || !state.hasValue) return "…";
    let value = state.value;
    if (state.enum_strs && typeof value === "number" && state.enum_strs[value] !== undefined) {
      value = state.enum_strs[value];
    } else if (typeof value === "number" && typeof state.precision === "number" && state.precision >= 0) {
      value = value.toFixed(Math.min(state.precision, 20)); // 3 at precision 3 reads "3.000"
    } else if (Array.isArray(value)) {
      value = "[" + value.length + "] " + value.slice(0, 4).join(", ") + (value.length > 4 ? ", …" : "");
    } else if (value === null) {
      value = "—";
    }
    return units && state.units ? value + " " + state.units : String(value);
  }

  /** Which key a message is about, on either socket (device messages carry device and signal). */
  function keyOf(message) {
    if (message.device !== undefined) return message.signal ? message.device + "/" + message.signal : message.device;
    if (message.pv !== undefined) return message.pv;
    return null;
  }

  /** ws:// or wss:// (as the page's own scheme) on the page's host, or on `where` (a Location). */
  function socketUrl(path, where) {
    const page = where || (typeof location !== "undefined" ? location : null);
    if (!page) throw new Error("no page to take the host from: pass a ws:// URL");
    return (page.protocol === "https:" ? "wss://" : "ws://") + page.host + path;
  }

  /** One WebSocket kept open: reopened by itself with a growing delay; status and error
   *  listeners. Subclasses say where to connect each time (_address), what to send on open
   *  (_opened), what a message means (_receive) and what a lost connection means (_lost). */
  class Connection {
    constructor(url, options, defaults) {
      this.url = url.startsWith("/") ? socketUrl(url) : url;
      this.options = Object.assign({ reconnectMs: 500, maxReconnectMs: 10000 }, defaults, options);
      this.WebSocket = options.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null);
      if (!this.WebSocket) throw new Error("no WebSocket implementation: pass options.WebSocket");
      this.listeners = { status: [], error: [] };
      this.connected = false;
      this.told = null; // the last status listeners heard
      this.closed = false;
      this.delay = this.options.reconnectMs;
      this.reconnects = 0;
    }

    onStatus(fn) { this.listeners.status.push(fn); return this; }
    onError(fn) { this.listeners.error.push(fn); return this; }

    close() {
      this.closed = true;
      if (this.socket) this.socket.close();
    }

    _address() { return this.url; }
    _opened() {}
    _lost() {}
    _receive() {}

    _send(message) {
      if (!this.socket || this.socket.readyState !== 1) return false;
      this.socket.send(JSON.stringify(message));
      return true;
    }

    _emit(kind, ...args) {
      if (kind === "status") this.told = args[0];
      for (const fn of this.listeners[kind]) {
        try { fn(...args); } catch (err) { if (kind !== "error") this._emit("error", err); }
      }
    }

    _open() {
      const socket = new this.WebSocket(this._address());
      if (this.options.binaryType) socket.binaryType = this.options.binaryType;
      this.socket = socket;
      socket.onopen = () => {
        this.connected = true;
        this.delay = this.options.reconnectMs;
        this._emit("status", true);
        this._opened();
      };
      socket.onmessage = (event) => this._receive(event.data);
      let ended = false;
      const finish = () => {
        if (ended) return;
        ended = true;
        this.connected = false;
        if (this.told !== false) this._emit("status", false); // also when the first connect fails
        this._lost();
        if (this.closed) return;
        this.reconnects += 1;
        setTimeout(() => { if (!this.closed) this._open(); }, this.delay);
        this.delay = Math.min(this.delay * 2, this.options.maxReconnectMs);
      };
      socket.onclose = finish;
      // Browsers follow a failed connection's error with close; Node's WebSocket does not.
      socket.onerror = () => { if (socket.readyState !== 1) finish(); };
    }
  }

  class Client extends Connection {
    /**
     * @param {string} url  ws(s)://host/api/v1/pv-socket or .../device-socket (or just the path)
     * @param {object} [options]  {WebSocket, reconnectMs (first delay, 500), maxReconnectMs (10000),
     *                             readOnly (subscribe with subscribeReadOnly), setTimeoutMs (60000),
     *                             batchMs (ask for one frame of updates per batchMs; 0, the default,
     *                             asks nothing: ophyd-websocket's frames), namesPerRequest (500, the
     *                             server's OAS_MAX_NAMES_PER_REQUEST: longer lists go in several requests)}
     */
    constructor(url, options = {}) {
      super(url, options, { readOnly: false, setTimeoutMs: 60000, batchMs: 0, namesPerRequest: 500 });
      this.kind = /device-socket/.test(this.url) ? "device" : "pv";
      this.states = new Map(); // key -> merged state
      this.wanted = new Set(); // names to (re)subscribe
      this.pending = new Map(); // request id -> {resolve, reject, timer}
      this.listeners.change = [];
      this.nextId = 1;
      this._open();
    }

    onChange(fn) { this.listeners.change.push(fn); return this; }

    /** Start following names (PVs or devices); kept across reconnects. */
    subscribe(names) {
      const list = [].concat(names).filter((n) => !this.wanted.has(n));
      list.forEach((n) => this.wanted.add(n));
      if (list.length && this.connected) this._subscribe(list);
      return this;
    }

    unsubscribe(names) {
      const list = [].concat(names).filter((n) => this.wanted.delete(n));
      if (list.length && this.connected) this._names("unsubscribe", list);
      for (const key of Array.from(this.states.keys())) {
        if (list.some((n) => key === n || key.startsWith(n + "/"))) this.states.delete(key);
      }
      return this;
    }

    /** Set a PV or device; resolves with the reply (status "done"), rejects with an Error
     *  carrying .code and .reply when the server refuses or the set fails. */
    set(name, value, { timeout, signal } = {}) {
      const id = "set-" + this.nextId++;
      const message = { action: "set", [this.kind]: name, value: value, id: id };
      if (timeout !== undefined) message.timeout = timeout;
      if (signal !== undefined) message.signal = signal;
      return this._request(id, message);
    }

    /** Ask the server to send every subscribed value and metadata again. */
    refresh() { return this._request("refresh-" + this.nextId++, { action: "refresh" }, true); }

    state(key) { return this.states.get(key); }

    close() {
      super.close();
      for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error("client closed")); }
      this.pending.clear();
    }

    // --- internals ---------------------------------------------------------------------------

    _request(id, message, resolveAnyReply = false) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(Object.assign(new Error("no reply within " + this.options.setTimeoutMs + " ms"), { code: "timeout" }));
        }, this.options.setTimeoutMs);
        this.pending.set(id, { resolve, reject, timer, resolveAnyReply });
        if (!this._send(message)) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(Object.assign(new Error("not connected"), { code: "not_connected" }));
        }
      });
    }

    _subscribe(list) {
      this._names(this.options.readOnly ? "subscribeReadOnly" : "subscribe", list);
    }

    /** One action over many names, in requests the server accepts (it refuses over-long lists). */
    _names(action, list) {
      const size = Math.max(1, this.options.namesPerRequest);
      for (let i = 0; i < list.length; i += size) {
        this._send({ action: action, [this.kind + "s"]: list.slice(i, i + size) });
      }
    }

    _opened() {
      // Options hold for one connection: asked again on every connect, before any data is due.
      if (this.options.batchMs > 0) this._send({ action: "options", batch_ms: this.options.batchMs });
      if (this.wanted.size) this._subscribe(Array.from(this.wanted));
    }

    _lost() {
      for (const [key, state] of this.states) { // unmistakable: nothing shown is live any more
        this.states.set(key, Object.assign({}, state, { connected: false }));
        this._emit("change", key, this.states.get(key));
      }
    }

    _receive(text) {
      if (typeof text !== "string") return;
      let message;
      try { message = JSON.parse(text); } catch (err) { this._emit("error", err); return; }
      if (Array.isArray(message)) { // a batch: each element as if it had come in a frame of its own
        for (const each of message) this._dispatch(each);
      } else {
        this._dispatch(message);
      }
    }

    _dispatch(message) {
      if (message === null || typeof message !== "object") return;
      const id = message.id;
      if (id !== undefined && this.pending.has(id)) {
        const p = this.pending.get(id);
        const failed = message.error !== undefined;
        if (p.resolveAnyReply || failed || message.status === "done") {
          this.pending.delete(id);
          clearTimeout(p.timer);
          if (failed) p.reject(Object.assign(new Error(message.error), { code: message.code, reply: message }));
          else p.resolve(message);
        }
        return;
      }
      if (message.error !== undefined) { this._emit("error", Object.assign(new Error(message.error), { code: message.code, reply: message })); return; }
      const key = keyOf(message);
      if (key === null || (message.action !== undefined && message.sub_type === undefined && !("value" in message))) return;
      const state = merge(this.states.get(key), message);
      this.states.set(key, state);
      this._emit("change", key, state);
    }
  }

  class Camera extends Connection {
    /**
     * A viewer on /api/v1/camera-socket: `request` (which camera or array PV, and settings such
     * as max_fps; docs/protocol.md) is sent on every connect; each JPEG frame (a Blob) goes to
     * onFrame with a running count, every other reply (the picture's shape, processing
     * results, settings) to onMessage, errors to onError with .code.
     * @param {object} [options]  {WebSocket, reconnectMs, maxReconnectMs, binaryType ("blob")}
     */
    constructor(url, request, options = {}) {
      super(url, options, { binaryType: "blob" });
      this.request = Object.assign({}, request);
      this.listeners.frame = [];
      this.listeners.message = [];
      this.frames = 0;
      this._open();
    }

    onFrame(fn) { this.listeners.frame.push(fn); return this; }
    onMessage(fn) { this.listeners.message.push(fn); return this; }

    /** Change this viewer's settings (e.g. {max_fps: 5}); kept for reconnects. False when not
     *  connected (then they go with the next connect). */
    send(settings) {
      const kept = Object.assign({}, settings);
      if ("toggleLogNormalization" in kept) { // the first message's name for it
        kept.logNormalization = kept.toggleLogNormalization;
        delete kept.toggleLogNormalization;
      }
      Object.assign(this.request, kept);
      return this._send(settings);
    }

    _opened() { this._send(this.request); }

    _receive(data) {
      if (typeof data !== "string") {
        this.frames += 1;
        this._emit("frame", data, this.frames);
        return;
      }
      let message;
      try { message = JSON.parse(data); } catch (err) { this._emit("error", err); return; }
      if (message.error !== undefined) this._emit("error", Object.assign(new Error(message.error), { code: message.code, reply: message }));
      else this._emit("message", message);
    }
  }

  class Console extends Connection {
    /**
     * The Queue Server's console on /api/v1/qs-console-socket. The first connect gets the
     * source state and the server's backlog; each reconnect asks for the entries after the last
     * `seq` it had (URL ?after=SEQ), so a lost connection loses nothing the server still keeps.
     * onLine((text, entry) => …) gets each chunk of console text once and in order (entry:
     * {time, msg, seq}); onState the source state {console: "connected"|"disconnected",
     * connected, source, message}, also kept as .source; onMessage every other reply (a
     * replay's {action: "replay", after, sent, complete, last_seq}); onError refusals with .code.
     * @param {object} [options]  {WebSocket, reconnectMs, maxReconnectMs, after (a seq to start
     *                             after instead of the backlog, 0 for all kept)}
     */
    constructor(url, options = {}) {
      super(url, options, { after: null });
      this.lastSeq = Number.isInteger(this.options.after) ? this.options.after : null;
      this.source = null;
      this.listeners.line = [];
      this.listeners.state = [];
      this.listeners.message = [];
      this._open();
    }

    onLine(fn) { this.listeners.line.push(fn); return this; }
    onState(fn) { this.listeners.state.push(fn); return this; }
    onMessage(fn) { this.listeners.message.push(fn); return this; }

    _address() {
      if (this.lastSeq === null) return this.url;
      return this.url + (this.url.includes("?") ? "&" : "?") + "after=" + this.lastSeq;
    }

    _receive(data) {
      if (typeof data !== "string") return;
      let message;
      try { message = JSON.parse(data); } catch (err) { this._emit("error", err); return; }
      if (typeof message.console === "string") {
        this.source = message;
        this._emit("state", message);
      } else if (typeof message.msg === "string" && Number.isInteger(message.seq)) {
        if (this.lastSeq !== null && message.seq <= this.lastSeq) return; // had it before a reconnect
        this.lastSeq = message.seq;
        this._emit("line", message.msg, message);
      } else if (message.error !== undefined) {
        this._emit("error", Object.assign(new Error(message.error), { code: message.code, reply: message }));
      } else {
        this._emit("message", message);
      }
    }
  }

  return { Client: Client, Camera: Camera, Console: Console, merge: merge, format: format, keyOf: keyOf, socketUrl: socketUrl };
});
