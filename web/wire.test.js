// Unit tests of wire.js against the golden vectors of the spec (§14), byte-exact both ways.
// Run with `node --test web/`.

import { test } from "node:test";
import assert from "node:assert/strict";

import * as wire from "./wire.js";

const hex = (text) => Uint8Array.from(text.trim().split(/\s+/).map((b) => parseInt(b, 16)));
const ascii = (text) => new TextEncoder().encode(text);

/** Decodes `bytes` completely with `decode`, failing on leftovers. */
function decodeAll(decode, bytes) {
  const r = new wire.Reader(bytes);
  const value = decode(r);
  assert.equal(r.remaining, 0, "bytes left over");
  return value;
}

/** Every strict prefix of `bytes` needs more bytes. */
function assertTruncationNeedsMore(decode, bytes) {
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decode(new wire.Reader(bytes.subarray(0, n))), wire.NeedMoreBytes, `prefix of ${n} bytes`);
  }
}

/** A message that opens a stream: the stream type, then the message. */
function opener(type, decode) {
  return (r) => ({ type: wire.decodeStreamType(r), message: decode(r) });
}

/** Checks encode(value) == bytes, decode(bytes) == value, and truncation → NeedMoreBytes. */
function vector(name, bytes, encode, decode, value) {
  test(name, () => {
    assert.deepEqual(encode(value), bytes, "encode");
    assert.deepEqual(decodeAll(decode, bytes), value, "decode");
    assertTruncationNeedsMore(decode, bytes);
  });
}

const withType = (type, encode) => ({ type: t, message }) => {
  assert.equal(t, type);
  return wire.concat(wire.encodeStreamType(type), encode(message));
};

// §14.1
vector(
  "1: session stream open + CLIENT_SETUP",
  hex("00 01 c0 00 00 00 ff 0b ad 02 00"),
  withType(wire.StreamType.Session, wire.encodeClientSetup),
  opener(0, wire.decodeClientSetup),
  { type: 0, message: { versions: [0xff0bad02], extensions: new Map() } },
);

// §14.2
vector(
  "2: SERVER_SETUP",
  hex("c0 00 00 00 ff 0b ad 02 00"),
  (v) => wire.encodeServerSetup(v),
  wire.decodeServerSetup,
  { version: wire.VERSION, extensions: new Map() },
);

// §14.3
vector(
  "3a: CLIENT_SETUP offering two versions",
  hex("02 c0 00 00 00 ff 0b ad 03 c0 00 00 00 ff 0b ad 02 00"),
  wire.encodeClientSetup,
  wire.decodeClientSetup,
  { versions: [0xff0bad03, 0xff0bad02], extensions: new Map() },
);
vector(
  "3b: CLIENT_SETUP with extension 5",
  hex("01 c0 00 00 00 ff 0b ad 02 01 05 02 aa bb"),
  wire.encodeClientSetup,
  wire.decodeClientSetup,
  { versions: [0xff0bad02], extensions: new Map([[5, hex("aa bb")]]) },
);

// §14.4, §14.5
vector(
  "4: announce stream open, empty prefix",
  hex("01 00"),
  withType(wire.StreamType.Announce, wire.encodeAnnouncePlease),
  opener(1, wire.decodeAnnouncePlease),
  { type: 1, message: { prefix: [] } },
);
vector(
  "5: announce stream open, prefix internal/origins",
  hex("01 02 08 69 6e 74 65 72 6e 61 6c 07 6f 72 69 67 69 6e 73"),
  withType(wire.StreamType.Announce, wire.encodeAnnouncePlease),
  opener(1, wire.decodeAnnouncePlease),
  { type: 1, message: { prefix: ["internal", "origins"] } },
);

// §14.6–§14.8
vector("6: ANNOUNCE active clock", hex("01 01 05 63 6c 6f 63 6b"), wire.encodeAnnounce, wire.decodeAnnounce, {
  status: wire.AnnounceStatus.Active,
  suffix: ["clock"],
});
vector("7: ANNOUNCE ended clock", hex("00 01 05 63 6c 6f 63 6b"), wire.encodeAnnounce, wire.decodeAnnounce, {
  status: wire.AnnounceStatus.Ended,
  suffix: ["clock"],
});
vector("8a: ANNOUNCE active, empty suffix", hex("01 00"), wire.encodeAnnounce, wire.decodeAnnounce, {
  status: wire.AnnounceStatus.Active,
  suffix: [],
});
vector("8b: ANNOUNCE live", hex("02"), wire.encodeAnnounce, wire.decodeAnnounce, {
  status: wire.AnnounceStatus.Live,
  suffix: null,
});

