use bob_codec::TunnelStatus;

use super::*;

fn status(name: &str, inport: Option<u16>, outport: Option<u16>) -> TunnelStatus {
    TunnelStatus {
        nickname: name.into(),
        running: inport.is_some(),
        keys: true,
        inhost: "127.0.0.1".into(),
        inport,
        outhost: "localhost".into(),
        extra: Vec::new(),
        outport,
        ..TunnelStatus::default()
    }
}

#[test]
fn list_is_an_aligned_table() {
    let table = list_table(&[
        status("a", Some(8080), None),
        status("a-much-longer-name", None, Some(80)),
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert_eq!(
        lines[0],
        "NAME                STATE    KEYS  QUIET  INBOUND         OUTBOUND"
    );
    assert_eq!(
        lines[1],
        "a                   running  yes   no     127.0.0.1:8080  -"
    );
    assert_eq!(
        lines[2],
        "a-much-longer-name  stopped  yes   no     -               localhost:80"
    );
}

#[test]
fn endpoints() {
    let (h, p) = endpoint("--out", "[::1]:80").unwrap();
    assert_eq!((h.as_str(), p.get()), ("::1", 80));
    for bad in ["nohostport", "h:0", "h:99999", ":80", "a b:80", "h:8x"] {
        let err = endpoint("--out", bad).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad}");
    }
}

#[test]
fn router_gauges_are_read_from_the_metrics_text() {
    let text = "# HELP bob_router_info x\n# TYPE bob_router_info gauge\n\
bob_router_info{kind=\"devnet\"} 1\n# HELP bob_router_known_routers y\n\
bob_router_known_routers 5\nbob_router_sam_healthy 1\nbob_tunnels 2\n\
bob_tunnel_running{tunnel=\"bob_router_x\"} 1\n";
    let (kind, gauges) = router_gauges(text).unwrap();
    assert_eq!(kind, "devnet");
    assert_eq!(
        gauges,
        [
            ("known_routers".to_owned(), 5),
            ("sam_healthy".to_owned(), 1)
        ]
    );
    // a server without a router in its process has no bob_router_info
    assert!(router_gauges("bob_tunnels 0\n").is_none());
}
