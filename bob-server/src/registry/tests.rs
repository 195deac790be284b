//! Unit tests of the registry.

use keytools::{CryptoType, SigType};

use super::*;
use crate::backend::BoxFuture;
use crate::tunnel::TunnelStats;

fn registry() -> Registry {
    Registry::new(vec![("inbound.length".to_owned(), "3".to_owned())], 3)
}

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).expect("keygen")
}

#[test]
fn create_replace_and_properties() {
    let r = registry();
    r.create("a").unwrap();
    r.update("a", |e| e.inport = Some(5)).unwrap();
    let props = r.read("a", |e| e.properties.clone()).unwrap();
    assert_eq!(props.get("inbound.nickname").map(String::as_str), Some("a"));
    assert_eq!(
        props.get("outbound.nickname").map(String::as_str),
        Some("a")
    );
    assert_eq!(props.get("inbound.length").map(String::as_str), Some("3"));
    // setnick of an inactive entry replaces it
    r.create("a").unwrap();
    assert_eq!(r.status("a").unwrap().inport, None);
    assert_eq!(r.update("nope", |_| ()), Err(RegistryError::NotFound));
    assert_eq!(r.remove("nope"), Err(RegistryError::NotFound));
    r.remove("a").unwrap();
    assert!(r.list().is_empty());
    for n in ["1", "2", "3"] {
        r.create(n).unwrap();
    }
    assert_eq!(r.create("4"), Err(RegistryError::Full(3)));
    r.create("3").unwrap();
}

#[test]
fn start_preconditions_in_java_order() {
    let r = registry();
    assert_eq!(
        r.begin_start("x", CancellationToken::new()).unwrap_err(),
        RegistryError::NotFound
    );
    r.create("x").unwrap();
    assert_eq!(
        r.begin_start("x", CancellationToken::new()).unwrap_err(),
        RegistryError::NoKeys
    );
    r.update("x", |e| e.keys = Some(keys())).unwrap();
    assert_eq!(
        r.begin_start("x", CancellationToken::new()).unwrap_err(),
        RegistryError::NoPort
    );
    r.update("x", |e| e.outport = Some(80)).unwrap();
    let (spec, ticket) = r.begin_start("x", CancellationToken::new()).unwrap();
    assert!(spec.inbound.is_none());
    assert_eq!(
        spec.outbound.as_ref().map(|o| (o.host.as_str(), o.port)),
        Some(("localhost", 80))
    );
    // STARTING: everything refuses
    assert!(r.status("x").unwrap().starting);
    assert_eq!(
        r.begin_start("x", CancellationToken::new()).unwrap_err(),
        RegistryError::Active
    );
    assert_eq!(r.update("x", |_| ()), Err(RegistryError::Active));
    assert_eq!(r.remove("x"), Err(RegistryError::Active));
    assert_eq!(r.create("x"), Err(RegistryError::Active));
    // a failed start puts it back, and the reason is kept
    assert!(r.finish_start(&ticket, Err("failed".into())).is_none());
    let s = r.status("x").unwrap();
    assert!(!s.starting && !s.running && !s.stopping);
    let reason = r.read("x", |e| e.last_start_error().map(|l| l.reason.clone()));
    assert_eq!(reason, Ok(Some("failed".to_owned())));
    r.update("x", |e| e.quiet = true).unwrap();
    assert_eq!(r.begin_stop("x").unwrap_err(), RegistryError::Inactive);
}

#[test]
fn stop_cancels_a_pending_start() {
    let r = registry();
    r.create("x").unwrap();
    r.update("x", |e| {
        e.keys = Some(keys());
        e.outport = Some(80);
    })
    .unwrap();
    let cancel = CancellationToken::new();
    let (_, ticket) = r.begin_start("x", cancel.clone()).unwrap();
    assert!(matches!(r.begin_stop("x"), Ok(StopWork::Starting)));
    assert!(cancel.is_cancelled());
    assert!(r.status("x").unwrap().stopping);
    assert_eq!(r.remove("x"), Err(RegistryError::Active));
    assert_eq!(r.begin_stop("x").unwrap_err(), RegistryError::Inactive);
    // the start came up anyway: the tunnel is handed back to be stopped
    assert!(
        r.finish_start(&ticket, Ok(Box::new(Dummy::default())))
            .is_some()
    );
    assert!(r.status("x").unwrap().stopping);
    r.finish_cancelled_start(&ticket);
    let s = r.status("x").unwrap();
    assert!(!s.starting && !s.running && !s.stopping);
    assert_eq!(r.read("x", |e| e.last_start_error().is_none()), Ok(true));
    r.remove("x").unwrap();
}

