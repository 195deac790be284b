//! The STARTING/RUNNING/STOPPING lifecycle, observed with a launcher whose start and stop
//! wait for the test's go-ahead.

use std::net::SocketAddr;
use std::sync::Arc;

use bob_codec::Dialect;
use bob_integration_tests::{
    BobClient, TestServer, local_core, start_server_with_launcher, test_config, within,
};
use bob_server::backend::{BoxFuture, Session};
use bob_server::registry::{ActiveTunnel, Launcher};
use tokio::sync::Semaphore;

/// Start and stop each take one permit from their gate before doing the real work.
struct Gates {
    start: Arc<Semaphore>,
    stop: Arc<Semaphore>,
}

#[derive(Debug)]
struct GatedTunnel {
    inner: Box<dyn ActiveTunnel>,
    stop_gate: Arc<Semaphore>,
}

impl ActiveTunnel for GatedTunnel {
    fn session(&self) -> Arc<dyn Session> {
        self.inner.session()
    }
    fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inner.inbound_addr()
    }
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _permit = self.stop_gate.acquire().await.expect("gate open");
            self.inner.stop().await;
        })
    }
}

fn gated_launcher() -> (Launcher, Gates) {
    let gates = Gates {
        start: Arc::new(Semaphore::new(0)),
        stop: Arc::new(Semaphore::new(0)),
    };
    let (start, stop) = (gates.start.clone(), gates.stop.clone());
    let real = bob_server::tunnel_launcher();
    let launcher: Launcher = Arc::new(move |core, spec, limits, control| {
        let (start, stop, real) = (start.clone(), stop.clone(), real.clone());
        Box::pin(async move {
            // a cancelled start gives up at the gate, as the real launcher does
            tokio::select! {
                permit = start.acquire() => permit.expect("gate open").forget(),
                () = control.cancelled().cancelled() => {
                    return Err(bob_server::tunnel::StartError::Stopped);
                }
            }
            let inner = real(core, spec, limits, control).await?;
            Ok(Box::new(GatedTunnel {
                inner,
                stop_gate: stop,
            }) as Box<dyn ActiveTunnel>)
        })
    });
    (launcher, gates)
}

async fn gated_server() -> (TestServer, Gates) {
    let (launcher, gates) = gated_launcher();
    (
        start_server_with_launcher(test_config(Dialect::Java), local_core(), launcher).await,
        gates,
    )
}

async fn prepared(c: &mut BobClient, nick: &str) {
    c.new_tunnel(nick).await;
    c.expect("outport 7", "OK outbound port set").await;
}

