//! The session stream's handshake: CLIENT_SETUP and SERVER_SETUP (spec §4, §6.1, §6.2).

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes};

use crate::coding::limits::{MAX_EXTENSIONS, MAX_EXTENSION_SIZE, MAX_VERSIONS};
use crate::coding::{Decode, DecodeError, Encode};

/// A protocol version number, a varint on the wire.
///
/// Only [`Version::FORK_02`] is spoken; the other constants exist in 0.8.0 but are never offered
/// (spec §1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// moq-transport draft-00.
    pub const DRAFT_00: Self = Self(0xff00_0000);
    /// moq-transport draft-01.
    pub const DRAFT_01: Self = Self(0xff00_0001);
    /// moq-transport draft-02.
    pub const DRAFT_02: Self = Self(0xff00_0002);
    /// moq-transport draft-03.
    pub const DRAFT_03: Self = Self(0xff00_0003);
    /// moq-transport draft-04.
    pub const DRAFT_04: Self = Self(0xff00_0004);
    /// MoqTransfork fork-00.
    pub const FORK_00: Self = Self(0xff0b_ad00);
    /// MoqTransfork fork-01.
    pub const FORK_01: Self = Self(0xff0b_ad01);
    /// MoqTransfork fork-02, the version moq-transfork 0.8.0 speaks, and so do we.
    pub const FORK_02: Self = Self(0xff0b_ad02);
}

impl fmt::Debug for Version {
    /// Versions read best in hex (`0xff0bad02`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:#x})", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Encode for Version {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.encode(buf);
    }
}

impl Decode for Version {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        u64::decode(buf).map(Self)
    }
}

/// The versions a client offers, in its order of preference: a varint count, then each version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions(pub Vec<Version>);

impl Versions {
    /// True when `version` is offered (order and other entries do not matter, spec §4).
    pub fn contains(&self, version: Version) -> bool {
        self.0.contains(&version)
    }
}

impl From<Vec<Version>> for Versions {
    fn from(versions: Vec<Version>) -> Self {
        Self(versions)
    }
}

impl Encode for Versions {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.len().encode(buf);
        for version in &self.0 {
            version.encode(buf);
        }
    }
}

impl Decode for Versions {
    /// # Errors
    /// [`DecodeError::TooLarge`] when the count exceeds [`MAX_VERSIONS`], checked before any
    /// allocation.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let count = usize::decode(buf)?;
        if count > MAX_VERSIONS {
            return Err(DecodeError::TooLarge("versions"));
        }
        let mut versions = Vec::with_capacity(count);
        for _ in 0..count {
            versions.push(Version::decode(buf)?);
        }
        Ok(Self(versions))
    }
}

/// SETUP extensions: a map from extension id to an opaque payload.
///
/// On the wire: a varint count, then for each entry a varint id and the payload as a byte string
/// (spec §3). 0.8.0 never sends or reads any; we send none and ignore what arrives (spec §15).
/// We write entries in ascending id order (0.8.0 uses HashMap order, so no order is implied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions(pub BTreeMap<u64, Bytes>);

impl Extensions {
    /// No extensions, what we always send.
    pub fn new() -> Self {
        Self::default()
    }

    /// The payload of extension `id`, if present.
    pub fn get(&self, id: u64) -> Option<&Bytes> {
        self.0.get(&id)
    }

    /// Sets the payload of extension `id`, returning the previous one.
    pub fn insert(&mut self, id: u64, payload: Bytes) -> Option<Bytes> {
        self.0.insert(id, payload)
    }

    /// The number of extensions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Encode for Extensions {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.len().encode(buf);
        for (id, payload) in &self.0 {
            id.encode(buf);
            payload.encode(buf);
        }
    }
}

impl Decode for Extensions {
    /// # Errors
    /// [`DecodeError::TooLarge`] above [`MAX_EXTENSIONS`] entries or [`MAX_EXTENSION_SIZE`]
    /// bytes in one payload; [`DecodeError::DuplicateExtension`] when an id repeats.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let count = usize::decode(buf)?;
        if count > MAX_EXTENSIONS {
            return Err(DecodeError::TooLarge("extensions"));
        }
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let id = u64::decode(buf)?;
            let payload =
                crate::coding::decode_bytes(buf, MAX_EXTENSION_SIZE, "extension payload")?;
            if map.insert(id, payload).is_some() {
                return Err(DecodeError::DuplicateExtension(id));
            }
        }
        Ok(Self(map))
    }
}

/// The CLIENT_SETUP extension that carries the client's token (the `jwt` of a `moqf://` URL):
/// its payload is the token's UTF-8 bytes (docs/protocol.md). 0.8.0 ignores it.
pub const TOKEN_EXTENSION: u64 = 0x6a77;

/// CLIENT_SETUP: the first message on the session stream, client to server (spec §6.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSetup {
    /// The versions the client can speak; the server needs [`Version::FORK_02`] among them.
    pub versions: Versions,
    /// Setup extensions (none in practice).
    pub extensions: Extensions,
}

