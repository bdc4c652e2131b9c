//! Relay policy: a registry of what sessions announce, and routing of subscriptions to them.
//!
//! Everything here is a policy one relay chose, kept apart from the [model](crate::model) and
//! the [session](crate::Session) that a plain publisher or subscriber uses: the newest announcer
//! of a path serves it, a relay-owned track per path is shared by every local subscriber and fed
//! by one upstream subscription with neutral preferences, and the relay track hands over to
//! another origin when the serving one goes away. [`Origins`] plugs into a session through
//! [`SessionOptions::router`](crate::SessionOptions::router) (it implements
//! [`Router`](crate::Router)) and [`SessionOptions::announce`](crate::SessionOptions::announce).

mod origins;
mod track;

pub use origins::Origins;
pub use track::RelayTrack;
