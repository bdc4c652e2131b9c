//! Clustering for MoqTransfork relays: relays that find each other through a root relay, form
//! one mesh, and keep working when members fail.
//!
//! Discovery uses nothing but MoqTransfork: each member publishes an (empty) track
//! `internal/origins/<node>` on a *discovery link* to the root, and follows the root's
//! announcements under `internal/origins` to learn every other member. It then opens a *peer
//! link* to each member, learns what that member's own clients publish, and routes
//! subscriptions for those paths through the link.
//!
//! Loops cannot form, because a relay answers a peer link with its *local* paths only (those
//! its own clients publish), never with what it learned from other relays: a broadcast
//! crosses at most two relays (publisher → its relay → subscriber's relay → subscriber). The
//! kind of link is the path of its WebTransport CONNECT ([`LinkKind`]).
//!
//! # Examples
//!
//! A relay builds one [`Cluster`] next to its [`Origins`], runs it, and hands it every
//! connection that is a cluster link:
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn relay(endpoint: moq_transfork::transport::Endpoint) -> Result<(), Box<dyn std::error::Error>> {
//! use moq_cluster::{Cluster, ClusterConfig, LinkKind};
//! use moq_transfork::relay::Origins;
//! use moq_transfork::SessionOptions;
//!
//! let (locals, remotes) = (Origins::new(), Origins::new());
//! let cluster = Cluster::new(ClusterConfig {
//!     root: Some("root.example:4443".into()),
//!     node: Some("eu.example:4443".into()),
//!     endpoint: endpoint.clone(),
//!     locals: locals.clone(),
//!     remotes: remotes.clone(),
//!     session: SessionOptions::default(),
//!     token: None,
//! })?;
//! tokio::spawn({
//!     let cluster = cluster.clone();
//!     async move { cluster.run().await }
//! });
//! while let Some(incoming) = endpoint.accept().await {
//!     let conn = incoming.accept().await?;
//!     if let Some(kind) = LinkKind::of(&conn) {
//!         let cluster = cluster.clone();
//!         tokio::spawn(async move { cluster.serve(kind, conn).await });
//!     } else {
//!         // A client: offer it locals and remotes, route to both (see moq-relay).
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod link;
mod members;
mod names;
mod registry;
mod stats;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moq_transfork::relay::Origins;
use moq_transfork::transport::{Connection, Endpoint};
use moq_transfork::{Error, Path, Session, SessionOptions, Track};
use tokio::sync::watch;

pub use names::{link_url, member_name, origin_path, InvalidName};
pub use stats::ClusterStats;

use members::Membership;
use registry::Registry;

/// The QUIC idle timeout of cluster links: a member that dies silently is noticed, and its
/// broadcasts withdrawn, after this long (the default of spec §2.3 is 10 s).
pub const LINK_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How often cluster links send a keep-alive, well within [`LINK_IDLE_TIMEOUT`].
pub const LINK_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The prefix of member advertisements: `internal/origins`.
pub fn origins_prefix() -> Path {
    Path::from_iter(["internal", "origins"])
}

/// What a connection between two relays is for, told by the path of its WebTransport CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A member to the root (`/cluster/discovery`): the member advertises itself, the root
    /// announces every member.
    Discovery,
    /// A member to another member (`/cluster/peer`): the served relay announces and serves its
    /// local paths only.
    Peer,
}

impl LinkKind {
    /// The URL path that opens a link of this kind.
    pub fn url_path(self) -> &'static str {
        match self {
            Self::Discovery => "/cluster/discovery",
            Self::Peer => "/cluster/peer",
        }
    }

    /// The kind of cluster link `conn` is, or `None` for a client (any other path, or raw
    /// QUIC, which has no path).
    pub fn of(conn: &Connection) -> Option<Self> {
        match conn.url()?.path() {
            path if path == Self::Discovery.url_path() => Some(Self::Discovery),
            path if path == Self::Peer.url_path() => Some(Self::Peer),
            _ => None,
        }
    }
}

