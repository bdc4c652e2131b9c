//! QUIC stream priorities from track priority and group order (beyond 0.8.0, spec §5.6).

use crate::GroupOrder;

/// The send priority of control streams (session, announce, subscribe, info): above every
/// group stream, so a few bytes of INFO, ANNOUNCE or GROUP_DROP never wait behind media.
pub(crate) const CONTROL_PRIORITY: i32 = i32::MAX;

/// Bits of the group sequence that order streams within one track priority.
const SEQUENCE_BITS: u32 = 23;

/// The quinn send priority (higher is sent first) of the stream carrying group `sequence` of
/// a track with `priority` delivered in `order`.
///
/// The track priority dominates; within it, descending order favours the newest group and
/// ascending order the oldest. Only the low 23 bits of the sequence are used, which orders
/// correctly any set of in-flight groups less than 2^23 groups apart.
pub(crate) fn stream_priority(priority: i8, order: GroupOrder, sequence: u64) -> i32 {
    let mask = (1u64 << SEQUENCE_BITS) - 1;
    let low = (sequence & mask) as i32;
    let rank = match order {
        GroupOrder::Descending => low,
        GroupOrder::Ascending => mask as i32 - low,
    };
    i32::from(priority) * (1 << SEQUENCE_BITS) + rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descending_sends_newest_first() {
        let old = stream_priority(0, GroupOrder::Descending, 10);
        let new = stream_priority(0, GroupOrder::Descending, 11);
        assert!(new > old);
    }

    #[test]
    fn ascending_sends_oldest_first() {
        let old = stream_priority(0, GroupOrder::Ascending, 10);
        let new = stream_priority(0, GroupOrder::Ascending, 11);
        assert!(old > new);
    }

    #[test]
    fn control_streams_go_before_every_group() {
        assert!(CONTROL_PRIORITY > stream_priority(i8::MAX, GroupOrder::Descending, u64::MAX));
        assert!(CONTROL_PRIORITY > stream_priority(i8::MAX, GroupOrder::Ascending, 0));
    }

    #[test]
    fn track_priority_dominates_group_order() {
        let low_track_new_group = stream_priority(-1, GroupOrder::Descending, u64::MAX);
        let high_track_old_group = stream_priority(0, GroupOrder::Descending, 0);
        assert!(high_track_old_group > low_track_new_group);
        assert!(
            stream_priority(127, GroupOrder::Ascending, 0)
                > stream_priority(126, GroupOrder::Ascending, 0)
        );
        // The extremes stay within i32.
        let _ = stream_priority(i8::MIN, GroupOrder::Ascending, 0);
        let _ = stream_priority(i8::MAX, GroupOrder::Descending, u64::MAX);
    }
}
