//! SAM datagram sessions against a real router: Debian's i2pd 2.45 run offline on
//! loopback by `scripts/test.sh` (environment as in [`super::sam_i2pd`]). The UDP bridge
//! is the default, SAM port − 1.
//!
//! One test: four sessions created in parallel (i2pd 2.45 takes ~20 s for any number),
//! then every scenario on them in sequence.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bob_server::backend::StreamingCore;
use bob_server::backend::datagram::{Datagram, DatagramError, DatagramSession, DatagramStyle};
use bob_server::backend::sam::{SamConfig, SamCore};
use keytools::{CryptoType, Destination, PrivateKeys, SigType};
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::sam_i2pd::env;

/// Bound on each wait for the router.
const ROUTER_LIMIT: Duration = Duration::from_secs(150);

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap()
}

/// A payload that shows where it was cut or mixed: `tag` then a byte pattern.
fn payload(tag: u32, len: usize) -> Vec<u8> {
    let mut p = tag.to_be_bytes().to_vec();
    p.extend((0..len.saturating_sub(4)).map(|i| (i % 251) as u8 ^ (tag as u8)));
    p.truncate(len);
    p
}

/// Sends `data` from `from` to `to` until `to` receives a datagram (the first ones may
/// be lost while the LeaseSets are published), at most `tries` times, and returns what
/// arrived first.
async fn deliver(
    from: &dyn DatagramSession,
    to: &dyn DatagramSession,
    data: &[u8],
    tries: u32,
) -> Datagram {
    deliver_to(from, to.destination(), to, data, tries).await
}

/// As [`deliver`], with I2CP ports.
async fn deliver_ports(
    from: &dyn DatagramSession,
    to: &dyn DatagramSession,
    data: &[u8],
    from_port: u16,
    to_port: u16,
) -> Datagram {
    for _ in 0..3 {
        from.send_to(
            to.destination(),
            DatagramStyle::Repliable,
            from_port,
            to_port,
            data,
        )
        .await
        .expect("send");
        if let Ok(got) = timeout(Duration::from_secs(2), to.recv()).await {
            return got.expect("recv");
        }
    }
    panic!("datagram with ports not delivered");
}

