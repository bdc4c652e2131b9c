//! Caps on every count and length a peer controls.
