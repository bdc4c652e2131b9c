//! A relay over the in-memory transport, with the clock paused: [`Origins`] routes the
//! subscriptions of downstream sessions to a hand-driven origin.

mod memory_common;

use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use memory_common::{
    accept_subscribe, frame, open_group, path, send_info, settle, viewer, within, Origin,
};
use moq_transfork::model::Track;
use moq_transfork::relay::Origins;
use moq_transfork::{GroupOrder, SessionOptions};

#[tokio::test(start_paused = true)]
async fn upstream_subscriptions_ask_neutral_preferences() {
    let live = path(&["live"]);

    // The relay's session to a hand-driven origin, which announces one path.
    let origins = Origins::new();
    let origin = Origin::start(&origins, &live, SessionOptions::default()).await;
    let raw = &origin.raw;
    assert!(origins.contains(&live));

    // The first viewer asks for priority 7 and groups that expire after 1 ms.
    let first = viewer(&origins).await;
    let mut early = first.0.subscribe(
        Track::new(live.clone())
            .with_priority(7)
            .with_group_expires(Duration::from_millis(1)),
    );

    // The relay's SUBSCRIBE upstream is shared by every viewer, so it asks for none of that.
    let (mut send, _request, subscribe) = within("SUBSCRIBE", accept_subscribe(raw)).await;
    assert_eq!(subscribe.path, live);
    assert_eq!(subscribe.priority, 0);
    assert_eq!(subscribe.group_order, GroupOrder::Descending);
    assert_eq!(subscribe.group_expires, Duration::ZERO);

    // The origin sends group 0; the first viewer gets it at once.
    send_info(&mut send).await;
    let mut group = open_group(raw, subscribe.id, 0).await;
    group.write_chunk(frame(b"zero")).await.unwrap();
    group.finish().unwrap();
    let mut received = within("group 0", early.next_group())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.read_frame().await, Ok(Some(Bytes::from("zero"))));

    // Much later than 1 ms, a second viewer with no expiry still gets that group: the
    // relay's copy did not take the first viewer's expiry.
    tokio::time::advance(Duration::from_millis(50)).await;
    let second = viewer(&origins).await;
    let mut late = second.0.subscribe(Track::new(live.clone()));
    let mut received = within("group 0 for the second viewer", late.next_group())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.sequence(), 0);
    assert_eq!(received.read_frame().await, Ok(Some(Bytes::from("zero"))));

    // Both viewers share the one upstream subscription.
    settle().await;
    assert!(
        raw.accept_bi().now_or_never().is_none(),
        "a second SUBSCRIBE"
    );
}
