//! Feeds arbitrary bytes to every decoder of `moq-transfork`.
//!
//! A decoder must never panic (peer input), and any value it accepts must re-encode to bytes that
//! decode to the same value. Inputs are tried both from a slice and from a `Bytes` (the
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
use moq_transfork::Path;

fn check<T: Decode + Encode + PartialEq + Debug>(data: &[u8]) {
    let mut slice = data;
    let from_slice = T::decode(&mut slice);
    let mut shared = Bytes::copy_from_slice(data);
    let from_bytes = T::decode(&mut shared);
    assert_eq!(from_slice, from_bytes, "slice and Bytes sources disagree");

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
