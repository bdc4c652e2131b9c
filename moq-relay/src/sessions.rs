//! The relay's connections: admitted against the connection limits (in total and per client
//! address) from their first packet on, and, once their session is set up, closed cleanly on
//! shutdown.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moq_transfork::{Error, Session};

/// How many connections the relay serves, and when it asks for address validation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Connections (handshaking or live) in total.
    pub(crate) max_sessions: usize,
    /// Connections (handshaking or live) from one client address (IPv4) or /64 (IPv6).
    pub(crate) max_per_address: usize,
    /// With this many handshakes in progress, an attempt from an address not yet validated
    /// is answered with a QUIC Retry.
    pub(crate) retry_handshakes: usize,
}

/// What to do with a connection attempt.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Serve it; the slot counts it until dropped.
    Accept(Slot),
    /// Answer with a Retry: the client must prove it receives at its address first.
    Retry,
    /// Refuse it (QUIC CONNECTION_REFUSED).
    Refuse(Refusal),
}

/// Which limit a refused attempt hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// --max-sessions.
    Total,
    /// --max-sessions-per-ip.
    PerAddress,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Total => "session limit reached",
            Self::PerAddress => "session limit of the client address reached",
        })
    }
}

/// Every connection being served. Cheap to clone: clones share the table.
#[derive(Clone, Debug)]
pub(crate) struct Sessions {
    limits: Limits,
    state: Arc<Mutex<State>>,
    /// Woken whenever a client session may have ended, for [`Sessions::idle`].
    changed: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct State {
    /// Sessions past SETUP, by id, to close on shutdown.
    live: HashMap<u64, Session>,
    /// Connections per client address key; an entry goes when its count reaches zero.
    per_address: HashMap<IpAddr, usize>,
    /// Connections being served (handshaking or live).
    total: usize,
    /// Connections still in their QUIC, WebTransport or SETUP handshake.
    handshaking: usize,
}

/// One admitted connection: counted in the totals until dropped, and listed as a live
/// session once [`Slot::established`] is called.
#[derive(Debug)]
pub(crate) struct Slot {
    sessions: Sessions,
    address: IpAddr,
    /// Set once the session is live, to remove it from the table.
    live: Option<u64>,
}

/// The key an address is counted under: an IPv4 address (also when mapped into IPv6), or the
/// /64 prefix of an IPv6 address, the smallest block one subscriber is usually given.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

impl Sessions {
    /// An empty table enforcing `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Arc::default(),
            changed: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Decides on a connection attempt from `ip`; `validated` says whether the client has
    /// already proved its address (it answered a Retry).
    pub(crate) fn admit(&self, ip: IpAddr, validated: bool) -> Admission {
        let address = address_key(ip);
        let mut state = self.state();
        // Under a handshake flood, ask for proof of address before holding any state: a
        // spoofed source never comes back, and a Retry costs one small packet.
        if !validated && state.handshaking >= self.limits.retry_handshakes {
            return Admission::Retry;
        }
        if state.total >= self.limits.max_sessions {
            return Admission::Refuse(Refusal::Total);
        }
        let count = state.per_address.entry(address).or_default();
        if *count >= self.limits.max_per_address {
            return Admission::Refuse(Refusal::PerAddress);
        }
        *count += 1;
        state.total += 1;
        state.handshaking += 1;
        Admission::Accept(Slot {
            sessions: self.clone(),
            address,
            live: None,
        })
    }

    /// Closes every live session with [`Error::Cancel`] (code 0; on WebTransport with a
    /// CLOSE_WEBTRANSPORT_SESSION capsule) and waits, at most `grace`, until the peers have
    /// acknowledged.
    pub(crate) async fn close_all(&self, grace: Duration) {
        let sessions: Vec<Session> = self.state().live.values().cloned().collect();
        tracing::info!(sessions = sessions.len(), "closing sessions");
        for session in &sessions {
            session.close(Error::Cancel);
        }
        // Each ends on its own, so waiting in turn takes as long as the slowest.
        let closed = async {
            for session in &sessions {
                session.closed().await;
            }
        };
        let _ = tokio::time::timeout(grace, closed).await;
    }