#[tokio::test]
async fn flags_follow_the_lifecycle() {
    let (server, gates) = gated_server().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    prepared(&mut a, "life").await;
    b.expect("getnick life", "OK Nickname set to life").await;

    a.send_raw(b"start\n").await;
    b.wait_status("life", "STARTING: true RUNNING: false STOPPING: false")
        .await;
    // while starting, everything that changes the entry refuses
    for cmd in [
        "inport 1",
        "outhost x",
        "quiet true",
        "option a=b",
        "settunneltype udp",
        "newkeys",
        "clear",
        "start",
    ] {
        b.expect(cmd, "ERROR tunnel is active").await;
    }
    b.expect("setnick life", "ERROR tunnel is active").await;
    b.expect("getnick life", "OK Nickname set to life").await;
    gates.start.add_permits(1);
    assert_eq!(a.read_line().await, "OK tunnel starting\n");
    b.wait_status("life", "STARTING: false RUNNING: true STOPPING: false")
        .await;

    b.expect("stop", "OK tunnel stopping").await;
    b.expect("status life", "OK DATA NICKNAME: life STARTING: false RUNNING: false STOPPING: true KEYS: true QUIET: false INPORT: not_set INHOST: localhost OUTPORT: 7 OUTHOST: localhost").await;
    b.expect("stop", "ERROR tunnel is inactive").await;
    b.expect("clear", "ERROR tunnel is active").await;
    gates.stop.add_permits(1);
    b.wait_status("life", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    b.expect("clear", "OK cleared").await;
    server.stop().await;
}

#[tokio::test]
async fn start_survives_its_client_leaving() {
    let (server, gates) = gated_server().await;
    let mut a = server.client().await;
    prepared(&mut a, "orphan").await;
    a.send_raw(b"start\n").await;
    let mut b = server.client().await;
    b.wait_status("orphan", "STARTING: true").await;
    drop(a);
    gates.start.add_permits(1);
    b.wait_status("orphan", "STARTING: false RUNNING: true STOPPING: false")
        .await;
    gates.stop.add_permits(1);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_during_start() {
    let (server, _gates) = gated_server().await;
    let mut a = server.client().await;
    prepared(&mut a, "pending").await;
    a.send_raw(b"start\n").await;
    let mut b = server.client().await;
    b.wait_status("pending", "STARTING: true").await;
    // the gate never opens: shutdown must not wait for it
    server.shutdown.cancel();
    within("clients closed", a.expect_eof()).await;
    server.wait_exit().await;
}

#[tokio::test]
async fn other_commands_run_while_a_start_is_pending() {
    let (server, gates) = gated_server().await;
    let mut a = server.client().await;
    prepared(&mut a, "slow").await;
    a.send_raw(b"start\n").await;
    // another connection is not blocked by the pending start (no global lock)
    let mut b = server.client().await;
    b.wait_status("slow", "STARTING: true").await;
    prepared(&mut b, "fast").await;
    b.send_raw(b"start\n").await;
    let mut watcher = server.client().await;
    watcher.wait_status("fast", "STARTING: true").await;
    gates.start.add_permits(2);
    assert_eq!(a.read_line().await, "OK tunnel starting\n");
    assert_eq!(b.read_line().await, "OK tunnel starting\n");
    gates.stop.add_permits(2);
    server.stop().await;
}

#[tokio::test]
async fn start_hands_the_settings_to_the_backend() {
    use bob_server::tunnel::TunnelSpec;
    use std::sync::Mutex;

    let seen: Arc<Mutex<Vec<TunnelSpec>>> = Arc::default();
    let record = seen.clone();
    let real = bob_server::tunnel_launcher();
    let launcher: Launcher = Arc::new(move |core, spec, limits, control| {
        record.lock().expect("lock").push(spec.clone());
        real(core, spec, limits, control)
    });
    let server =
        start_server_with_launcher(test_config(Dialect::Java), local_core(), launcher).await;
    let mut c = server.client().await;
    c.new_tunnel("opts").await;
    c.expect(
        "option inbound.quantity=2 zz=last",
        "OK inbound.quantity set to 2, zz set to last",
    )
    .await;
    c.expect("option inbound.length=1", "OK inbound.length set to 1")
        .await;
    c.expect("outhost 127.0.0.1", "OK outhost set").await;
    c.expect("outport 9999", "OK outbound port set").await;
    c.expect("quiet true", "OK Quiet set").await;
    c.expect("start", "OK tunnel starting").await;
    let spec = seen.lock().expect("lock").pop().expect("one start");
    let options: Vec<(&str, &str)> = spec
        .options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        options,
        vec![
            ("inbound.length", "1"),
            ("inbound.lengthVariance", "0"),
            ("inbound.nickname", "opts"),
            ("inbound.quantity", "2"),
            ("outbound.length", "3"),
            ("outbound.lengthVariance", "0"),
            ("outbound.nickname", "opts"),
            ("zz", "last"),
        ]
    );
    assert_eq!(spec.nickname, "opts");
    assert!(spec.inbound.is_none(), "no inport: no inbound side");
    let out = spec.outbound.expect("outbound side");
    assert_eq!((out.host.as_str(), out.port), ("127.0.0.1", 9999));
    assert!(spec.quiet);
    server.stop().await;
}

#[tokio::test]
async fn same_keys_twice_fail_to_start() {
    let server = start_server_with_launcher(
        test_config(Dialect::Java),
        local_core(),
        bob_server::tunnel_launcher(),
    )
    .await;
    let mut c = server.client().await;
    c.new_tunnel("one").await;
    let keys = c.ok_text("getkeys").await;
    c.expect("outport 1", "OK outbound port set").await;
    c.expect("start", "OK tunnel starting").await;
    c.expect("setnick two", "OK Nickname set to two").await;
    c.ok_text(&format!("setkeys {keys}")).await;
    c.expect("outport 2", "OK outbound port set").await;
    c.expect("start", "ERROR starting tunnel: destination already in use")
        .await;
    c.wait_status("two", "STARTING: false RUNNING: false STOPPING: false")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn stop_cancels_a_start_and_clear_follows() {
    let (server, gates) = gated_server().await;
    let mut a = server.client().await;
    prepared(&mut a, "cancel").await;
    a.send_raw(b"start\n").await;
    let mut b = server.client().await;
    b.expect("getnick cancel", "OK Nickname set to cancel")
        .await;
    b.wait_status("cancel", "STARTING: true").await;
    b.expect("stop", "OK tunnel stopping").await;
    // the start's own reply is not held past the cancellation
    let reply = within("start's reply", a.read_line()).await;
    assert!(
        reply == "OK tunnel starting\n"
            || reply.starts_with("ERROR starting tunnel: tunnel stopped"),
        "{reply:?}"
    );
    b.expect("stop", "ERROR tunnel is inactive").await;
    // Java's delete loop: clear, retried while the tunnel is still active
    within("clear after stop", async {
        loop {
            let reply = b.line("clear").await;
            if reply == "OK cleared" {
                break;
            }
            assert_eq!(reply, "ERROR tunnel is active");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(gates);
    server.stop().await;
}
