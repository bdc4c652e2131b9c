// The page moq-relay serves at `/`: lists the broadcasts announced on the relay and shows the
// frames of the one you click. Connects with the browser's WebTransport to the relay that served
// the page (same host and port), pinning the development certificate from `/fingerprint`.

import * as wire from "./wire.js";
import { Plot } from "./plot.js";

/** How many frame lines and group rows stay on the page. */
const MAX_FRAME_LINES = 200;
const MAX_GROUP_ROWS = 20;
/** How long an ended subscription waits for the relay's FIN before it stops reading. */
const END_GRACE_MS = 2000;

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);

/** Shows an error on the page (and in the console); errors are never swallowed. */
function showError(text) {
  console.error(text);
  const item = document.createElement("li");
  item.textContent = `${clockTime(new Date())} ${text}`;
  $("#errors").prepend(item);
  while ($("#errors").children.length > 10) $("#errors").lastChild.remove();
}

function setStatus(text) {
  $("#status").textContent = text;
}

/** The MoqTransfork code a stream was reset or stopped with, if the error carries one. */
function streamCode(err) {
  return typeof err?.streamErrorCode === "number" ? err.streamErrorCode : null;
}

/** Describes a stream error: the reset code and its meaning, or the error's message. */
function describe(err) {
  const code = streamCode(err);
  if (code !== null) return `reset with code ${code} (${wire.errorText(code)})`;
  return err?.message ?? String(err);
}

const pathText = (parts) => parts.join("/");

/** `HH:MM:SS.mmm`, local time. */
function clockTime(date) {
  const two = (n) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** The relay's certificate hash from `/fingerprint`, or `null` when it serves none (a real certificate). */
async function fingerprint() {
  const res = await fetch("/fingerprint", { cache: "no-store" });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`GET /fingerprint answered ${res.status}`);
  const hex = (await res.text()).trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`GET /fingerprint gave no SHA-256: ${hex.slice(0, 80)}`);
  return Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));
}

/** One WebTransport session with the relay and what the page shows of it. */
class Connection {
  #wt;
  #nextSubscribe = 0;
  /** The current subscription, if any. */
  #sub = null;
  /** Announced paths by their text. */
  #paths = new Map();
  /** Our side of the session stream, held open for the life of the session (a FIN would end it). */
  #sessionStream = null;
  closed = false;

  constructor(wt) {
    this.#wt = wt;
  }

  /** Connects, exchanges SETUP, then serves the session until it closes. */
  static async open(token) {
    if (typeof WebTransport !== "function") {
      throw new Error("this browser has no WebTransport (it needs Chromium, Edge or Firefox, and a secure context: https, or http on localhost)");
    }
    let hash;
    try {
      hash = await fingerprint();
    } catch (err) {
      throw new Error(`relay unreachable: cannot fetch ${location.origin}/fingerprint: ${err.message}`);
    }
    const url = new URL(`https://${location.host}/`);
    if (token) url.searchParams.set("jwt", token);
    const options = hash ? { serverCertificateHashes: [{ algorithm: "sha-256", value: hash }] } : {};
    setStatus(`connecting to ${url.origin}…`);
    const wt = new WebTransport(url, options);
    try {
      await wt.ready;
    } catch (err) {
      const cert = hash
        ? "the browser refused the pinned development certificate (it must be ECDSA and valid for under 14 days)"
        : "the browser refused the relay's certificate";
      // Chromium reaches `localhost` over [::1] only, never falling back to 127.0.0.1.
      const v6 = location.hostname === "localhost" ? "; or the relay listens on IPv4 only: open the page at 127.0.0.1" : "";
      const auth = token ? "; or the relay refused the token" : "";
      throw new Error(`WebTransport to ${url.origin} failed (${err.message}): the relay answered HTTP, so either UDP to it is blocked or ${cert}${v6}${auth}`);
    }
    const conn = new Connection(wt);
    try {
      await conn.#setup();
    } catch (err) {
      conn.close();
      throw err;
    }
    setStatus(`connected to ${url.origin}${hash ? " (development certificate pinned)" : ""}`);
    wt.closed.then(
      (info) => conn.#onClosed(`session closed by the relay: code ${info.closeCode} ${info.reason}`),
      (err) => conn.#onClosed(`session lost: ${err.message}`),
    );
    conn.#acceptBidi();
    conn.#acceptUni();
    conn.#announced();
    return conn;
  }

  /** Closes the session (e.g. to reconnect with another token). */
  close() {
    this.closed = true;
    this.#wt.close({ closeCode: 0, reason: "page closed" });
  }