#[test]
fn stale_ticket_does_not_touch_a_new_entry() {
    let r = registry();
    r.create("y").unwrap();
    r.update("y", |e| {
        e.keys = Some(keys());
        e.inport = Some(1);
    })
    .unwrap();
    let (_, ticket) = r.begin_start("y", CancellationToken::new()).unwrap();
    // (cannot happen through commands) the entry is replaced meanwhile
    r.inner.lock().unwrap().entries.get_mut("y").unwrap().phase = Phase::Idle;
    r.create("y").unwrap();
    r.update("y", |e| {
        e.keys = Some(keys());
        e.outport = Some(2);
    })
    .unwrap();
    let (_, _new_ticket) = r.begin_start("y", CancellationToken::new()).unwrap();
    assert!(r.finish_start(&ticket, Err("failed".into())).is_none());
    assert!(
        r.status("y").unwrap().starting,
        "the new entry's start is not disturbed"
    );
}

/// A tunnel that does nothing, with counters.
#[derive(Debug, Default)]
struct Dummy(Arc<TunnelStats>);

impl ActiveTunnel for Dummy {
    fn session(&self) -> Arc<dyn Session> {
        unreachable!("not used")
    }
    fn inbound_addr(&self) -> Option<SocketAddr> {
        None
    }
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn stats(&self) -> Option<Arc<TunnelStats>> {
        Some(self.0.clone())
    }
}

fn running_flag(r: &Registry, name: &str) -> bool {
    r.snapshot()
        .entries
        .iter()
        .find(|(rec, _)| rec.nickname == name)
        .map(|(rec, _)| rec.running)
        .unwrap()
}

#[test]
fn generations_and_the_remembered_running_flag() {
    let r = registry();
    let g0 = r.generation();
    r.create("t").unwrap();
    let g1 = r.generation();
    assert!(g1 > g0);
    // reads change nothing
    let _ = r.list();
    let _ = r.status("t");
    let _ = r.counters("t");
    assert_eq!(r.generation(), g1);
    r.update("t", |e| {
        e.keys = Some(keys());
        e.outport = Some(1);
    })
    .unwrap();
    let g2 = r.generation();
    assert!(g2 > g1);

    // a failed start changes nothing that is saved
    let (_, ticket) = r.begin_start("t", CancellationToken::new()).unwrap();
    r.finish_start(&ticket, Err("failed".into()));
    assert_eq!(r.generation(), g2);
    assert!(!running_flag(&r, "t"));

    // a successful start is saved as running, and keeps its counters readable
    let (_, ticket) = r.begin_start("t", CancellationToken::new()).unwrap();
    assert!(
        r.finish_start(&ticket, Ok(Box::new(Dummy::default())))
            .is_none()
    );
    let g3 = r.generation();
    assert!(g3 > g2);
    assert!(running_flag(&r, "t"));
    assert_eq!(
        r.counters("t").map(|c| (c.running, c.accepted, c.bytes_in)),
        Some((true, 0, 0))
    );
    assert!(r.metrics()[0].running);

    // shutdown stops it but it stays marked running (it comes back after a restart)
    let all = r.begin_stop_all();
    assert_eq!(all.len(), 1);
    for (_, ticket) in all {
        r.finish_stop(ticket);
    }
    assert_eq!(r.generation(), g3);
    assert!(running_flag(&r, "t"));
    assert!(!r.status("t").unwrap().running);

    // `stop` by a client is saved as stopped
    let (_, ticket) = r.begin_start("t", CancellationToken::new()).unwrap();
    r.finish_start(&ticket, Ok(Box::new(Dummy::default())));
    let g4 = r.generation();
    let Ok(StopWork::Running(_, ticket)) = r.begin_stop("t") else {
        panic!("running")
    };
    assert!(r.generation() > g4);
    assert!(!running_flag(&r, "t"));
    r.finish_stop(ticket);
    assert_eq!(r.counters("t").map(|c| c.running), Some(false));

    // a start abandoned at shutdown keeps the flag of a restored entry
    let restored = TunnelRecord {
        running: true,
        nickname: "back".into(),
        ..r.snapshot().into_records().remove(0)
    };
    assert_eq!(r.restore(&restored), Ok(true));
    let (_, ticket) = r.begin_start("back", CancellationToken::new()).unwrap();
    r.abandon_start(&ticket);
    assert!(running_flag(&r, "back"));
    // … a failed one clears it
    let g5 = r.generation();
    let (_, ticket) = r.begin_start("back", CancellationToken::new()).unwrap();
    r.finish_start(&ticket, Err("failed".into()));
    assert!(r.generation() > g5);
    assert!(!running_flag(&r, "back"));

    assert!(r.generation() > g3);
    r.remove("t").unwrap();
    assert!(
        r.snapshot()
            .entries
            .iter()
            .all(|(rec, _)| rec.nickname != "t")
    );
}