impl Encode for ClientSetup {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.versions.encode(buf);
        self.extensions.encode(buf);
    }
}

impl Decode for ClientSetup {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            versions: Versions::decode(buf)?,
            extensions: Extensions::decode(buf)?,
        })
    }
}

/// SERVER_SETUP: the server's reply on the session stream (spec §6.2).
///
/// A 0.8.0 client does not check the version it gets back (spec §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSetup {
    /// The version the server selected.
    pub version: Version,
    /// Setup extensions (none in practice).
    pub extensions: Extensions,
}

impl Encode for ServerSetup {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.version.encode(buf);
        self.extensions.encode(buf);
    }
}

impl Decode for ServerSetup {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            version: Version::decode(buf)?,
            extensions: Extensions::decode(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_varint, assert_golden, decode_hex, round_trip, Seq};
    use crate::message::BiStream;
    use proptest::prelude::*;

    fn fork02_only() -> ClientSetup {
        ClientSetup {
            versions: Versions(vec![Version::FORK_02]),
            extensions: Extensions::new(),
        }
    }

    #[test]
    fn golden_client_setup() {
        // Spec §14 item 1 (live-verified).
        assert_golden(
            "00 01 c0000000ff0bad02 00",
            &Seq(BiStream::Session, fork02_only()),
        );
        // Item 3: two versions, then one extension.
        let two = ClientSetup {
            versions: Versions(vec![Version(0xff0b_ad03), Version::FORK_02]),
            extensions: Extensions::new(),
        };
        assert_golden("02 c0000000ff0bad03 c0000000ff0bad02 00", &two);
        assert!(two.versions.contains(Version::FORK_02));

        let mut extensions = Extensions::new();
        extensions.insert(5, Bytes::from_static(&[0xaa, 0xbb]));
        let with_ext = ClientSetup {
            versions: Versions(vec![Version::FORK_02]),
            extensions,
        };
        assert_golden("01 c0000000ff0bad02 01 05 02 aabb", &with_ext);
    }

    #[test]
    fn golden_server_setup() {
        // Spec §14 item 2 (live-verified).
        let setup = ServerSetup {
            version: Version::FORK_02,
            extensions: Extensions::new(),
        };
        assert_golden("c0000000ff0bad02 00", &setup);
    }

    #[test]
    fn extensions_are_written_in_ascending_id_order() {
        let mut extensions = Extensions::new();
        extensions.insert(9, Bytes::from_static(b"b"));
        extensions.insert(2, Bytes::from_static(b"a"));
        assert_golden("02 02 01 61 09 01 62", &extensions);
        assert_eq!(extensions.get(2), Some(&Bytes::from_static(b"a")));
    }

    #[test]
    fn rejects_duplicate_extension() {
        assert_eq!(
            decode_hex::<Extensions>("02 05 00 05 01 aa"),
            Err(DecodeError::DuplicateExtension(5))
        );
    }

    #[test]
    fn rejects_huge_version_count_without_allocating() {
        assert_eq!(
            decode_hex::<Versions>("ffffffffffffffff"),
            Err(DecodeError::TooLarge("versions"))
        );
        assert_eq!(
            decode_hex::<ClientSetup>("41 00"),
            Err(DecodeError::TooLarge("versions"))
        );
        // Exactly at the limit is fine.
        let max = Versions(vec![Version::FORK_02; MAX_VERSIONS]);
        assert_eq!(round_trip(&max), Ok(max));
    }

    #[test]
    fn rejects_oversized_extensions() {
        assert_eq!(
            decode_hex::<Extensions>("ffffffffffffffff"),
            Err(DecodeError::TooLarge("extensions"))
        );
        // One payload of 4097 bytes, rejected from its length prefix.
        assert_eq!(
            decode_hex::<Extensions>("01 00 5001"),
            Err(DecodeError::TooLarge("extension payload"))
        );
        assert_eq!(
            decode_hex::<Extensions>("01 00 5000"),
            Err(DecodeError::Short(4096))
        );
    }

    fn any_extensions() -> impl Strategy<Value = Extensions> {
        proptest::collection::btree_map(
            any_varint(),
            proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from),
            0..4,
        )
        .prop_map(Extensions)
    }

    fn any_versions() -> impl Strategy<Value = Versions> {
        proptest::collection::vec(any_varint().prop_map(Version), 0..8).prop_map(Versions)
    }

    proptest! {
        #[test]
        fn client_setup_round_trips(versions in any_versions(), extensions in any_extensions()) {
            let setup = ClientSetup { versions, extensions };
            prop_assert_eq!(round_trip(&setup), Ok(setup));
        }

        #[test]
        fn server_setup_round_trips(version in any_varint(), extensions in any_extensions()) {
            let setup = ServerSetup { version: Version(version), extensions };
            prop_assert_eq!(round_trip(&setup), Ok(setup));
        }
    }
}