  #onClosed(text) {
    if (this.closed) return;
    this.closed = true;
    showError(text);
    setStatus("disconnected");
  }

  /** Opens the session stream: CLIENT_SETUP out, SERVER_SETUP in; it then stays open, idle (spec §4). */
  async #setup() {
    const stream = await this.#wt.createBidirectionalStream();
    this.#sessionStream = stream.writable.getWriter();
    await this.#sessionStream.write(wire.concat(wire.encodeStreamType(wire.StreamType.Session), wire.encodeClientSetup()));
    const reader = new wire.StreamReader(stream.readable);
    let setup;
    try {
      setup = await reader.read(wire.decodeServerSetup);
    } catch (err) {
      throw new Error(`SETUP failed: ${describe(err)}`);
    }
    if (!setup) throw new Error("the relay ended the session stream before SERVER_SETUP");
    if (setup.version !== wire.VERSION) showError(`the relay chose version ${setup.version.toString(16)}`);
  }

  /** Control streams the relay opens: we announce nothing, so an announce request stays open and empty. */
  async #acceptBidi() {
    try {
      for await (const stream of this.#wt.incomingBidirectionalStreams) {
        const reader = new wire.StreamReader(stream.readable);
        reader.read(wire.decodeStreamType).then(
          (type) => {
            if (type === wire.StreamType.Announce) return;
            // We publish no tracks: anything else is not found.
            stream.writable.abort(wire.streamError(wire.ErrorCode.NotFound)).catch(() => {});
            reader.cancel(wire.ErrorCode.NotFound);
          },
          (err) => showError(`incoming stream: ${describe(err)}`),
        );
      }
    } catch (err) {
      if (!this.closed) showError(`accepting streams: ${err.message}`);
    }
  }

  /** Group streams: each is matched to the current subscription by its subscribe id. */
  async #acceptUni() {
    try {
      for await (const readable of this.#wt.incomingUnidirectionalStreams) this.#group(readable);
    } catch (err) {
      if (!this.closed) showError(`accepting group streams: ${err.message}`);
    }
  }

  async #group(readable) {
    const reader = new wire.StreamReader(readable);
    let row = null;
    try {
      const type = await reader.read(wire.decodeStreamType);
      if (type !== wire.UniStreamType.Group) {
        await reader.cancel(wire.ErrorCode.Decode);
        return showError(`unknown uni stream type ${type}`);
      }
      const header = await reader.read(wire.decodeGroupHeader);
      const sub = this.#sub;
      if (!sub || sub.id !== header.subscribe) return reader.cancel(wire.ErrorCode.Cancel);
      row = sub.view.group(header.sequence);
      for (;;) {
        const frame = await reader.read(wire.decodeFrame);
        if (frame === undefined) break;
        if (this.#sub !== sub) return reader.cancel(wire.ErrorCode.Cancel);
        row.frame(frame);
      }
      row.end("complete");
    } catch (err) {
      if (row) row.end(describe(err));
      else if (!this.closed) showError(`group stream: ${describe(err)}`);
    }
  }

  /** Asks for every announced path (empty prefix) and keeps the list current. */
  async #announced() {
    try {
      const stream = await this.#wt.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      await writer.write(wire.concat(wire.encodeStreamType(wire.StreamType.Announce), wire.encodeAnnouncePlease({ prefix: [] })));
      const reader = new wire.StreamReader(stream.readable);
      for (;;) {
        const announce = await reader.read(wire.decodeAnnounce);
        if (announce === undefined) break;
        if (announce.status === wire.AnnounceStatus.Live) continue;
        const text = pathText(announce.suffix);
        if (announce.status === wire.AnnounceStatus.Active) this.#paths.set(text, announce.suffix);
        else this.#paths.delete(text);
        this.#renderPaths();
      }
      if (!this.closed) showError("the relay ended the announcements");
    } catch (err) {
      if (!this.closed) showError(`announcements: ${describe(err)}`);
    }
  }

  #renderPaths() {
    const list = $("#paths");
    list.replaceChildren();
    for (const text of [...this.#paths.keys()].sort()) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.className = "path";
      button.textContent = text;
      if (this.#sub && pathText(this.#sub.path) === text) button.classList.add("selected");
      button.addEventListener("click", () => this.subscribe(this.#paths.get(text)));
      item.append(button);
      list.append(item);
    }
  }

  /** Ends the current subscription, if any, and subscribes to `path`. */
  async subscribe(path) {
    this.#end();
    const sub = { id: this.#nextSubscribe++, path, view: new TrackView(path) };
    this.#sub = sub;
    this.#renderPaths();
    try {
      const stream = await this.#wt.createBidirectionalStream();
      sub.writer = stream.writable.getWriter();
      sub.reader = new wire.StreamReader(stream.readable);
      await sub.writer.write(wire.concat(wire.encodeStreamType(wire.StreamType.Subscribe), wire.encodeSubscribe({ id: sub.id, path })));
      if (this.#sub !== sub) return this.#endStream(sub);
      const info = await sub.reader.read(wire.decodeInfo);
      if (info === undefined) throw new Error("the relay ended the subscription before INFO");
      sub.view.info(info);
      for (;;) {
        const drop = await sub.reader.read(wire.decodeGroupDrop);
        if (drop === undefined) break;
        if (this.#sub === sub) showError(`group ${drop.sequence} dropped: code ${drop.code} (${wire.errorText(drop.code)})`);
      }
      if (this.#sub === sub) showError(`subscription to ${pathText(path)} ended by the relay`);
    } catch (err) {
      if (this.#sub !== sub) {
        // We ended it with a FIN: the relay answers with its FIN, a reset would be news.
        const code = streamCode(err);
        if (code !== null && code !== wire.ErrorCode.Cancel) showError(`ended subscription to ${pathText(path)}: ${describe(err)}`);
        return;
      }
      if (streamCode(err) === wire.ErrorCode.NotFound) showError(`track not found: ${pathText(path)} (reset code 13)`);
      else showError(`subscription to ${pathText(path)}: ${describe(err)}`);
    }
  }

  /** Ends the current subscription cleanly: FIN on our side of the subscribe stream (spec §5.3). */
  #end() {
    const sub = this.#sub;
    this.#sub = null;
    if (sub) this.#endStream(sub);
  }

  #endStream(sub) {
    sub.writer?.close().catch(() => {});
    // The relay FINs back; stop reading if it does not, so nothing stays open.
    setTimeout(() => sub.reader?.cancel(wire.ErrorCode.Cancel), END_GRACE_MS);
  }
}

/** The plot of the current subscription. */
let plot = null;

/** Renders one subscription: its INFO, its groups, its frames and the plot. */
class TrackView {
  #plot;

  constructor(path) {
    $("#track-path").textContent = pathText(path);
    $("#track-info").textContent = "waiting for INFO…";
    $("#groups tbody").replaceChildren();
    $("#frames").replaceChildren();
    plot?.stop();
    plot = this.#plot = new Plot($("#plot"));
  }

  info({ priority, order, expires, latest }) {
    const ord = order === wire.GroupOrder.Descending ? "descending" : "ascending";
    $("#track-info").textContent = `INFO: priority ${priority}, order ${ord}, expires ${expires} ms, latest group ${latest}`;
  }

  /** A row for a new group; returns its handle. */
  group(sequence) {
    const arrived = performance.now();
    const tr = document.createElement("tr");
    tr.dataset.group = sequence;
    const cells = [String(sequence), "0", clockTime(new Date()), "receiving"].map((text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    });
    tr.append(...cells);
    const body = $("#groups tbody");
    body.prepend(tr);
    while (body.children.length > MAX_GROUP_ROWS) body.lastChild.remove();
    let count = 0;
    return {
      frame: (payload) => {
        if (count === 0) this.#plot.firstFrameDelay(performance.now() - arrived);
        this.#plot.frame();
        this.#frameLine(sequence, count, payload);
        cells[1].textContent = ++count;
      },
      end: (state) => {
        cells[3].textContent = state;
      },
    };
  }

  #frameLine(group, index, payload) {
    const li = document.createElement("li");
    const now = new Date();
    li.dataset.group = group;
    li.dataset.frame = index;
    li.dataset.time = now.getTime();
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${clockTime(now)} #${group}.${index}`;
    const body = document.createElement("span");
    const text = asText(payload);
    if (text !== null) {
      body.className = "text";
      body.textContent = text;
    } else {
      body.className = "binary";
      const preview = [...payload.subarray(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
      body.textContent = `${payload.length} bytes: ${preview}${payload.length > 16 ? " …" : ""}`;
    }
    li.append(meta, body);
    const list = $("#frames");
    list.prepend(li);
    while (list.children.length > MAX_FRAME_LINES) list.lastChild.remove();
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The payload as text when it is printable UTF-8, otherwise `null`. */
function asText(payload) {
  try {
    const text = strictUtf8.decode(payload);
    return /[\u0000-\u0008\u000e-\u001f\u007f]/.test(text) ? null : text;
  } catch {
    return null;
  }
}

let connection = null;

async function connect() {
  connection?.close();
  connection = null;
  $("#paths").replaceChildren();
  try {
    connection = await Connection.open($("#token").value);
  } catch (err) {
    setStatus("not connected");
    showError(err.message);
  }
}

$("#subscribe").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#path").value.trim();
  if (!connection) return showError("not connected");
  connection.subscribe(text === "" ? [] : text.split("/"));
});
$("#token").value = params.get("jwt") ?? "";
$("#connect").addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
connect();