/// How a relay takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The root relay (`HOST[:PORT]`) used for discovery. `None`, or the same string as
    /// `node`, makes this relay the root.
    pub root: Option<String>,
    /// The name (`HOST[:PORT]`) under which the other members reach this relay. `None` makes
    /// it a read-only member: it reaches every broadcast of the cluster but offers none.
    pub node: Option<String>,
    /// The relay's endpoint; links are dialed from its socket.
    pub endpoint: Endpoint,
    /// Paths published by the relay's own clients: offered to peers.
    pub locals: Origins,
    /// Where paths learned from peers are registered: offered to clients only.
    pub remotes: Origins,
    /// Options for cluster sessions (cache, linger, limits); `announce` and `router` are set
    /// by the cluster.
    pub session: SessionOptions,
    /// A JWT with the cluster role, presented (as `?jwt=`) on every link this relay dials,
    /// for members that verify tokens (docs/auth.md). Never logged.
    pub token: Option<String>,
}

/// One relay's part in a cluster: its discovery (as root or as member), its links to the
/// other members, and the cluster links other relays open to it.
///
/// Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    /// The root's discovery URL; `None` on the root.
    root: Option<url::Url>,
    node: Option<String>,
    /// The relay's endpoint, with the short timeouts of cluster links for dialing.
    dialer: Endpoint,
    locals: Origins,
    remotes: Origins,
    session: SessionOptions,
    /// The token presented on the links this relay dials.
    token: Option<String>,
    /// Members registered by discovery links (used on the root only).
    registry: Registry,
    members: Mutex<Membership<watch::Sender<bool>>>,
    /// Set once by [`Cluster::withdraw`].
    withdrawn: watch::Sender<bool>,
    stats: ClusterStats,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("root", &self.inner.root.as_ref().map(url::Url::as_str))
            .field("node", &self.inner.node)
            .field("members", &self.members().len())
            .finish()
    }
}