/// As [`deliver`], sending to `dest` (which `to` is expected to own).
async fn deliver_to(
    from: &dyn DatagramSession,
    dest: &Destination,
    to: &dyn DatagramSession,
    data: &[u8],
    tries: u32,
) -> Datagram {
    for _ in 0..tries {
        from.send_to(dest, DatagramStyle::Repliable, 0, 0, data)
            .await
            .expect("send");
        if let Ok(got) = timeout(Duration::from_secs(2), to.recv()).await {
            return got.expect("recv");
        }
    }
    panic!("{} bytes not delivered after {tries} tries", data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_datagrams_against_i2pd() {
    let Some(env) = env() else { return };
    let t0 = Instant::now();
    let mut cfg = SamConfig::new(env.sam.clone());
    cfg.default_options = env.options.clone();
    let core = SamCore::new(cfg);
    let dg = core.datagrams().expect("the SAM backend carries datagrams");
    let open = |style| dg.open_datagram_session(keys(), Vec::new(), style);
    let (a, b, r1, r2) = timeout(ROUTER_LIMIT, async {
        tokio::join!(
            open(DatagramStyle::Repliable),
            open(DatagramStyle::Repliable),
            open(DatagramStyle::Raw),
            open(DatagramStyle::Raw),
        )
    })
    .await
    .expect("sessions within the limit");
    let (a, b, r1, r2) = (
        a.expect("session A"),
        b.expect("session B"),
        r1.expect("raw session 1"),
        r2.expect("raw session 2"),
    );
    eprintln!("4 datagram sessions up after {:?}", t0.elapsed());

    // i2pd is told by HELLO (SAM 3.1): its 32,768-byte bridge buffer minus the header
    let max = a.max_payload();
    assert!((30_000..32_768 - 524).contains(&max), "max_payload {max}");

    // A -> B: B sees A's destination; B answers to it
    let got = timeout(ROUTER_LIMIT, deliver(&*a, &*b, b"ping", 60))
        .await
        .expect("first datagram within the limit");
    assert_eq!(got.from.as_ref(), Some(a.destination()));
    assert_eq!(got.style, DatagramStyle::Repliable);
    assert_eq!(&got.payload[..], b"ping");
    eprintln!("A -> B delivered after {:?}", t0.elapsed());
    let sender = got.from.clone().unwrap();
    let reply = timeout(ROUTER_LIMIT, deliver_to(&*b, &sender, &*a, b"pong", 30))
        .await
        .expect("reply within the limit");
    assert_eq!(reply.from.as_ref(), Some(b.destination()));
    assert_eq!(&reply.payload[..], b"pong");

    // I2CP ports: SAM 3.1 (i2pd 2.45) has none. FROM_PORT/TO_PORT on the bridge's UDP
    // port are ignored (the datagram still arrives) and the forwarded header carries no
    // ports, so every datagram arrives with ports 0.
    let got = deliver_ports(&*a, &*b, b"ports", 7, 9).await;
    assert_eq!(&got.payload[..], b"ports");
    assert_eq!(
        (got.from_port, got.to_port),
        (0, 0),
        "i2pd 2.45 forwards no ports"
    );
    // ... so the backend remembers them: B's answer reaches A with A's ports mirrored
    let sender = got.from.clone().unwrap();
    let got = deliver_to(&*b, &sender, &*a, b"answer", 3).await;
    assert_eq!(&got.payload[..], b"answer");
    assert_eq!((got.from_port, got.to_port), (9, 7), "ports mirrored");

    // a b32 name is resolved through NAMING LOOKUP
    let b32 = b.destination().b32();
    assert_eq!(&a.lookup(&b32).await.expect("b32 lookup"), b.destination());
    assert_eq!(
        a.lookup("nosuchname.i2p").await,
        Err(DatagramError::NotFound)
    );

    // 30,000 bytes, and the cap itself, arrive whole
    for (tag, len) in [(30_000u32, 30_000usize), (1, max)] {
        let data = payload(tag, len);
        let got = deliver(&*a, &*b, &data, 3).await;
        assert_eq!(got.payload.len(), len, "datagram of {len} cut");
        assert!(got.payload[..] == data[..], "datagram of {len} changed");
    }
    // one byte more is refused here, before the router sees it
    assert_eq!(
        a.send_to(
            b.destination(),
            DatagramStyle::Repliable,
            0,
            0,
            &payload(2, max + 1)
        )
        .await,
        Err(DatagramError::Oversize { size: max + 1, max })
    );

    // raw: the bare payload, no sender
    let got = timeout(ROUTER_LIMIT, deliver(&*r1, &*r2, b"raw", 60))
        .await
        .expect("raw datagram within the limit");
    assert_eq!(got.from, None);
    assert_eq!(got.style, DatagramStyle::Raw);
    assert_eq!(&got.payload[..], b"raw");

    // 1,000 datagrams of 1 KiB paced at one per millisecond: none lost
    const N: u32 = 1_000;
    let gap = Some(Duration::from_millis(1));
    let (paced_in, paced) = burst(&a, &b, 1_000_000, N, gap).await;
    assert_eq!(paced, N as usize, "datagrams lost");
    // figures only (not asserted): the same unpaced, and both over plain loopback UDP
    let (unpaced_in, unpaced) = burst(&a, &b, 2_000_000, N, None).await;
    let (lo_paced_in, lo_paced) = loopback_burst(N, gap).await;
    let (lo_unpaced_in, lo_unpaced) = loopback_burst(N, None).await;
    eprintln!(
        "{N} x 1 KiB: SAM paced 1 ms {paced} delivered, sent in {paced_in:.2?} \
         (loopback {lo_paced} in {lo_paced_in:.2?}); SAM unpaced {unpaced} delivered, sent in \
         {unpaced_in:.3?} (loopback {lo_unpaced} in {lo_unpaced_in:.3?})"
    );

    for s in [&a, &b, &r1, &r2] {
        s.close().await;
    }
    assert_eq!(b.recv().await, Err(DatagramError::Closed));
    assert!(matches!(
        a.send_to(b.destination(), DatagramStyle::Repliable, 0, 0, b"x")
            .await,
        Err(DatagramError::Closed)
    ));
    eprintln!("datagram scenarios done after {:?}", t0.elapsed());
}

/// Sends `n` 1 KiB datagrams A -> B (tags from `base`), one per `gap` or as fast as
/// possible, while B counts the distinct intact ones; returns the time the sends took
/// and how many arrived (B waits 3 s after the last for stragglers).
async fn burst(
    a: &Arc<dyn DatagramSession>,
    b: &Arc<dyn DatagramSession>,
    base: u32,
    n: u32,
    gap: Option<Duration>,
) -> (Duration, usize) {
    let receiver = Arc::clone(b);
    let counting = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while seen.len() < n as usize {
            match timeout(Duration::from_secs(3), receiver.recv()).await {
                Ok(Ok(d)) => {
                    let tag = u32::from_be_bytes(d.payload[..4].try_into().unwrap());
                    assert!(d.payload[..] == payload(tag, 1024)[..], "datagram {tag}");
                    if (base..base + n).contains(&tag) {
                        seen.insert(tag);
                    }
                }
                Ok(Err(e)) => panic!("recv: {e}"),
                Err(_) => break,
            }
        }
        seen.len()
    });
    let started = Instant::now();
    let mut pace = gap.map(|g| {
        let mut i = tokio::time::interval(g);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    for i in 0..n {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        a.send_to(
            b.destination(),
            DatagramStyle::Repliable,
            0,
            0,
            &payload(base + i, 1024),
        )
        .await
        .expect("send");
    }
    let sent_in = started.elapsed();
    (sent_in, counting.await.unwrap())
}

/// The baseline of [`burst`]: the same datagrams between two loopback UDP sockets.
async fn loopback_burst(n: u32, gap: Option<Duration>) -> (Duration, usize) {
    let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    tx.connect(rx.local_addr().unwrap()).await.unwrap();
    let counting = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut seen = HashSet::new();
        while seen.len() < n as usize {
            match timeout(Duration::from_secs(3), rx.recv(&mut buf)).await {
                Ok(Ok(len)) => {
                    seen.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                    assert_eq!(len, 1024);
                }
                _ => break,
            }
        }
        seen.len()
    });
    let started = Instant::now();
    let mut pace = gap.map(|g| {
        let mut i = tokio::time::interval(g);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    for i in 0..n {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        // a full kernel buffer is a loss, as on the router's side
        let _ = tx.send(&payload(i, 1024)).await;
    }
    let sent_in = started.elapsed();
    (sent_in, counting.await.unwrap())
}
