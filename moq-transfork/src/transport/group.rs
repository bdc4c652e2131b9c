//! UDP sockets that share one port, one per endpoint of a group, so that each thread of a
//! server receives its own connections' datagrams itself (`Endpoint::bind_group`).
//!
//! The sockets join one SO_REUSEPORT group. Left to itself the kernel would pick a socket by
//! a hash of the datagram's addresses, so a client whose address changes (NAT rebinding,
//! migration) would land on an endpoint that does not know its connection and answers with a
//! stateless reset. Instead, every endpoint issues connection IDs whose first byte, modulo
//! the group's size, is its index in the group, and a classic BPF program attached to the
//! group picks the socket from that byte of the destination connection ID: at offset 1 of a
//! short-header packet, 6 of a long-header one. A client's first Initial carries a connection
//! ID it chose at random; the endpoint it lands on issues its own, which every later packet
//! of the connection carries, so a connection stays on one endpoint whatever its address.
//! QUIC load balancers route the same way (draft-ietf-quic-load-balancers).

use std::net::SocketAddr;
use std::time::Duration;

use quinn_proto::{ConnectionId, ConnectionIdGenerator, HashedConnectionIdGenerator, InvalidCid};

use super::quic::{udp_socket, Tuning};

/// The most endpoints a group steers between: the connection ID byte that names one holds
/// 256 values.
const MAX_MEMBERS: usize = 256;

/// One socket of a group and the endpoint configuration that goes with it.
pub(super) struct Member {
    pub(super) socket: std::net::UdpSocket,
    pub(super) config: quinn::EndpointConfig,
}

/// Binds `count` sockets (at most [`MAX_MEMBERS`]) to `addr` (port 0 picks one port for all),
/// steered as the module says. Elsewhere than on Linux, where steering is not available, and
/// for a `count` of 1, it binds one plain socket.
pub(super) fn bind(
    addr: SocketAddr,
    tuning: &Tuning,
    count: usize,
) -> std::io::Result<Vec<Member>> {
    let count = if cfg!(target_os = "linux") {
        count.clamp(1, MAX_MEMBERS)
    } else {
        1
    };
    if count == 1 {
        let socket = udp_socket(addr, tuning, false)?;
        let config = quinn::EndpointConfig::default();
        return Ok(vec![Member { socket, config }]);
    }
    let first = udp_socket(addr, tuning, true)?;
    // Sockets that join later bind the port the first one got.
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(udp_socket(addr, tuning, true)?);
    }
    #[cfg(target_os = "linux")]
    steer(&sockets[0], count)?;

    // One reset key for all: a stateless reset proves the same wherever it comes from.
    let shared = quinn::EndpointConfig::default();
    let members = sockets
        .into_iter()
        .enumerate()
        .map(|(index, socket)| {
            let mut config = shared.clone();
            config.cid_generator(move || Box::new(MemberIds::new(index, count)));
            Member { socket, config }
        })
        .collect();
    Ok(members)
}

/// Attaches the steering program to the group `socket` belongs to: the socket at index
/// `first byte of the destination connection ID % count`, in the order the sockets joined.
#[cfg(target_os = "linux")]
fn steer(socket: &std::net::UdpSocket, count: usize) -> std::io::Result<()> {
    use nix::libc::{self, sock_filter, sock_fprog};
    use nix::sys::socket::{setsockopt, sockopt::AttachReusePortCbpf};

    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        // Every code is below 0x100.
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load_byte = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
    // Offsets count from the UDP payload (the kernel skips the UDP header for the program).
    let mut program = [
        // 0: the first byte: the header form is its high bit.
        op(load_byte, 0, 0, 0),
        // 1: a long header goes to 4.
        op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 2, 0, 0x80),
        // 2: short header: the connection ID follows the first byte.
        op(load_byte, 0, 0, 1),
        // 3: on to 5.
        op(libc::BPF_JMP | libc::BPF_JA, 0, 0, 1),
        // 4: long header: first byte, 4 of version, 1 of length, then the connection ID.
        op(load_byte, 0, 0, 6),
        // 5: the member's index.
        op(
            libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K,
            0,
            0,
            count as u32,
        ),
        // 6: a datagram too short to load from ends the program with 0: the first socket.
        op(libc::BPF_RET | libc::BPF_A, 0, 0, 0),
    ];
    let program = sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    setsockopt(socket, AttachReusePortCbpf, &program).map_err(std::io::Error::from)
}

/// The connection IDs of one member of a group: quinn's hashed IDs (8 bytes, which it can
/// tell from garbage cheaply), drawn until the first byte names this member. The byte stays
/// uniformly random within the member's share, so IDs of one connection cannot be linked.
struct MemberIds {
    index: usize,
    count: usize,
    inner: HashedConnectionIdGenerator,
}

impl MemberIds {
    fn new(index: usize, count: usize) -> Self {
        Self {
            index,
            count,
            inner: HashedConnectionIdGenerator::new(),
        }
    }
}

impl ConnectionIdGenerator for MemberIds {
    fn generate_cid(&mut self) -> ConnectionId {
        loop {
            // `count` draws on average: a few per connection, not per packet.
            let cid = self.inner.generate_cid();
            if usize::from(cid[0]) % self.count == self.index {
                return cid;
            }
        }
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        self.inner.validate(cid)
    }

    fn cid_len(&self) -> usize {
        self.inner.cid_len()
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.inner.cid_lifetime()
    }
}
