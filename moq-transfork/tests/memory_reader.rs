//! A session's stream reader against hostile chunking and sizes, over the in-memory transport
//! with the clock paused: SETUP and SUBSCRIBE a byte per write are served, and a SETUP over
//! the 8 KiB cap closes the connection with Decode (5) from its declared lengths alone.

mod memory_common;

use bytes::Bytes;
use memory_common::{expect_group, path, subscribe, within, Messages, SERVER_SETUP};
use moq_transfork::coding::limits::{MAX_EXTENSION_SIZE, MAX_VERSIONS};
use moq_transfork::message::{BiStream, ClientSetup, Extensions, Info, Version, Versions};
use moq_transfork::model::Track;
use moq_transfork::transport::memory;
use moq_transfork::transport::SendStream;
use moq_transfork::{Encode, Error, Session};

/// Writes `bytes` one byte per write.
async fn dribble(send: &mut SendStream, bytes: &[u8]) {
    for &byte in bytes {
        send.write_chunk(Bytes::copy_from_slice(&[byte]))
            .await
            .unwrap();
    }
}

/// The session stream type and a CLIENT_SETUP with every version slot used and `tokens`
/// extensions of the largest size.
fn setup(tokens: u64) -> Vec<u8> {
    let mut extensions = Extensions::new();
    for id in 0..tokens {
        extensions.insert(0x6a77 + id, Bytes::from(vec![0x5a; MAX_EXTENSION_SIZE]));
    }
    let setup = ClientSetup {
        versions: Versions(vec![Version::FORK_02; MAX_VERSIONS]),
        extensions,
    };
    let mut buf = Vec::new();
    BiStream::Session.encode(&mut buf);
    setup.encode(&mut buf);
    buf
}

#[tokio::test(start_paused = true)]
async fn the_largest_setup_and_a_subscribe_dribbled_a_byte_per_write_are_served() {
    let (raw, theirs) = memory::pair();
    let handshake = async {
        let (mut send, mut recv) = raw.open_bi().await.unwrap();
        dribble(&mut send, &setup(1)).await;
        let mut got = Vec::new();
        while got.len() < SERVER_SETUP.len() {
            got.extend_from_slice(&recv.read_chunk(64).await.unwrap().unwrap());
        }
        assert_eq!(got, SERVER_SETUP);
        (send, recv)
    };
    let (server, _stream) = within("setup", async {
        tokio::join!(Session::accept(theirs), handshake)
    })
    .await;
    let server = server.unwrap();

    let (producer, consumer) = Track::new(path(&["dribbled"])).produce();
    server.publish(consumer).unwrap();
    producer.append_group().unwrap().finish();
    let (mut send, recv) = raw.open_bi().await.unwrap();
    dribble(&mut send, &subscribe(0, path(&["dribbled"]))).await;
    let info: Info = within("info", Messages::new(recv).next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.group_latest, 0);
    let mut group = Messages::new(raw.accept_uni().await.unwrap());
    expect_group(&mut group, 0, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_setup_over_the_cap_closes_with_decode_before_its_rest_arrives() {
    let (raw, theirs) = memory::pair();
    let bytes = setup(2);
    let handshake = async {
        let (mut send, _recv) = raw.open_bi().await.unwrap();
        // Up to the second token's length; the rest is never sent.
        send.write_chunk(Bytes::copy_from_slice(
            &bytes[..bytes.len() - MAX_EXTENSION_SIZE],
        ))
        .await
        .unwrap();
        raw.closed().await
    };
    let (accepted, closed) = within("refusal", async {
        tokio::join!(Session::accept(theirs), handshake)
    })
    .await;
    assert!(matches!(accepted, Err(Error::Decode(_))), "{accepted:?}");
    assert_eq!(closed.code(), 5);
}