#[test]
fn restore_round_trips_and_refuses_what_does_not_fit() {
    let r = registry();
    r.create("a").unwrap();
    r.update("a", |e| {
        e.keys = Some(keys());
        e.inhost = "127.0.0.1".into();
        e.inport = Some(7);
        e.quiet = true;
        e.properties.insert("x".into(), "y".into());
    })
    .unwrap();
    let records = r.snapshot().into_records();
    let other = registry();
    assert_eq!(other.restore(&records[0]), Ok(false));
    assert_eq!(other.snapshot().into_records(), records);
    assert_eq!(other.list(), r.list());
    assert_eq!(other.restore(&records[0]), Err(RestoreError::Duplicate));
    let mut bad = records[0].clone();
    bad.nickname = "b".into();
    bad.keys = Some("nonsense".into());
    assert!(matches!(other.restore(&bad), Err(RestoreError::Keys(_))));
    let mut many = records[0].clone();
    many.nickname = "c".into();
    many.options = (0..MAX_OPTIONS_PER_TUNNEL + 10)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    assert_eq!(
        other.restore(&many),
        Err(RestoreError::TooManyOptions(MAX_OPTIONS_PER_TUNNEL))
    );
    for n in ["d", "e"] {
        let mut rec = records[0].clone();
        rec.nickname = n.into();
        other.restore(&rec).unwrap();
    }
    let mut full = records[0].clone();
    full.nickname = "f".into();
    assert_eq!(other.restore(&full), Err(RestoreError::Full(3)));
    // a record claiming to run without keys is not started
    let empty = registry();
    let mut nokeys = records[0].clone();
    nokeys.keys = None;
    nokeys.running = true;
    assert_eq!(empty.restore(&nokeys), Ok(false));
}

#[test]
fn setters_check_the_one_option_limit_all_or_nothing() {
    let r = registry();
    r.create("o").unwrap();
    // 1 default + 2 nickname options to begin with; room for every user option
    let room = MAX_OPTIONS_PER_TUNNEL;
    let fill: Vec<_> = (0..room)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    r.update("o", |e| e.set_options(fill)).unwrap().unwrap();
    let over = vec![
        ("k0".to_owned(), "w".to_owned()),
        ("new".to_owned(), "v".to_owned()),
    ];
    let refused = r.update("o", |e| e.set_options(over)).unwrap();
    assert_eq!(
        refused,
        Err(TooManyOptions {
            limit: MAX_OPTIONS_PER_TUNNEL
        })
    );
    let props = r.read("o", |e| e.properties().clone()).unwrap();
    assert_eq!(props.len(), MAX_OPTIONS_PER_TUNNEL + 3);
    assert_eq!(props["k0"], "v", "a refused batch changes nothing");
    // replacing a key the entry holds never counts
    let replace = vec![("k0".to_owned(), "w".to_owned())];
    r.update("o", |e| e.set_options(replace)).unwrap().unwrap();
    assert_eq!(r.read("o", |e| e.properties()["k0"].clone()).unwrap(), "w");
}

#[test]
fn setters_take_validated_hosts_and_ports() {
    use bob_codec::types::{Host, Port};
    let r = registry();
    r.create("h").unwrap();
    r.update("h", |e| {
        e.set_host(Side::Inbound, Host::new("127.0.0.1").unwrap());
        e.set_port(Side::Outbound, Port::new(8080).unwrap());
        e.set_quiet(true);
    })
    .unwrap();
    let (inhost, outhost, inport, outport, quiet) = r
        .read("h", |e| {
            (
                e.host(Side::Inbound).to_owned(),
                e.host(Side::Outbound).to_owned(),
                e.port(Side::Inbound),
                e.port(Side::Outbound),
                e.quiet(),
            )
        })
        .unwrap();
    assert_eq!(inhost, "127.0.0.1");
    assert_eq!(outhost, DEFAULT_HOST);
    assert_eq!((inport, outport, quiet), (None, Some(8080), true));
    assert!(
        Host::new("x".repeat(300)).is_err(),
        "hosts are capped by their type"
    );
}

#[test]
fn change_marks_name_only_what_changed_since_the_last_save() {
    let r = Registry::new(Vec::new(), 10);
    r.create("before").unwrap();
    // not tracked yet: the first save is a complete one
    assert_eq!(r.unsaved(), 0);
    r.track_changes();
    for n in ["a", "b", "c"] {
        r.create(n).unwrap();
    }
    let changes = r.changes();
    let names: Vec<&str> = changes
        .changed
        .iter()
        .map(|(rec, _)| rec.nickname.as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(changes.removed.is_empty());
    assert_eq!(changes.generation, r.generation());
    r.saved(changes.generation);
    assert_eq!(r.unsaved(), 0);
    assert!(r.changes().changed.is_empty());

    // one setter, one removal, and a change after the save point stays marked
    r.update("b", |e| e.inport = Some(7)).unwrap();
    r.update("b", |e| e.quiet = true).unwrap();
    r.remove("c").unwrap();
    assert_eq!(r.unsaved(), 2, "one mark per nickname");
    let changes = r.changes();
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].0.inport, Some(7));
    assert!(changes.changed[0].0.quiet);
    assert_eq!(changes.removed, ["c"]);
    r.update("a", |e| e.inport = Some(9)).unwrap();
    r.saved(changes.generation);
    let later = r.changes();
    assert_eq!(later.changed.len(), 1);
    assert_eq!(later.changed[0].0.nickname, "a");
    assert!(later.removed.is_empty());
}
