// MoqTransfork wire code for the browser page: the bytes of spec/moq-transfork-wire.md (§3–§7)
// as spoken by moq-transfork 0.8.0, which our relay speaks.
//
// Plain ES module with no dependencies, shared by the page and its Node unit tests
// (`node --test web/`). Messages carry no type tag and no length: the stream type and the position
// on the stream say what comes next (spec §3, "Framing"). Every decoder reads from a `Reader` and
// throws `NeedMoreBytes` when the input stops inside a message, so a caller can buffer and retry;
// `StreamReader` does that over a WebTransport stream.

/** The protocol version 0xff0bad02 (spec §1), the only one we offer. */
export const VERSION = 0xff0bad02;

/** Bidirectional stream types, the first varint on the stream (spec §1). */
export const StreamType = Object.freeze({ Session: 0, Announce: 1, Subscribe: 2, Fetch: 3, Info: 4 });

/** Unidirectional stream types (spec §1). */
export const UniStreamType = Object.freeze({ Group: 0 });

/** Group order (spec §3): 0 ascending, 1 descending. */
export const GroupOrder = Object.freeze({ Ascending: 0, Descending: 1 });

/** ANNOUNCE status byte (spec §3). `Live` is never sent to a 0.8.0 peer. */
export const AnnounceStatus = Object.freeze({ Ended: 0, Active: 1, Live: 2 });

/** MoqTransfork error codes (spec §8); application codes are 64 + n. */
export const ErrorCode = Object.freeze({
  Cancel: 0,
  RequiredExtension: 1,
  Transport: 4,
  Decode: 5,
  Version: 9,
  UnexpectedStream: 10,
  BoundsExceeded: 11,
  Duplicate: 12,
  NotFound: 13,
  WrongSize: 14,
  ProtocolViolation: 15,
});

const ERROR_TEXT = new Map([
  [0, "cancelled"],
  [1, "required extension"],
  [4, "transport error"],
  [5, "decode error"],
  [9, "unsupported versions"],
  [10, "unexpected stream"],
  [11, "bounds exceeded"],
  [12, "duplicate"],
  [13, "not found"],
  [14, "wrong frame size"],
  [15, "protocol violation"],
]);

/** A human name for an error code, e.g. `errorText(13)` is "not found". */
export function errorText(code) {
  if (ERROR_TEXT.has(code)) return ERROR_TEXT.get(code);
  if (code >= 64) return `application error ${code - 64}`;
  return `unknown error code ${code}`;
}

/** The input ended inside a message: read more bytes and decode again. */
export class NeedMoreBytes extends Error {
  constructor(needed) {
    super(`need ${needed} more bytes`);
    this.name = "NeedMoreBytes";
    this.needed = needed;
  }
}

/** The bytes are not a valid message (error code 5). */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = "DecodeError";
    this.code = ErrorCode.Decode;
  }
}

const MAX_VARINT = (1n << 62n) - 1n;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Builds a message. Varints take a number (up to 2^53 − 1) or a BigInt (up to 2^62 − 1) and are
 * always written in their shortest form.
 */
export class Writer {
  #parts = [];
  #length = 0;

