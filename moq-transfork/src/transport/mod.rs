//! QUIC endpoints, WebTransport and TLS: the edge where sockets live.