// §14.9, §14.10
vector(
  "9: subscribe stream open + SUBSCRIBE clock",
  hex("02 00 01 05 63 6c 6f 63 6b 80 01 00 00 00"),
  withType(wire.StreamType.Subscribe, wire.encodeSubscribe),
  opener(2, wire.decodeSubscribe),
  { type: 2, message: { id: 0, path: ["clock"], priority: 0, order: 1, expires: 0, min: null, max: null } },
);
vector(
  "10: subscribe stream open + SUBSCRIBE with every field set",
  hex("02 40 46 03 04 64 65 6d 6f 03 62 62 62 05 76 69 64 65 6f 7f 00 67 10 01 0a"),
  withType(wire.StreamType.Subscribe, wire.encodeSubscribe),
  opener(2, wire.decodeSubscribe),
  {
    type: 2,
    message: { id: 70, path: ["demo", "bbb", "video"], priority: -1, order: 0, expires: 10000, min: 0, max: 9 },
  },
);

// §14.11
vector("11a: INFO latest 0", hex("80 01 00 00"), wire.encodeInfo, wire.decodeInfo, {
  priority: 0,
  order: 1,
  expires: 0,
  latest: 0,
});
vector("11b: INFO latest 27", hex("80 01 00 1b"), wire.encodeInfo, wire.decodeInfo, {
  priority: 0,
  order: 1,
  expires: 0,
  latest: 27,
});

// §14.12
vector("12a: GROUP_DROP 0x34", hex("34 00 04"), wire.encodeGroupDrop, wire.decodeGroupDrop, {
  sequence: 0x34,
  count: 0,
  code: 4,
});
vector("12b: GROUP_DROP 5", hex("05 00 04"), wire.encodeGroupDrop, wire.decodeGroupDrop, {
  sequence: 5,
  count: 0,
  code: 4,
});

/** A group stream: type, header, then whole frames. */
const encodeGroupStream = ({ type, header, frames }) =>
  wire.concat(wire.encodeStreamType(type), wire.encodeGroupHeader(header), ...frames.map(wire.encodeFrame));
const groupStreamDecoder = (frameCount) => (r) => {
  const type = wire.decodeStreamType(r);
  const header = wire.decodeGroupHeader(r);
  const frames = [];
  for (let i = 0; i < frameCount; i++) frames.push(Uint8Array.from(wire.decodeFrame(r)));
  return { type, header, frames };
};

// §14.13
vector(
  "13a: clock group stream through the relay",
  hex("00 00 32 11 32 30 32 36 2d 31 31 2d 32 34 20 30 39 3a 35 30 3a 02 35 35 02 35 36"),
  encodeGroupStream,
  groupStreamDecoder(3),
  { type: 0, header: { subscribe: 0, sequence: 0x32 }, frames: [ascii("2026-11-24 09:50:"), ascii("55"), ascii("56")] },
);
vector(
  "13b: clock group stream, sequence 27",
  wire.concat(hex("00 00 1b 11"), ascii("2024-12-12 11:27:"), hex("02 30 35")),
  encodeGroupStream,
  groupStreamDecoder(2),
  { type: 0, header: { subscribe: 0, sequence: 27 }, frames: [ascii("2024-12-12 11:27:"), ascii("05")] },
);

// §14.14
vector(
  "14: hello world group stream",
  hex("00 00 07 06 68 65 6c 6c 6f 20 05 77 6f 72 6c 64"),
  encodeGroupStream,
  groupStreamDecoder(2),
  { type: 0, header: { subscribe: 0, sequence: 7 }, frames: [ascii("hello "), ascii("world")] },
);

// §14.15: the last frame's header only (its 100-byte payload has not arrived).
vector(
  "15: group with a 2-byte sequence, an empty frame and a frame header",
  hex("00 03 43 e8 00 40 64"),
  ({ header, frames, next }) =>
    wire.concat(
      wire.encodeStreamType(0),
      wire.encodeGroupHeader(header),
      ...frames.map(wire.encodeFrame),
      new wire.Writer().varint(next).finish(),
    ),
  (r) => {
    const { header, frames } = groupStreamDecoder(1)(r);
    return { header, frames, next: r.number() };
  },
  { header: { subscribe: 3, sequence: 1000 }, frames: [new Uint8Array(0)], next: 100 },
);

test("15: a frame whose payload has not fully arrived needs more bytes", () => {
  const r = new wire.Reader(wire.concat(hex("40 64"), new Uint8Array(99)));
  assert.throws(() => wire.decodeFrame(r), (err) => err instanceof wire.NeedMoreBytes && err.needed === 1);
});