    /// How many client connections are served: live sessions and handshakes in progress
    /// (cluster links, once set up, are not counted).
    pub(crate) fn clients(&self) -> usize {
        let state = self.state();
        state.live.len() + state.handshaking
    }

    /// Waits until no client connection is left ([`Sessions::clients`] is 0).
    pub(crate) async fn idle(&self) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a change in between is not missed.
            changed.as_mut().enable();
            if self.clients() == 0 {
                return;
            }
            changed.await;
        }
    }
}

impl Slot {
    /// The handshake is over: the connection no longer counts as handshaking, and
    /// `session`, if any (cluster links close on their own), is live under `id` until the
    /// slot is dropped.
    pub(crate) fn established(&mut self, id: u64, session: Option<&Session>) {
        if self.live.is_some() {
            return;
        }
        let mut state = self.sessions.state();
        state.handshaking -= 1;
        if let Some(session) = session {
            state.live.insert(id, session.clone());
        }
        self.live = Some(id);
        drop(state);
        self.sessions.changed.notify_waiters();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.sessions.state();
        match self.live {
            Some(id) => drop(state.live.remove(&id)),
            None => state.handshaking -= 1,
        }
        state.total -= 1;
        if let Some(count) = state.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                state.per_address.remove(&self.address);
            }
        }
        drop(state);
        self.sessions.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max_sessions: usize, max_per_address: usize, retry: usize) -> Sessions {
        Sessions::new(Limits {
            max_sessions,
            max_per_address,
            retry_handshakes: retry,
        })
    }

    fn accept(admission: Admission) -> Slot {
        match admission {
            Admission::Accept(slot) => slot,
            other => panic!("expected Accept, got {other:?}"),
        }
    }

    fn refusal(admission: Admission) -> Refusal {
        match admission {
            Admission::Refuse(why) => why,
            other => panic!("expected Refuse, got {other:?}"),
        }
    }

    #[test]
    fn per_address_limit_frees_on_drop() {
        let table = sessions(10, 2, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = accept(table.admit(ip, false));
        let _second = accept(table.admit(ip, false));
        assert_eq!(refusal(table.admit(ip, false)), Refusal::PerAddress);
        // Another address is unaffected.
        let _other = accept(table.admit("192.0.2.2".parse().unwrap(), false));
        drop(first);
        let _third = accept(table.admit(ip, false));
    }

    #[test]
    fn total_limit() {
        let table = sessions(2, 10, 100);
        let _a = accept(table.admit("192.0.2.1".parse().unwrap(), false));
        let _b = accept(table.admit("192.0.2.2".parse().unwrap(), false));
        let refused = table.admit("192.0.2.3".parse().unwrap(), true);
        assert_eq!(refusal(refused), Refusal::Total);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let table = sessions(10, 1, 100);
        let _a = accept(table.admit("2001:db8::1".parse().unwrap(), false));
        let same_64 = table.admit("2001:db8::ffff:2".parse().unwrap(), false);
        assert_eq!(refusal(same_64), Refusal::PerAddress);
        let _b = accept(table.admit("2001:db8:0:1::1".parse().unwrap(), false));
        let _c = accept(table.admit("192.0.2.1".parse().unwrap(), false));
        let mapped = table.admit("::ffff:192.0.2.1".parse().unwrap(), false);
        assert_eq!(refusal(mapped), Refusal::PerAddress);
    }

    #[test]
    fn retry_above_the_handshake_threshold_unless_validated() {
        let table = sessions(10, 10, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = accept(table.admit(ip, false));
        assert!(matches!(table.admit(ip, false), Admission::Retry));
        // A validated client is served, and a threshold of 0 always asks.
        let _validated = accept(table.admit(ip, true));
        drop(first);
        assert!(matches!(
            sessions(10, 10, 0).admit(ip, false),
            Admission::Retry
        ));
    }

    #[test]
    fn empty_entries_are_removed() {
        let table = sessions(10, 10, 100);
        for i in 0..100u8 {
            drop(accept(table.admit(IpAddr::from([192, 0, 2, i]), false)));
        }
        let state = table.state();
        assert!(state.per_address.is_empty());
        assert_eq!((state.total, state.handshaking), (0, 0));
    }
}
