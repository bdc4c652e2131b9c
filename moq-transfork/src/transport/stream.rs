//! Send and receive streams over either transport, with error codes mapped as spec §2.4 says.

use std::future::poll_fn;

use bytes::Bytes;
use web_transport_quinn::generic::poll::SendStream as _;

#[cfg(feature = "test-util")]
use super::memory::{MemoryRecvStream, MemorySendStream};
use crate::error::{from_wire, to_wire};
use crate::{Error, TransportError};

/// The MoqTransfork code of a RESET_STREAM or STOP_SENDING code received on raw QUIC.
///
/// A mapped code (spec §2.4) is decoded; a small code is taken as is, since some peers send
/// codes unmapped: quinn's drop sends 0, web-transport-quinn 0.13.5 in raw mode sends raw
/// codes (spec §2.2a). `None` for anything else.
pub(crate) fn decode_code(wire: u64) -> Option<u32> {
    from_wire(wire).or_else(|| u32::try_from(wire).ok())
}

/// The code of a received STOP_SENDING, or an error when it cannot be decoded.
fn stop_code(wire: u64) -> Result<u32, Error> {
    decode_code(wire).ok_or(Error::Transport(TransportError::UnknownCode {
        action: "stopped",
        wire,
    }))
}

/// The error for a stream that the peer reset or stopped with a wire code.
fn remote(wire: u64, action: &'static str) -> Error {
    match decode_code(wire) {
        Some(code) => Error::from_code(code),
        None => Error::Transport(TransportError::UnknownCode { action, wire }),
    }
}

/// The sending half of a stream.
///
/// Dropping it finishes the stream (FIN), as quinn does (spec §2.4).
#[derive(Debug)]
pub struct SendStream {
    inner: SendInner,
}

#[derive(Debug)]
enum SendInner {
    Quic(quinn::SendStream),
    WebTransport(web_transport_quinn::SendStream),
    #[cfg(feature = "test-util")]
    Memory(MemorySendStream),
}

impl SendStream {
    pub(crate) fn quic(stream: quinn::SendStream) -> Self {
        Self {
            inner: SendInner::Quic(stream),
        }
    }

    pub(crate) fn webtransport(stream: web_transport_quinn::SendStream) -> Self {
        Self {
            inner: SendInner::WebTransport(stream),
        }
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn memory(stream: MemorySendStream) -> Self {
        Self {
            inner: SendInner::Memory(stream),
        }
    }

    /// Writes one chunk without copying it.
    ///
    /// # Errors
    /// `Error::from_code(c)` when the peer sent STOP_SENDING with code `c`;
    /// [`Error::Transport`] when the stream or connection is gone.
    pub async fn write_chunk(&mut self, chunk: Bytes) -> Result<(), Error> {
        match &mut self.inner {
            SendInner::Quic(stream) => stream.write_chunk(chunk).await.map_err(quic_write_error),
            SendInner::WebTransport(stream) => {
                stream.write_chunk(chunk).await.map_err(wt_write_error)
            }
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => stream.write_chunk(chunk).await,
        }
    }

    /// Writes every chunk of `chunks` in order, without copying them, as few writes as the
    /// stream's credit allows (one, usually: a single lock of the connection and a single
    /// wake of its driver). The chunks are left empty.
    ///
    /// # Errors
    /// As [`SendStream::write_chunk`].
    pub async fn write_all_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), Error> {
        match &mut self.inner {
            SendInner::Quic(stream) => stream
                .write_all_chunks(chunks)
                .await
                .map_err(quic_write_error),
            SendInner::WebTransport(stream) => stream
                .write_all_chunks(chunks)
                .await
                .map_err(wt_write_error),
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => {
                for chunk in chunks {
                    stream.write_chunk(std::mem::take(chunk)).await?;
                }
                Ok(())
            }
        }
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// As [`SendStream::write_chunk`].
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        match &mut self.inner {
            SendInner::Quic(stream) => stream.write_all(buf).await.map_err(quic_write_error),
            SendInner::WebTransport(stream) => stream.write_all(buf).await.map_err(wt_write_error),
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => stream.write_chunk(Bytes::copy_from_slice(buf)).await,
        }
    }

    /// Sets the send priority: streams with a higher value are sent first. Has no effect on a
    /// closed stream, nor in memory, where nothing competes for the link.
    pub fn set_priority(&mut self, priority: i32) {
        // Failing only means the stream is already closed, where priority no longer matters.
        let _ = match &self.inner {
            SendInner::Quic(stream) => stream.set_priority(priority).map_err(drop),
            SendInner::WebTransport(stream) => stream.set_priority(priority).map_err(drop),
            #[cfg(feature = "test-util")]
            SendInner::Memory(_) => Ok(()),
        };
    }

