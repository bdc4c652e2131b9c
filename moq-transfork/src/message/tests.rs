//! Cross-message properties: no decoder panics on any input, and whatever decodes re-encodes
//! to bytes that decode to the same value.

use std::fmt::Debug;

use proptest::prelude::*;

use super::*;
use crate::coding::{Decode, Encode};
use crate::Path;

/// Decodes `T` from arbitrary bytes; if that works, the value must survive a round trip.
fn check<T: Decode + Encode + PartialEq + Debug>(data: &[u8]) {
    let mut slice = data;
    if let Ok(value) = T::decode(&mut slice) {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        assert_eq!(T::decode(&mut buf.as_slice()), Ok(value));
    }
}

/// Runs every decoder of the crate over `data`.
fn check_all(data: &[u8]) {
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
    check::<bytes::Bytes>(data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn no_decoder_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..128)) {
        check_all(&data);
    }

    /// Biased towards small counts and lengths, so decoders get further into their input.
    #[test]
    fn no_decoder_panics_on_small_bytes(data in proptest::collection::vec(0u8..8, 0..64)) {
        check_all(&data);
    }
}
