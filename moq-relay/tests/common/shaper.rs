//! A rate-limited network path on loopback: a UDP proxy between one client and the relay.
//! Datagrams from the client go through untouched; datagrams to the client leave at most at
//! `rate` bytes per second, queued for at most `max_queue` and dropped past that (drop tail),
//! so QUIC's congestion control meets a real bottleneck.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The largest datagram forwarded.
const MAX_DATAGRAM: usize = 65536;

/// Datagrams queued towards the client; past `max_queue` they are dropped anyway, so this
/// only bounds memory.
const QUEUE_DATAGRAMS: usize = 4096;

/// What the shaper did.
#[derive(Debug, Default)]
pub struct ShaperStats {
    /// Bytes sent on to the client.
    pub forwarded_bytes: AtomicU64,
    /// Datagrams sent on to the client.
    pub forwarded: AtomicU64,
    /// Datagrams to the client dropped: the queue was full.
    pub dropped: AtomicU64,
}

/// A running shaper; its tasks stop when it is dropped.
pub struct Shaper {
    /// Where the client connects instead of the relay.
    pub addr: SocketAddr,
    pub stats: Arc<ShaperStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Shaper {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shaper {
    /// Starts a shaper on 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: SocketAddr, rate: u64, max_queue: Duration) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(upstream).await.unwrap();
        let addr = front.local_addr().unwrap();
        let client = Arc::new(OnceLock::<SocketAddr>::new());
        let stats = Arc::new(ShaperStats::default());

        // Client to relay: unshaped. The first datagram names the client.
        let upward = {
            let (front, back, client) = (front.clone(), back.clone(), client.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; MAX_DATAGRAM];
                while let Ok((len, from)) = front.recv_from(&mut buf).await {
                    let _ = client.set(from);
                    let _ = back.send(&buf[..len]).await;
                }
            })
        };

        // Relay to client: each datagram gets the time its last byte would leave a link of
        // `rate`, behind those queued before it; one that would wait longer than `max_queue`
        // is dropped.
        let (queue_tx, mut queue_rx) = mpsc::channel::<(Bytes, Instant)>(QUEUE_DATAGRAMS);
        let downward = {
            let (back, stats) = (back.clone(), stats.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; MAX_DATAGRAM];
                let mut link_free = Instant::now();
                while let Ok(len) = back.recv(&mut buf).await {
                    let now = Instant::now();
                    let serialise = Duration::from_secs_f64(len as f64 / rate as f64);
                    let departs = link_free.max(now) + serialise;
                    if departs - now > max_queue {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let datagram = Bytes::copy_from_slice(&buf[..len]);
                    if queue_tx.try_send((datagram, departs)).is_err() {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    link_free = departs;
                }
            })
        };
        let sender = {
            let (front, client, stats) = (front.clone(), client.clone(), stats.clone());
            tokio::spawn(async move {
                while let Some((datagram, departs)) = queue_rx.recv().await {
                    // Pacing the link: the measurement's clock, not a synchronisation.
                    tokio::time::sleep_until(departs).await;
                    let Some(&to) = client.get() else { continue };
                    if front.send_to(&datagram, to).await.is_ok() {
                        stats.forwarded.fetch_add(1, Ordering::Relaxed);
                        stats
                            .forwarded_bytes
                            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
                    }
                }
            })
        };

        Self {
            addr,
            stats,
            tasks: vec![upward, downward, sender],
        }
    }
}
