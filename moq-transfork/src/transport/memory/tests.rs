//! The in-memory transport against the QUIC behaviours the session relies on.

use bytes::Bytes;
use futures::FutureExt;

use super::{pair, pair_with, Config};
use crate::transport::{Connection, RecvStream, SendStream, TransportKind};
use crate::Error;

/// A uni stream from `a` to `b`, already accepted.
async fn uni(a: &Connection, b: &Connection) -> (SendStream, RecvStream) {
    let send = a.open_uni().await.unwrap();
    let recv = b.accept_uni().await.unwrap();
    (send, recv)
}

/// Everything `recv` yields up to the FIN, joined.
async fn read_to_end(recv: &mut RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = recv.read_chunk(usize::MAX).await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

#[tokio::test]
async fn streams_are_accepted_in_the_order_they_were_opened() {
    let (a, b) = pair();
    for i in 0..3u8 {
        let mut send = a.open_uni().await.unwrap();
        send.write_all(&[i]).await.unwrap();
    }
    for i in 0..3u8 {
        let mut recv = b.accept_uni().await.unwrap();
        assert_eq!(read_to_end(&mut recv).await, [i]);
    }

    // Bidirectional streams, from either end, each with its own queue.
    let (mut send, _recv) = b.open_bi().await.unwrap();
    send.write_all(b"from b").await.unwrap();
    let (mut their_send, mut their_recv) = a.accept_bi().await.unwrap();
    assert_eq!(
        their_recv.read_chunk(64).await.unwrap().as_deref(),
        Some(&b"from b"[..])
    );
    their_send.write_all(b"back").await.unwrap();
    assert!(a.accept_uni().now_or_never().is_none(), "no uni stream");
}

#[tokio::test]
async fn chunks_pass_through_without_copying() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    let chunk = Bytes::from(vec![7u8; 100]);
    send.write_chunk(chunk.clone()).await.unwrap();

    let head = recv.read_chunk(30).await.unwrap().unwrap();
    let tail = recv.read_chunk(1000).await.unwrap().unwrap();
    assert_eq!((head.len(), tail.len()), (30, 70));
    assert_eq!(head.as_ptr(), chunk.as_ptr(), "the written buffer itself");
    assert_eq!(tail.as_ptr(), chunk[30..].as_ptr());
}

#[tokio::test]
async fn fin_reads_as_none_after_the_data() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    send.write_all(b"one").await.unwrap();
    send.write_all(b"two").await.unwrap();
    send.finish().unwrap();
    assert!(send.finish().is_err(), "finished twice");
    assert!(send.write_all(b"late").await.is_err());
    assert_eq!(read_to_end(&mut recv).await, b"onetwo");
    assert_eq!(recv.read_chunk(8).await.unwrap(), None);
}

#[tokio::test]
async fn reset_discards_unread_data_and_carries_its_code() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    send.write_all(b"never read").await.unwrap();
    send.reset(Error::NotFound.code());
    assert_eq!(recv.read_chunk(64).await, Err(Error::NotFound));
    assert_eq!(recv.read_chunk(64).await, Err(Error::NotFound));
}

#[tokio::test]
async fn stop_fails_the_next_write_and_reports_its_code() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    send.write_all(b"x").await.unwrap();
    assert!(send.stopped().now_or_never().is_none(), "not stopped yet");

    recv.stop(Error::Duplicate.code());
    assert_eq!(send.write_all(b"y").await, Err(Error::Duplicate));
    assert_eq!(send.stopped().await, Ok(Some(Error::Duplicate.code())));
    // Finishing a stopped stream is harmless, as with quinn.
    assert_eq!(send.finish(), Ok(()));
}

#[tokio::test]
async fn stopped_is_none_once_a_finished_stream_was_read() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    send.write_all(b"data").await.unwrap();
    send.finish().unwrap();
    assert!(send.stopped().now_or_never().is_none(), "data unread");
    assert_eq!(read_to_end(&mut recv).await, b"data");
    assert_eq!(send.stopped().await, Ok(None));
}

#[tokio::test]
async fn dropping_a_recv_stream_early_stops_it_with_0() {
    let (a, b) = pair();
    let (mut send, recv) = uni(&a, &b).await;
    send.write_all(b"data").await.unwrap();
    drop(recv);
    assert_eq!(send.stopped().await, Ok(Some(0)));
    assert_eq!(send.write_all(b"more").await, Err(Error::Cancel));

    // Once the FIN has arrived nothing is stopped: QUIC would have received everything.
    let (mut send, recv) = uni(&a, &b).await;
    send.write_all(b"data").await.unwrap();
    send.finish().unwrap();
    drop(recv);
    assert_eq!(send.stopped().await, Ok(None));
}

