// A small WAMP v1 client for browsers, in plain JavaScript (no dependencies).
//
//   const session = new Wamp1("ws://127.0.0.1:8080/", {
//     onopen(session) { ... },          // after WELCOME: session.sessionId, session.server
//     onclose(code, reason) { ... },
//   });
//   session.prefix("push", "http://example.com/push#");
//   session.call("push:add", 1, 2).then((result) => ..., (error) => error.uri, error.desc, error.details);
//   session.subscribe("push:kittens", (topic, event) => ...);
//   session.publish("push:kittens", {text: "hi"});              // others only (WAMP v1 default)
//   session.publish("push:kittens", {text: "hi"}, false);       // me too
//   session.publish("push:kittens", event, [excluded ids], [eligible ids]);
//   session.unsubscribe("push:kittens");
//
// It speaks the WAMP v1 messages WELCOME 0, PREFIX 1, CALL 2, CALLRESULT 3,
// CALLERROR 4, SUBSCRIBE 5, UNSUBSCRIBE 6, PUBLISH 7 and EVENT 8, over a
// WebSocket with subprotocol "wamp".  Written for ratchet_sel's example page.
(function (global) {
  "use strict";

  const WELCOME = 0, PREFIX = 1, CALL = 2, CALLRESULT = 3, CALLERROR = 4,
    SUBSCRIBE = 5, UNSUBSCRIBE = 6, PUBLISH = 7, EVENT = 8;

  class Wamp1 {
    constructor(url, handlers) {
      this.handlers = handlers || {};
      this.sessionId = null;
      this.server = null;
      this.prefixes = {};          // CURIE prefix -> URI (both sides' PREFIX messages)
      this.calls = new Map();      // call id -> {resolve, reject}
      this.subscriptions = new Map(); // full topic URI -> handler
      this.nextCall = 0;
      this.queue = [];             // messages sent before the socket opened
      this.socket = new WebSocket(url, ["wamp"]);
      this.socket.onopen = () => {
        for (const text of this.queue) this.socket.send(text);
        this.queue = [];
      };
      this.socket.onmessage = (e) => this._receive(e.data);
      this.socket.onclose = (e) => {
        for (const pending of this.calls.values()) {
          pending.reject({ uri: "closed", desc: "connection closed before the answer", details: null });
        }
        this.calls.clear();
        if (this.handlers.onclose) this.handlers.onclose(e.code, e.reason);
      };
    }

    // "prefix:suffix" with a known prefix -> the prefix's URI + suffix (WAMP v1 CURIEs).
    resolve(uri) {
      const colon = uri.indexOf(":");
      if (colon > 0 && Object.prototype.hasOwnProperty.call(this.prefixes, uri.slice(0, colon))) {
        return this.prefixes[uri.slice(0, colon)] + uri.slice(colon + 1);
      }
      return uri;
    }

    prefix(prefix, uri) {
      this.prefixes[prefix] = uri;
      this._send([PREFIX, prefix, uri]);
    }

    call(procUri, ...args) {
      const callId = (++this.nextCall).toString(36) + "." + Math.random().toString(36).slice(2, 10);
      return new Promise((resolve, reject) => {
        this.calls.set(callId, { resolve, reject });
        this._send([CALL, callId, procUri, ...args]);
      });
    }

    subscribe(topicUri, handler) {
      const full = this.resolve(topicUri);
      const known = this.subscriptions.has(full);
      this.subscriptions.set(full, handler);
      if (!known) this._send([SUBSCRIBE, topicUri]);
    }

    unsubscribe(topicUri) {
      const full = this.resolve(topicUri);
      if (this.subscriptions.delete(full)) this._send([UNSUBSCRIBE, topicUri]);
    }

    // publish(topic, event): everybody else; publish(topic, event, excludeMe: boolean);
    // publish(topic, event, exclude: [session ids], eligible?: [session ids]).
    publish(topicUri, event, excludeOrExcludeMe, eligible) {
      const message = [PUBLISH, topicUri, event];
      if (eligible !== undefined) message.push(excludeOrExcludeMe || [], eligible);
      else if (excludeOrExcludeMe !== undefined) message.push(excludeOrExcludeMe);
      this._send(message);
    }

    close() {
      this.socket.close(1000, "bye");
    }

    _send(message) {
      const text = JSON.stringify(message);
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
      else this.queue.push(text);
    }

    _receive(text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch (err) {
        this.socket.close(1007, "not JSON");
        return;
      }
      if (!Array.isArray(message)) return;
      switch (message[0]) {
        case WELCOME:
          this.sessionId = message[1];
          this.server = message[3];
          if (message[2] !== 1) {
            this.socket.close(1002, "WAMP version " + message[2] + " is not supported");
          } else if (this.handlers.onopen) {
            this.handlers.onopen(this);
          }
          break;
        case PREFIX:
          this.prefixes[message[1]] = message[2];
          break;
        case CALLRESULT:
        case CALLERROR: {
          const pending = this.calls.get(message[1]);
          if (!pending) return;
          this.calls.delete(message[1]);
          if (message[0] === CALLRESULT) pending.resolve(message[2]);
          else pending.reject({ uri: message[2], desc: message[3], details: message.length > 4 ? message[4] : null });
          break;
        }
        case EVENT: {
          const topic = this.resolve(message[1]);
          const handler = this.subscriptions.get(topic);
          if (handler) handler(topic, message[2]);
          break;
        }
        default:
          break;
      }
    }
  }

  global.Wamp1 = Wamp1;
})(typeof window !== "undefined" ? window : globalThis);
