//! Readiness reporting to systemd (`Type=notify`, deploy/moq-relay.service). Outside systemd
//! (`$NOTIFY_SOCKET` unset) these do nothing.

use sd_notify::NotifyState;

/// The QUIC listener is up: systemd may consider the relay started.
pub(crate) fn ready() {
    notify(&[NotifyState::Ready]);
}

/// The drain has started: systemd shows the relay as stopping.
pub(crate) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, state) {
        tracing::warn!(%err, "cannot notify systemd");
    }
}