#[tokio::test]
async fn dropping_a_send_stream_finishes_it() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    send.write_all(b"last words").await.unwrap();
    drop(send);
    assert_eq!(read_to_end(&mut recv).await, b"last words");
}

#[tokio::test]
async fn writes_wait_while_the_window_is_full() {
    let (a, b) = pair_with(Config {
        stream_window: 4,
        ..Config::default()
    });
    let (mut send, mut recv) = uni(&a, &b).await;
    let chunk = Bytes::from_static(b"0123456789");
    {
        // The first 4 bytes go in; the write waits for the rest.
        let mut write = Box::pin(send.write_chunk(chunk.clone()));
        assert!((&mut write).now_or_never().is_none());
        let part = recv.read_chunk(64).await.unwrap().unwrap();
        assert_eq!(&part[..], b"0123");
        assert_eq!(part.as_ptr(), chunk.as_ptr(), "split, not copied");
        assert!((&mut write).now_or_never().is_none(), "6 bytes left, 4 fit");
        assert_eq!(&recv.read_chunk(64).await.unwrap().unwrap()[..], b"4567");
        write.await.unwrap();
    }
    assert_eq!(&recv.read_chunk(64).await.unwrap().unwrap()[..], b"89");
}

#[tokio::test]
async fn opens_wait_for_stream_credit() {
    let (a, b) = pair_with(Config {
        max_streams: 2,
        ..Config::default()
    });
    let mut first = a.open_uni().await.unwrap();
    let _second = a.open_uni().await.unwrap();
    assert!(a.open_uni().now_or_never().is_none(), "two streams open");

    // Accepting is not enough: the acceptor must be done with the stream.
    let mut recv = b.accept_uni().await.unwrap();
    assert!(a.open_uni().now_or_never().is_none(), "accepted, not done");
    first.finish().unwrap();
    assert!(read_to_end(&mut recv).await.is_empty());
    assert!(a.open_uni().now_or_never().is_some(), "credit came back");

    // A bidi stream holds its credit until both of the acceptor's halves are done.
    let _one = a.open_bi().await.unwrap();
    let (mut their_send, mut their_recv) = {
        let _two = a.open_bi().await.unwrap();
        b.accept_bi().await.unwrap()
    };
    assert!(a.open_bi().now_or_never().is_none());
    their_recv.stop(0);
    assert!(a.open_bi().now_or_never().is_none(), "send half still open");
    their_send.reset(0);
    assert!(a.open_bi().now_or_never().is_some());

    // Different kinds have separate limits.
    assert!(b.open_uni().now_or_never().is_some());
}

#[tokio::test]
async fn close_fails_everything_on_both_ends() {
    let (a, b) = pair();
    let (mut send, mut recv) = uni(&a, &b).await;
    let mut read = Box::pin(recv.read_chunk(64));
    assert!((&mut read).now_or_never().is_none());
    let mut accept = Box::pin(b.accept_bi());
    assert!((&mut accept).now_or_never().is_none());

    a.close(Error::NotFound.code(), "bye");
    assert!(matches!(read.await, Err(Error::Transport(_))));
    assert!(matches!(accept.await, Err(Error::Transport(_))));
    assert!(matches!(
        send.write_all(b"x").await,
        Err(Error::Transport(_))
    ));
    assert!(matches!(send.finish(), Err(Error::Transport(_))));
    assert!(matches!(a.open_uni().await, Err(Error::Transport(_))));
    assert!(matches!(b.open_bi().await, Err(Error::Transport(_))));
    assert!(matches!(send.stopped().await, Err(Error::Transport(_))));

    // The peer learns the code; the closer sees a local close. The first close wins.
    b.close(Error::Duplicate.code(), "too late");
    assert_eq!(b.closed().await, Error::NotFound);
    assert!(matches!(a.closed().await, Error::Transport(_)));
}

#[tokio::test]
async fn dropping_every_handle_of_an_end_closes_it_with_0() {
    let (a, b) = pair();
    let (send, _recv) = uni(&a, &b).await;
    let clone = a.clone();
    drop(a);
    assert!(b.closed().now_or_never().is_none(), "a clone is alive");
    drop(clone);
    assert!(b.closed().now_or_never().is_none(), "a stream is alive");
    drop(send);
    assert_eq!(b.closed().await, Error::Cancel);
}

#[tokio::test]
async fn describes_itself_as_memory() {
    let (a, _b) = pair();
    assert_eq!(a.kind(), TransportKind::Memory);
    assert_eq!(TransportKind::Memory.to_string(), "memory");
    assert_eq!(a.remote_address().to_string(), "0.0.0.0:0");
    assert_eq!(a.rtt(), std::time::Duration::ZERO);
    assert_eq!(a.stats().path.rtt, std::time::Duration::ZERO);
    assert_eq!(a.url(), None);
}