impl Cluster {
    /// Checks the names and prepares the cluster; nothing happens until [`Cluster::run`].
    ///
    /// # Errors
    /// [`InvalidName`] when `root` or `node` is not `HOST[:PORT]`.
    pub fn new(config: ClusterConfig) -> Result<Self, InvalidName> {
        if let Some(node) = &config.node {
            link_url(node, LinkKind::Peer)?;
        }
        let root = match &config.root {
            Some(root) if Some(root) != config.node.as_ref() => {
                Some(link_url(root, LinkKind::Discovery)?)
            }
            _ => None,
        };
        let registry = Registry::default();
        if let (None, Some(node)) = (&root, &config.node) {
            // The root is a member like any other, registered for as long as it runs.
            registry.add(&origin_path(node));
        }
        let is_root = root.is_none();
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                node: config.node,
                dialer: config
                    .endpoint
                    .with_dial_timeouts(LINK_IDLE_TIMEOUT, LINK_KEEP_ALIVE),
                locals: config.locals,
                remotes: config.remotes,
                session: config.session,
                token: config.token,
                registry,
                members: Mutex::new(Membership::new(is_root)),
                withdrawn: watch::channel(false).0,
                stats: ClusterStats::default(),
            }),
        })
    }

    /// Links up, redials, and whether the root has been reached.
    pub fn stats(&self) -> &ClusterStats {
        &self.inner.stats
    }

    /// True when this relay is the cluster's root.
    pub fn is_root(&self) -> bool {
        self.inner.root.is_none()
    }

    /// The name this relay advertises, if any.
    pub fn node(&self) -> Option<&str> {
        self.inner.node.as_deref()
    }

    /// Leaves the cluster for good, as a draining relay does: the root stops announcing this
    /// relay, so every member drops its link to it and withdraws its broadcasts at once.
    ///
    /// A member closes its discovery link and never redials the root; the root removes itself
    /// from its registry (and goes on serving discovery to the others). Links this relay
    /// dialed to other members stay up, so its clients keep receiving their broadcasts until
    /// the relay exits. Calling it again does nothing.
    pub fn withdraw(&self) {
        if self.inner.withdrawn.send_replace(true) {
            return;
        }
        tracing::info!("cluster: withdrawing this relay");
        if let (None, Some(node)) = (&self.inner.root, self.node()) {
            self.inner.registry.remove(&origin_path(node));
        }
    }

    fn members(&self) -> MutexGuard<'_, Membership<watch::Sender<bool>>> {
        lock(&self.inner.members)
    }

    /// Runs discovery for as long as the relay runs: on the root, follows its registry; on a
    /// member, keeps a discovery link to the root, redialed with backoff, until
    /// [`Cluster::withdraw`]. Links to members are started and stopped as they join and leave.
    ///
    /// # Cancel safety
    /// Dropping this future stops discovery but not the links already started.
    pub async fn run(&self) {
        match &self.inner.root {
            None => self.follow_registry().await,
            Some(root) => self.discover_through(root).await,
        }
    }

    /// Serves a cluster link another relay opened to us, until it ends.
    ///
    /// - [`LinkKind::Discovery`] (on the root): registers the member the link advertises and
    ///   announces every member back. Refused on a relay that is not the root.
    /// - [`LinkKind::Peer`]: announces and serves this relay's local paths only.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a discovery link to a relay that is not the root; setup errors.
    pub async fn serve(&self, kind: LinkKind, conn: Connection) -> Result<(), Error> {
        let peer = conn.remote_address();
        match kind {
            LinkKind::Discovery => {
                if !self.is_root() {
                    tracing::warn!("cluster: refusing discovery link from {peer}: not the root");
                    let err = Error::NotFound;
                    conn.close(err.code(), "not the cluster root");
                    return Err(err);
                }
                let options = SessionOptions {
                    announce: vec![self.inner.registry.announced()],
                    router: None,
                    ..self.inner.session.clone()
                };
                let session = Session::accept_with(conn, options).await?;
                tracing::info!("cluster: discovery link from {peer}");
                self.inner.registry.serve(&session).await;
                let reason = session.closed().await;
                tracing::info!("cluster: discovery link from {peer} ended: {reason}");
            }
            LinkKind::Peer => {
                let locals = self.inner.locals.clone();
                let router = move |track: &Track| {
                    // Logged per SUBSCRIBE the peer sends: one per path however many
                    // subscribers it has (its session deduplicates).
                    tracing::debug!("cluster: peer {peer} subscribed to {}", track.path);
                    locals.route(track)
                };
                let options = SessionOptions {
                    announce: vec![self.inner.locals.announced()],
                    router: Some(Arc::new(router)),
                    ..self.inner.session.clone()
                };
                let session = Session::accept_with(conn, options).await?;
                tracing::info!("cluster: peer link from {peer}");
                let reason = session.closed().await;
                tracing::info!("cluster: peer link from {peer} ended: {reason}");
            }
        }
        Ok(())
    }

    /// Dials `url` from the relay's socket and sets up a session that offers nothing.
    async fn dial(&self, url: &url::Url) -> Result<Session, Error> {
        let mut url = url.clone();
        if let Some(token) = &self.inner.token {
            url.query_pairs_mut().append_pair("jwt", token);
        }
        let conn = self.inner.dialer.connect(&url).await?;
        let options = SessionOptions {
            announce: Vec::new(),
            router: None,
            ..self.inner.session.clone()
        };
        Session::connect_with(conn, options).await
    }

    /// The root announced `name`: link to it, unless it is us.
    fn member_up(&self, name: &str) {
        if Some(name) == self.node() {
            return;
        }
        let url = match link_url(name, LinkKind::Peer) {
            Ok(url) => url,
            Err(err) => {
                tracing::warn!("cluster: ignoring member: {err}");
                return;
            }
        };
        let joined = self.members().join(name, |generation| {
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(link::run_peer_link(
                self.clone(),
                name.to_owned(),
                url,
                generation,
                stopped,
            ));
            stop
        });
        if joined {
            tracing::info!("cluster: member {name} joined");
        }
    }

    /// The root says `name` left: stop its link, which withdraws its broadcasts.
    fn member_down(&self, name: &str) {
        if let Some(stop) = self.members().leave(name) {
            tracing::info!("cluster: member {name} left");
            let _ = stop.send(true);
        }
    }

    /// On the root: members are whatever the registry holds.
    async fn follow_registry(&self) {
        let mut members = self
            .inner
            .registry
            .announced()
            .subscribe_prefix(origins_prefix());
        while let Some(event) = members.next().await {
            match event {
                moq_transfork::Announced::Active(path) => {
                    if let Some(name) = member_name(&path) {
                        self.member_up(name);
                    }
                }
                moq_transfork::Announced::Ended(path) => {
                    if let Some(name) = member_name(&path) {
                        self.member_down(name);
                    }
                }
            }
        }
    }
}

/// Locks `mutex`, recovering the data if a thread panicked while holding it: the crate's one
/// poison-tolerant lock (each state keeps its invariants between statements that can panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
