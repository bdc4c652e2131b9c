//! The stream reader for the fuzz targets in `fuzz/` (cargo feature `fuzzing`): not a stable
//! API, hidden from the docs.

use bytes::Bytes;

use super::stream::Reader;
use crate::coding::Decode;
use crate::transport::RecvStream;
use crate::Error;

/// The session's message reader, as every stream of a session uses it.
#[derive(Debug)]
pub struct FuzzReader(Reader);

impl FuzzReader {
    /// Reads from `stream`.
    pub fn new(stream: RecvStream) -> Self {
        Self(Reader::new(stream))
    }

    /// The next message, `None` at a FIN between messages.
    ///
    /// # Errors
    /// As the session's reader: a decode error, a message over the cap, a FIN inside it.
    pub async fn decode_maybe<T: Decode>(&mut self) -> Result<Option<T>, Error> {
        self.0.decode_maybe().await
    }

    /// Up to `max` payload bytes, `None` at the end of the stream.
    ///
    /// # Errors
    /// The stream's errors.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        self.0.read_chunk(max).await
    }

    /// Bytes copied and held for a message not yet complete.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }
}
