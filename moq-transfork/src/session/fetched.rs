//! A group fetched from the peer (spec §5.4), whose request ends when nobody reads it.

use std::ops::{Deref, DerefMut};

use tokio::sync::oneshot;

use super::recv::{read_frames, GroupLimits};
use super::stream::{Reader, Writer};
use crate::message::{BiStream, Fetch};
use crate::model::{GroupConsumer, GroupProducer, Track};
use crate::transport::Connection;
use crate::Error;

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
    /// Sends `request` on a new stream of `conn` and reads the reply into a detached group,
    /// in a task of its own, until the peer finishes it or the returned handle is dropped.
    pub(super) fn spawn(
        conn: Connection,
        request: Fetch,
        limits: GroupLimits,
    ) -> Result<Self, Error> {
        // A detached group: the track exists only to create it.
        let (track, _) = Track::new(request.path.clone()).produce();
        let mut group = track.create_group(request.group)?;
        let (interest, dropped) = oneshot::channel();
        let fetched = Self {
            group: group.subscribe(),
            _interest: interest,
        };
        tokio::spawn(async move {
            let mut stream = None;
            let result = tokio::select! {
                res = fetch(&conn, &request, &limits, &mut group, &mut stream) => res,
                // Nothing is ever sent: this resolves when the handle is dropped.
                _ = dropped => Err(Error::Cancel),
            };
            match result {
                Ok(()) => group.finish(),
                Err(err) => {
                    if let Some((_, reader)) = stream.as_mut() {
                        reader.stop(&err);
                    }
                    group.close(err);
                }
            }
        });
        Ok(fetched)
    }
}

/// Sends `request` on a new stream (kept in `stream`) and reads the reply into `group`.
async fn fetch(
    conn: &Connection,
    request: &Fetch,
    limits: &GroupLimits,
    group: &mut GroupProducer,
    stream: &mut Option<(Writer, Reader)>,
) -> Result<(), Error> {
    let (send, recv) = conn.open_bi().await?;
    let (writer, reader) = stream.insert((Writer::control(send), Reader::new(recv)));
    writer.encode2(&BiStream::Fetch, request).await?;
    writer.finish()?;
    // A fetched group belongs to no cache: only its consumer holds it.
    read_frames(reader, group, limits, std::future::pending()).await
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
