//! A group fetched from the peer (spec §5.4), whose request ends when nobody reads it.

use std::ops::{Deref, DerefMut};

use tokio::sync::oneshot;

use crate::model::GroupConsumer;

/// One group fetched from the peer by [`Session::fetch`](super::Session::fetch); read it as
/// the [`GroupConsumer`] it dereferences to.
///
/// Dropping it ends the fetch at once: the request stream is stopped with
/// [`Error::Cancel`](crate::Error::Cancel) (code 0) and nothing more of the group is read, so
/// a group nobody wants costs no more bandwidth or memory. A clone of the group taken through
/// it then ends with that error after the frames that had arrived.
#[derive(Debug)]
pub struct FetchedGroup {
    group: GroupConsumer,
    /// Dropped with this handle, which tells the fetch task that nobody reads the group.
    _interest: oneshot::Sender<()>,
}

impl FetchedGroup {
    pub(super) fn new(group: GroupConsumer, interest: oneshot::Sender<()>) -> Self {
        Self {
            group,
            _interest: interest,
        }
    }
}

impl Deref for FetchedGroup {
    type Target = GroupConsumer;

    fn deref(&self) -> &GroupConsumer {
        &self.group
    }
}

impl DerefMut for FetchedGroup {
    fn deref_mut(&mut self) -> &mut GroupConsumer {
        &mut self.group
    }
}
