//! The order in which a subscriber wants groups delivered.

/// Which groups a publisher should send first when it cannot send all of them at once
/// (spec §3: `0` = ascending, `1` = descending).
///
/// Descending (newest first) is the default, as in 0.8.0: live media prefers the newest group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupOrder {
    /// Oldest group first (wire value 0).
    Ascending,
    /// Newest group first (wire value 1).
    #[default]
    Descending,
}