    /// Ends the stream cleanly (FIN) after the data already written.
    ///
    /// # Errors
    /// [`Error::Transport`] when the stream was already finished or reset.
    pub fn finish(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            SendInner::Quic(stream) => stream.finish().map_err(Error::write),
            SendInner::WebTransport(stream) => stream.finish().map_err(Error::write),
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => stream.finish(),
        }
    }

    /// Abandons the stream with RESET_STREAM carrying `code`, mapped with [`to_wire`] on both
    /// QUIC transports as 0.8.0 peers do (spec §2.4); in memory the code travels as it is.
    /// Does nothing on a closed stream.
    pub fn reset(&mut self, code: u32) {
        // Failing only means the stream is already closed; there is nothing left to abandon.
        let _ = match &mut self.inner {
            // web-transport-quinn 0.13.5 would send the raw code here, so map it ourselves
            // (spec §2.2a).
            SendInner::Quic(stream) => stream.reset(wire_code(code)).map_err(drop),
            // In an HTTP/3 session web-transport-quinn maps the code itself.
            SendInner::WebTransport(stream) => stream.reset(code).map_err(drop),
            // In memory codes travel unmapped.
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => {
                stream.reset(code);
                Ok(())
            }
        };
    }

    /// Waits until the peer no longer needs the stream.
    ///
    /// `Ok(Some(code))` when the peer sent STOP_SENDING (a mapped code is decoded; a small raw
    /// code such as quinn's drop-time 0 is taken as is); `Ok(None)` when the stream was finished
    /// and the peer acknowledged all of it (in memory: read all of it), after which a stop can
    /// no longer arrive.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection is lost or the code cannot be decoded.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call loses nothing.
    pub async fn stopped(&mut self) -> Result<Option<u32>, Error> {
        match &mut self.inner {
            SendInner::Quic(stream) => match stream.stopped().await {
                Ok(None) => Ok(None),
                Ok(Some(wire)) => stop_code(wire.into_inner()).map(Some),
                Err(err) => Err(Error::write(err)),
            },
            SendInner::WebTransport(stream) => {
                // The poll form reports an unmappable code (such as a raw 0 from quinn's drop)
                // where `SendStream::stopped` would return `None`.
                match poll_fn(|cx| stream.poll_closed(cx)).await {
                    Ok(()) => Ok(None),
                    Err(web_transport_quinn::WriteError::Stopped(code)) => Ok(Some(code)),
                    Err(web_transport_quinn::WriteError::InvalidStopped(wire)) => {
                        stop_code(wire.into_inner()).map(Some)
                    }
                    Err(err) => Err(Error::write(err)),
                }
            }
            #[cfg(feature = "test-util")]
            SendInner::Memory(stream) => stream.stopped().await,
        }
    }
}

/// The receiving half of a stream.
///
/// Dropping it before the end sends STOP_SENDING with a raw 0, as quinn does (spec §2.4).
#[derive(Debug)]
pub struct RecvStream {
    inner: RecvInner,
}

#[derive(Debug)]
enum RecvInner {
    Quic(quinn::RecvStream),
    WebTransport(web_transport_quinn::RecvStream),
    #[cfg(feature = "test-util")]
    Memory(MemoryRecvStream),
}

impl RecvStream {
    pub(crate) fn quic(stream: quinn::RecvStream) -> Self {
        Self {
            inner: RecvInner::Quic(stream),
        }
    }

    pub(crate) fn webtransport(stream: web_transport_quinn::RecvStream) -> Self {
        Self {
            inner: RecvInner::WebTransport(stream),
        }
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn memory(stream: MemoryRecvStream) -> Self {
        Self {
            inner: RecvInner::Memory(stream),
        }
    }

    /// Reads the next bytes in order, at most `max` of them; `Ok(None)` at the end (FIN).
    ///
    /// # Errors
    /// `Error::from_code(c)` when the peer reset the stream with code `c` (so a reset never
    /// looks like a lost connection unless its code is 4, spec §8);
    /// [`Error::Transport`] when the connection is lost or the code cannot be decoded.
    ///
    /// # Cancel safety
    /// Cancel safe: no data is lost if the call is dropped.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        match &mut self.inner {
            RecvInner::Quic(stream) => match stream.read_chunk(max, true).await {
                Ok(chunk) => Ok(chunk.map(|chunk| chunk.bytes)),
                Err(quinn::ReadError::Reset(wire)) => Err(remote(wire.into_inner(), "reset")),
                Err(err) => Err(Error::read(err)),
            },
            RecvInner::WebTransport(stream) => match stream.read_chunk(max, true).await {
                Ok(chunk) => Ok(chunk.map(|chunk| chunk.bytes)),
                Err(web_transport_quinn::ReadError::Reset(code)) => Err(Error::from_code(code)),
                Err(web_transport_quinn::ReadError::InvalidReset(wire)) => {
                    Err(remote(wire.into_inner(), "reset"))
                }
                Err(err) => Err(Error::read(err)),
            },
            #[cfg(feature = "test-util")]
            RecvInner::Memory(stream) => stream.read_chunk(max).await,
        }
    }

    /// Asks the peer to stop sending with STOP_SENDING carrying `code`, mapped with
    /// [`to_wire`] on both QUIC transports (spec §2.4); in memory the code travels as it is.
    /// Does nothing on a closed stream.
    pub fn stop(&mut self, code: u32) {
        // Failing only means the stream is already closed.
        let _ = match &mut self.inner {
            // Mapped by hand for the reason given in `SendStream::reset` (spec §2.2a).
            RecvInner::Quic(stream) => stream.stop(wire_code(code)).map_err(drop),
            RecvInner::WebTransport(stream) => stream.stop(code).map_err(drop),
            #[cfg(feature = "test-util")]
            RecvInner::Memory(stream) => {
                stream.stop(code);
                Ok(())
            }
        };
    }
}

/// `to_wire(code)` as a QUIC varint. The largest mapped code is far below 2^62.
fn wire_code(code: u32) -> quinn::VarInt {
    quinn::VarInt::from_u64(to_wire(code)).unwrap_or(quinn::VarInt::MAX)
}

fn quic_write_error(err: quinn::WriteError) -> Error {
    match err {
        quinn::WriteError::Stopped(wire) => remote(wire.into_inner(), "stopped"),
        err => Error::write(err),
    }
}

fn wt_write_error(err: web_transport_quinn::WriteError) -> Error {
    match err {
        web_transport_quinn::WriteError::Stopped(code) => Error::from_code(code),
        web_transport_quinn::WriteError::InvalidStopped(wire) => {
            remote(wire.into_inner(), "stopped")
        }
        err => Error::write(err),
    }
}
