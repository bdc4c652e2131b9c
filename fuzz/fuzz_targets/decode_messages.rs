//! Feeds arbitrary bytes to every decoder of `moq-transfork`.
//!
//! A decoder must never panic (peer input), and any value it accepts must re-encode to bytes that
//! decode to the same value. A strict prefix of an accepted message must be `Short(n)` with
//! `n` no more than the bytes actually missing (the stream reader waits for that many). Inputs are tried both from a slice and from a `Bytes` (the
//! zero-copy path of byte strings).
#![no_main]

use std::fmt::Debug;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use moq_transfork::coding::{Decode, Encode};
use moq_transfork::message::{
    Announce, AnnouncePlease, BiStream, ClientSetup, Fetch, FrameHeader, GroupDrop, GroupHeader,
    Info, InfoRequest, ServerSetup, Subscribe, SubscribeUpdate, UniStream,
};
use moq_transfork::{DecodeError, Path};

fn check<T: Decode + Encode + PartialEq + Debug>(data: &[u8]) {
    let mut slice = data;
    let from_slice = T::decode(&mut slice);
    let mut shared = Bytes::copy_from_slice(data);
    let from_bytes = T::decode(&mut shared);
    assert_eq!(from_slice, from_bytes, "slice and Bytes sources disagree");

    if from_slice.is_ok() {
        let used = data.len() - slice.len();
        for cut in [used.saturating_sub(1), used / 2] {
            if cut < used {
                match T::decode(&mut &data[..cut]) {
                    Err(DecodeError::Short(n)) => {
                        assert!(
                            n >= 1 && cut + n <= used,
                            "prefix {cut} of {used}: Short({n})"
                        )
                    }
                    other => panic!("prefix {cut} of a {used}-byte message: {other:?}"),
                }
            }
        }
    }

    if let Ok(value) = from_slice {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        assert_eq!(T::decode(&mut buf.as_slice()), Ok(value));
    }
}

fuzz_target!(|data: &[u8]| {
    check::<BiStream>(data);
    check::<UniStream>(data);
    check::<ClientSetup>(data);
    check::<ServerSetup>(data);
    check::<AnnouncePlease>(data);
    check::<Announce>(data);
    check::<Subscribe>(data);
    check::<SubscribeUpdate>(data);
    check::<GroupDrop>(data);
    check::<Info>(data);
    check::<InfoRequest>(data);
    check::<Fetch>(data);
    check::<GroupHeader>(data);
    check::<FrameHeader>(data);
    check::<Path>(data);
    check::<String>(data);
    check::<Bytes>(data);
});
