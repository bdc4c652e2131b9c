//! Transport tuning (`Endpoint::bind_tuned`): every congestion controller, with MTU discovery,
//! a larger initial MTU and sized UDP buffers, still carries sessions over loopback QUIC on
//! both transports.

mod common;

use bytes::Bytes;
use common::{timeout, url, SCHEMES};
use moq_transfork::model::Track;
use moq_transfork::transport::{
    ClientTls, Congestion, Endpoint, EndpointConfig, ServerTls, Tuning,
};
use moq_transfork::{Path, Session};

fn tuned(congestion: Congestion, server: bool) -> Endpoint {
    let mut tuning = Tuning::default();
    tuning.congestion = congestion;
    tuning.mtu_discovery = true;
    tuning.initial_mtu = Some(1452);
    tuning.udp_send_buffer = Some(1 << 20);
    tuning.udp_recv_buffer = Some(1 << 20);
    let tls = server.then(|| ServerTls::self_signed(&["localhost".to_string()]).unwrap());
    Endpoint::bind_tuned(
        EndpointConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            server: tls,
            client: ClientTls::disable_verify(),
        },
        tuning,
    )
    .unwrap()
}

#[tokio::test]
async fn every_congestion_controller_carries_a_session() {
    common::init_tracing();
    for congestion in [Congestion::Bbr, Congestion::Cubic, Congestion::NewReno] {
        for scheme in SCHEMES {
            let (server, client) = (tuned(congestion, true), tuned(congestion, false));
            let addr = server.local_addr().unwrap();
            let accept = async {
                let incoming = server.accept().await.unwrap();
                Session::accept(incoming.accept().await.unwrap()).await
            };
            let connect = async {
                let conn = client.connect(&url(scheme, addr)).await.unwrap();
                Session::connect(conn).await
            };
            let (theirs, ours) = timeout("session", async { tokio::join!(accept, connect) }).await;
            let (theirs, ours) = (theirs.unwrap(), ours.unwrap());

            // A frame of many packets, so the controller and the MTU are exercised.
            let path = Path::from_iter(["tuning"]);
            let (producer, consumer) = Track::new(path.clone()).produce();
            ours.publish(consumer).unwrap();
            let payload = Bytes::from(vec![7u8; 256 << 10]);
            producer
                .append_group()
                .unwrap()
                .write_frame(payload.clone());
            let mut track = theirs.subscribe(Track::new(path));
            let mut group = timeout("group", track.next_group()).await.unwrap().unwrap();
            let frame = timeout("frame", group.read_frame()).await.unwrap();
            assert_eq!(frame, Some(payload), "{congestion:?} over {scheme}");
        }
    }
}

#[test]
fn congestion_controllers_by_name() {
    assert_eq!("bbr".parse(), Ok(Congestion::Bbr));
    assert_eq!("cubic".parse(), Ok(Congestion::Cubic));
    assert_eq!("newreno".parse(), Ok(Congestion::NewReno));
    assert!("reno".parse::<Congestion>().is_err());
    assert_eq!(Congestion::default(), Congestion::Bbr);
}
