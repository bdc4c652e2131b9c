//! QUIC stream priorities from track priority and group order (beyond 0.8.0, spec §5.6).

use crate::GroupOrder;

/// The send priority of control streams (session, announce, subscribe, info): above every
/// group stream, so a few bytes of INFO, ANNOUNCE or GROUP_DROP never wait behind media.
pub(crate) const CONTROL_PRIORITY: i32 = i32::MAX;

/// Bits of the group sequence that order streams within one track priority.
const SEQUENCE_BITS: u32 = 22;

/// The bit above them: set for a group that has started sending.
const STARTED: i32 = 1 << SEQUENCE_BITS;

/// The quinn send priority (higher is sent first) of the stream carrying group `sequence` of
/// a track with `priority` delivered in `order`, before it sends payload.
///
/// The track priority dominates; within it, descending order favours the newest group and
/// ascending order the oldest. Only the low 22 bits of the sequence are used, which orders
/// correctly any set of in-flight groups less than 2^22 groups apart.
pub(crate) fn stream_priority(priority: i8, order: GroupOrder, sequence: u64) -> i32 {
    let mask = (1u64 << SEQUENCE_BITS) - 1;
    let low = (sequence & mask) as i32;
    let rank = match order {
        GroupOrder::Descending => low,
        GroupOrder::Ascending => mask as i32 - low,
    };
    track_base(priority) + rank
}

/// The send priority of the stream of group `sequence` once it has started sending payload:
/// above every group of the track that has not, oldest first, whatever the order. A group
/// under way is finished before the next one starts; the order picks which one that is.
pub(crate) fn started_priority(priority: i8, sequence: u64) -> i32 {
    stream_priority(priority, GroupOrder::Ascending, sequence) + STARTED
}

fn track_base(priority: i8) -> i32 {
    i32::from(priority) * (STARTED << 1)
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
        assert!(CONTROL_PRIORITY > started_priority(i8::MAX, 0));
    }

    #[test]
    fn a_started_group_goes_first_within_its_track_only() {
        let started = started_priority(0, 10);
        assert!(started > stream_priority(0, GroupOrder::Descending, 11));
        assert!(started > stream_priority(0, GroupOrder::Ascending, 9));
        // Of two started groups, the older finishes first.
        assert!(started > started_priority(0, 11));
        assert!(stream_priority(1, GroupOrder::Ascending, u64::MAX) > started);
        assert!(started_priority(-1, 0) < stream_priority(0, GroupOrder::Ascending, u64::MAX));
        let _ = started_priority(i8::MIN, u64::MAX);
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