// §14.17
vector(
  "17: info stream open + INFO_REQUEST clock",
  hex("04 01 05 63 6c 6f 63 6b"),
  withType(wire.StreamType.Info, wire.encodeInfoRequest),
  opener(4, wire.decodeInfoRequest),
  { type: 4, message: { path: ["clock"] } },
);

// §14.21
test("21: priority bytes", () => {
  for (const [priority, byte] of [
    [-128, 0x00],
    [-1, 0x7f],
    [0, 0x80],
    [1, 0x81],
    [127, 0xff],
  ]) {
    assert.deepEqual(new wire.Writer().priority(priority).finish(), Uint8Array.of(byte));
    assert.equal(new wire.Reader(Uint8Array.of(byte)).priority(), priority);
  }
  assert.throws(() => new wire.Writer().priority(128), RangeError);
});

for (const [value, bytes] of [
  [63, "3f"],
  [64, "40 40"],
  [16383, "7f ff"],
  [16384, "80 00 40 00"],
  [2 ** 30 - 1, "bf ff ff ff"],
  [2 ** 30, "c0 00 00 00 40 00 00 00"],
  [(1n << 62n) - 1n, "ff ff ff ff ff ff ff ff"],
]) {
  vector(`21: varint ${value}`, hex(bytes), (v) => new wire.Writer().varint(v).finish(), (r) => r.varint(), value);
}

test("varints: non-minimal forms decode, out-of-range values do not encode", () => {
  assert.equal(decodeAll((r) => r.varint(), hex("40 01")), 1);
  assert.equal(decodeAll((r) => r.varint(), hex("c0 00 00 00 00 00 00 05")), 5);
  assert.throws(() => new wire.Writer().varint(1n << 62n), RangeError);
  assert.throws(() => new wire.Writer().varint(-1), RangeError);
});

test("invalid input is a decode error, not a crash", () => {
  assert.throws(() => wire.decodeAnnounce(new wire.Reader(hex("03 00"))), wire.DecodeError);
  assert.throws(() => wire.decodeInfo(new wire.Reader(hex("80 02 00 00"))), wire.DecodeError);
  assert.throws(() => wire.decodeAnnounce(new wire.Reader(hex("01 01 02 c3 28"))), wire.DecodeError);
  assert.throws(() => wire.decodeClientSetup(new wire.Reader(hex("00 02 05 00 05 00"))), wire.DecodeError);
});

test("error codes have names", () => {
  assert.equal(wire.errorText(wire.ErrorCode.NotFound), "not found");
  assert.equal(wire.errorText(66), "application error 2");
  assert.equal(wire.errorText(7), "unknown error code 7");
});

/** A ReadableStream that delivers `chunks` and then FINs (or errors with `error`). */
function chunked(chunks, error) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      if (error) controller.error(error);
      else controller.close();
    },
  });
}

test("StreamReader: messages split across chunks, one byte at a time, then FIN", async () => {
  const bytes = hex("00 00 07 06 68 65 6c 6c 6f 20 05 77 6f 72 6c 64");
  const stream = new wire.StreamReader(chunked([...bytes].map((b) => Uint8Array.of(b))));
  assert.equal(await stream.read(wire.decodeStreamType), 0);
  assert.deepEqual(await stream.read(wire.decodeGroupHeader), { subscribe: 0, sequence: 7 });
  assert.deepEqual(Uint8Array.from(await stream.read(wire.decodeFrame)), ascii("hello "));
  assert.deepEqual(Uint8Array.from(await stream.read(wire.decodeFrame)), ascii("world"));
  assert.equal(await stream.read(wire.decodeFrame), undefined, "FIN at a message boundary");
});

test("StreamReader: several messages in one chunk", async () => {
  const stream = new wire.StreamReader(chunked([hex("01 01 05 63 6c 6f 63 6b 00 01 05 63 6c 6f 63 6b")]));
  assert.deepEqual(await stream.read(wire.decodeAnnounce), { status: 1, suffix: ["clock"] });
  assert.deepEqual(await stream.read(wire.decodeAnnounce), { status: 0, suffix: ["clock"] });
  assert.equal(await stream.read(wire.decodeAnnounce), undefined);
});

test("StreamReader: FIN inside a message is a decode error", async () => {
  const stream = new wire.StreamReader(chunked([hex("01 01 05 63 6c")]));
  await assert.rejects(stream.read(wire.decodeAnnounce), wire.DecodeError);
});

test("StreamReader: a reset rejects with the stream's error", async () => {
  const reset = { streamErrorCode: 13 };
  const stream = new wire.StreamReader(chunked([hex("80")], reset));
  await assert.rejects(stream.read(wire.decodeInfo), (err) => err === reset);
});
