//! The error codes we map ourselves off the WebTransport/HTTP3 and QUIC wire.
//!
//! Our code parses no part of the HTTP/3 handshake or its capsules: web-transport-quinn reads
//! the CONNECT request, SETTINGS and the CLOSE_WEBTRANSPORT_SESSION capsule, quinn the QUIC
//! frames. What we decode is the peer-chosen code those carry: a RESET_STREAM, STOP_SENDING or
//! CONNECTION_CLOSE code mapped back with `from_wire` (spec §2.4), and the MoqTransfork code
//! turned into an `Error` with `Error::from_code`. For any wire code and any MoqTransfork code:
//!
//! - no panic and no overflow;
//! - `from_wire` inverts `to_wire` exactly, and answers `None` for every wire code that no
//!   MoqTransfork code maps to (below the base, a GREASE point, or beyond `u32`);
//! - `to_wire` is strictly increasing (no two codes share a wire code);
//! - `Error::from_code(c).code() == c`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_transfork::{from_wire, to_wire, Error};

fuzz_target!(|input: &[u8]| {
    let mut wire = [0u8; 8];
    let mut code = [0u8; 4];
    let (head, tail) = input.split_at(input.len().min(8));
    wire[..head.len()].copy_from_slice(head);
    let tail = &tail[..tail.len().min(4)];
    code[..tail.len()].copy_from_slice(tail);
    let (wire, code) = (u64::from_le_bytes(wire), u32::from_le_bytes(code));

    // A wire code near the mapped range is far more interesting than a random u64.
    for wire in [wire, to_wire(0).wrapping_add(wire % (1 << 36))] {
        match from_wire(wire) {
            Some(c) => assert_eq!(to_wire(c), wire, "from_wire({wire:#x}) = {c}"),
            None => {
                let mapped = (wire >= to_wire(0) && wire <= to_wire(u32::MAX))
                    .then(|| wire - to_wire(0))
                    .filter(|d| d % 0x1f != 0x1e);
                assert!(mapped.is_none(), "{wire:#x} is a mapped code");
            }
        }
        let _ = Error::from_code(u32::try_from(wire).unwrap_or(u32::MAX));
    }

    assert_eq!(from_wire(to_wire(code)), Some(code));
    if let Some(next) = code.checked_add(1) {
        assert!(to_wire(code) < to_wire(next));
    }
    assert_eq!(Error::from_code(code).code(), code);
});