  #push(bytes) {
    this.#parts.push(bytes);
    this.#length += bytes.length;
    return this;
  }

  /** A QUIC variable-length integer (RFC 9000 §16). */
  varint(value) {
    const v = BigInt(value);
    if (v < 0n || v > MAX_VARINT) throw new RangeError(`varint out of range: ${value}`);
    let out;
    if (v < 1n << 6n) {
      out = new Uint8Array([Number(v)]);
    } else if (v < 1n << 14n) {
      out = new Uint8Array([0x40 | Number(v >> 8n), Number(v & 0xffn)]);
    } else if (v < 1n << 30n) {
      out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, Number(v) | 0x80000000);
    } else {
      out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, v | (0xc0n << 56n));
    }
    return this.#push(out);
  }

  /** One raw byte. */
  u8(value) {
    if (!Number.isInteger(value) || value < 0 || value > 255) throw new RangeError(`not a byte: ${value}`);
    return this.#push(new Uint8Array([value]));
  }

  /** A priority, −128..127, as one byte equal to priority + 128 (spec §3). */
  priority(value) {
    if (!Number.isInteger(value) || value < -128 || value > 127) throw new RangeError(`priority out of range: ${value}`);
    return this.u8(value + 128);
  }

  /** Raw bytes with no length. */
  raw(bytes) {
    return this.#push(Uint8Array.from(bytes));
  }

  /** A varint length, then the bytes. */
  bytes(bytes) {
    return this.varint(bytes.length).raw(bytes);
  }

  /** A varint byte length, then the UTF-8 bytes. */
  string(text) {
    return this.bytes(utf8.encode(text));
  }

  /** A path: a varint part count, then each part as a string. */
  path(parts) {
    this.varint(parts.length);
    for (const part of parts) this.string(part);
    return this;
  }

  /** An optional group number: 0 for none, otherwise the number + 1 (spec §3). */
  optionalGroup(value) {
    return this.varint(value == null ? 0n : BigInt(value) + 1n);
  }

  /** Extensions: a count, then id + length-prefixed payload each. Takes a Map of id → bytes. */
  extensions(map = new Map()) {
    this.varint(map.size);
    for (const [id, payload] of map) this.varint(id).bytes(payload);
    return this;
  }

  /** Everything written so far, as one array. */
  finish() {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** Reads messages from a byte array; throws `NeedMoreBytes` when it runs out. */
export class Reader {
  #bytes;
  #at;

  constructor(bytes, offset = 0) {
    this.#bytes = bytes;
    this.#at = offset;
  }

  /** How many bytes have been consumed. */
  get offset() {
    return this.#at;
  }

  /** How many bytes are left. */
  get remaining() {
    return this.#bytes.length - this.#at;
  }

  #take(n) {
    if (this.remaining < n) throw new NeedMoreBytes(n - this.remaining);
    const out = this.#bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** A varint, as a number when it fits in 2^53 − 1 and as a BigInt above. Accepts non-minimal forms. */
  varint() {
    if (this.remaining < 1) throw new NeedMoreBytes(1);
    const length = 1 << (this.#bytes[this.#at] >> 6);
    const b = this.#take(length);
    let v = BigInt(b[0] & 0x3f);
    for (let i = 1; i < length; i++) v = (v << 8n) | BigInt(b[i]);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  /** A varint that must fit a JavaScript number (lengths, counts, ids, sequences). */
  number() {
    const v = this.varint();
    if (typeof v === "bigint") throw new DecodeError(`value too large: ${v}`);
    return v;
  }

  /** One raw byte. */
  u8() {
    return this.#take(1)[0];
  }

  /** A priority byte, as −128..127. */
  priority() {
    return this.u8() - 128;
  }

  /** Length-prefixed bytes (a view into the input, not a copy). */
  bytes() {
    return this.#take(this.number());
  }

  /** A length-prefixed UTF-8 string. */
  string() {
    try {
      return utf8Strict.decode(this.bytes());
    } catch (err) {
      if (err instanceof NeedMoreBytes) throw err;
      throw new DecodeError("invalid UTF-8");
    }
  }

  /** A path: a list of strings. */
  path() {
    const count = this.number();
    const parts = [];
    for (let i = 0; i < count; i++) parts.push(this.string());
    return parts;
  }

  /** An optional group number: `null` for none. */
  optionalGroup() {
    const v = this.number();
    return v === 0 ? null : v - 1;
  }

  /** Extensions as a Map of id → bytes; a duplicate id is a decode error. */
  extensions() {
    const count = this.number();
    const map = new Map();
    for (let i = 0; i < count; i++) {
      const id = this.varint();
      const payload = this.bytes();
      if (map.has(id)) throw new DecodeError(`duplicate extension ${id}`);
      map.set(id, payload);
    }
    return map;
  }

  /** A group order; anything but 0 or 1 is a decode error. */
  groupOrder() {
    const v = this.varint();
    if (v !== GroupOrder.Ascending && v !== GroupOrder.Descending) throw new DecodeError(`invalid group order ${v}`);
    return v;
  }
}

// ---- Messages (spec §6). Each `encodeX` returns the bytes; each `decodeX(reader)` the fields. ----

/** CLIENT_SETUP (§6.1): `{ versions, extensions }`. */
export function encodeClientSetup({ versions = [VERSION], extensions } = {}) {
  const w = new Writer().varint(versions.length);
  for (const v of versions) w.varint(v);
  return w.extensions(extensions).finish();
}

export function decodeClientSetup(r) {
  const count = r.number();
  const versions = [];
  for (let i = 0; i < count; i++) versions.push(r.varint());
  return { versions, extensions: r.extensions() };
}

/** SERVER_SETUP (§6.2): `{ version, extensions }`. */
export function encodeServerSetup({ version = VERSION, extensions } = {}) {
  return new Writer().varint(version).extensions(extensions).finish();
}

export function decodeServerSetup(r) {
  return { version: r.varint(), extensions: r.extensions() };
}

/** ANNOUNCE_PLEASE (§6.3): `{ prefix }`, a path. */
export function encodeAnnouncePlease({ prefix }) {
  return new Writer().path(prefix).finish();
}

export function decodeAnnouncePlease(r) {
  return { prefix: r.path() };
}

/** ANNOUNCE (§6.3): `{ status, suffix }`; a `Live` status has no suffix. */
export function encodeAnnounce({ status, suffix = [] }) {
  const w = new Writer().u8(status);
  if (status !== AnnounceStatus.Live) w.path(suffix);
  return w.finish();
}

export function decodeAnnounce(r) {
  const status = r.u8();
  if (status === AnnounceStatus.Live) return { status, suffix: null };
  if (status !== AnnounceStatus.Ended && status !== AnnounceStatus.Active) {
    throw new DecodeError(`invalid announce status ${status}`);
  }
  return { status, suffix: r.path() };
}

/** SUBSCRIBE (§6.4): `{ id, path, priority, order, expires (ms), min, max }`; min/max `null` = none. */
export function encodeSubscribe({ id, path, priority = 0, order = GroupOrder.Descending, expires = 0, min = null, max = null }) {
  return new Writer()
    .varint(id)
    .path(path)
    .priority(priority)
    .varint(order)
    .varint(expires)
    .optionalGroup(min)
    .optionalGroup(max)
    .finish();
}

export function decodeSubscribe(r) {
  return {
    id: r.number(),
    path: r.path(),
    priority: r.priority(),
    order: r.groupOrder(),
    expires: r.number(),
    min: r.optionalGroup(),
    max: r.optionalGroup(),
  };
}

/** INFO (§6.7): `{ priority, order, expires (ms), latest }`; in that order on the wire. */
export function encodeInfo({ priority = 0, order = GroupOrder.Descending, expires = 0, latest = 0 }) {
  return new Writer().priority(priority).varint(order).varint(expires).varint(latest).finish();
}

export function decodeInfo(r) {
  return { priority: r.priority(), order: r.groupOrder(), expires: r.number(), latest: r.number() };
}

/** INFO_REQUEST (§6.8): `{ path }`. */
export function encodeInfoRequest({ path }) {
  return new Writer().path(path).finish();
}

export function decodeInfoRequest(r) {
  return { path: r.path() };
}

/** GROUP_DROP (§6.6): `{ sequence, count, code }`; the code is not mapped. */
export function encodeGroupDrop({ sequence, count = 0, code }) {
  return new Writer().varint(sequence).varint(count).varint(code).finish();
}

export function decodeGroupDrop(r) {
  return { sequence: r.number(), count: r.number(), code: r.number() };
}

/** GROUP header (§6.10): `{ subscribe, sequence }`. */
export function encodeGroupHeader({ subscribe, sequence }) {
  return new Writer().varint(subscribe).varint(sequence).finish();
}

export function decodeGroupHeader(r) {
  return { subscribe: r.number(), sequence: r.number() };
}

/** FRAME (§6.11): a varint size, then the payload. */
export function encodeFrame(payload) {
  return new Writer().bytes(payload).finish();
}

/** A whole FRAME's payload (a view into the input). */
export function decodeFrame(r) {
  return r.bytes();
}

/** The stream type varint that opens every stream. */
export function encodeStreamType(type) {
  return new Writer().varint(type).finish();
}

export function decodeStreamType(r) {
  return r.number();
}

/** Concatenates byte arrays, e.g. a stream type and its first message. */
export function concat(...arrays) {
  const w = new Writer();
  for (const a of arrays) w.raw(a);
  return w.finish();
}

/**
 * Decodes whole messages from a stream of chunks (a WebTransport `ReadableStream` or anything
 * with `getReader()`), buffering across chunk boundaries.
 */
export class StreamReader {
  #reader;
  #buffer = new Uint8Array(0);
  #done = false;

  constructor(readable) {
    this.#reader = readable.getReader();
  }

  /**
   * The next message decoded with `decode(reader)`, or `undefined` when the stream ended (FIN)
   * at a message boundary. A FIN inside a message is a `DecodeError`; a reset rejects with the
   * stream's error.
   */
  async read(decode) {
    for (;;) {
      if (this.#buffer.length > 0) {
        const r = new Reader(this.#buffer);
        try {
          const value = decode(r);
          this.#buffer = this.#buffer.subarray(r.offset);
          return value;
        } catch (err) {
          if (!(err instanceof NeedMoreBytes)) throw err;
        }
      }
      if (this.#done) {
        if (this.#buffer.length === 0) return undefined;
        throw new DecodeError("stream ended inside a message");
      }
      const { value, done } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#buffer = this.#buffer.length === 0 ? value : concat(this.#buffer, value);
    }
  }

  /** Stops reading: STOP_SENDING with `code` (a WebTransport stream error code). */
  async cancel(code) {
    await this.#reader.cancel(streamError(code)).catch(() => {});
  }
}

/**
 * A reason for `cancel`/`abort` that carries a stream error code: a `WebTransportError` in a
 * browser, a plain object with `streamErrorCode` elsewhere.
 */
export function streamError(code) {
  if (typeof WebTransportError === "function") {
    return new WebTransportError({ message: errorText(code), streamErrorCode: code });
  }
  return { streamErrorCode: code, message: errorText(code) };
}
