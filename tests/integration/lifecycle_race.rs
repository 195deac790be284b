//! Several control clients start, stop and clear the same tunnels at once (issue 13):
//! every command is answered with one of the replies its situation allows, no tunnel is
//! left STARTING or STOPPING, and the final state is consistent (every tunnel can be
//! stopped and cleared, its ports are free). Run on the local core here and on the slow
//! fake SAM router in `sam_slow_start`.

use std::net::SocketAddr;
use std::time::Duration;

use bob_integration_tests::{DEADLINE, start_server};
use bob_testkit::{TestClient, free_port, within_for};

/// A tunnel of the race: its name and inport (`None`: outbound only).
#[derive(Debug, Clone)]
pub(crate) struct Racer {
    nick: String,
    inport: Option<u16>,
    outport: u16,
}

/// `n` tunnels, every second one with an inport too.
pub(crate) fn racers(n: usize) -> Vec<Racer> {
    let outport = free_port();
    (0..n)
        .map(|i| Racer {
            nick: format!("race{i}"),
            inport: (i % 2 == 0).then(free_port),
            outport,
        })
        .collect()
}

/// (Re)creates `t` on `c` (setnick, keys, ports); a reply other than the expected one
/// is allowed only when another client made the tunnel active or cleared it meanwhile.
async fn set_up(c: &mut TestClient, t: &Racer) {
    let mut lines = vec![
        format!("setnick {}", t.nick),
        "newkeys".to_owned(),
        "outhost 127.0.0.1".to_owned(),
        format!("outport {}", t.outport),
        "inhost 127.0.0.1".to_owned(),
    ];
    if let Some(p) = t.inport {
        lines.push(format!("inport {p}"));
    }
    for line in lines {
        let reply = c.line(&line).await;
        assert!(
            reply.starts_with("OK")
                || reply == "ERROR tunnel is active"
                || reply == "ERROR no nickname has been set",
            "{line}: {reply}"
        );
    }
}

/// A small deterministic generator (xorshift), so a failing interleaving of commands
/// can be told apart from another by its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One client: `ops` commands on random tunnels of `tunnels`, each answered within
/// `patience` with a reply its situation allows.
async fn client_run(
    addr: SocketAddr,
    tunnels: Vec<Racer>,
    seed: u64,
    ops: usize,
    patience: Duration,
) {
    let mut c = TestClient::connect(addr).await;
    c.set_deadline(patience);
    let mut rng = seed | 1;
    for _ in 0..ops {
        let t = &tunnels[(next(&mut rng) % tunnels.len() as u64) as usize];
        let selected = c.line(&format!("getnick {}", t.nick)).await;
        if selected != format!("OK Nickname set to {}", t.nick) {
            assert_eq!(
                selected, "ERROR no nickname has been set",
                "getnick {}",
                t.nick
            );
            set_up(&mut c, t).await;
            continue;
        }
        let (cmd, allowed): (&str, &[&str]) = match next(&mut rng) % 3 {
            0 => (
                "start",
                &[
                    "OK tunnel starting",
                    "ERROR tunnel is active",
                    "ERROR no nickname has been set",
                    // another client's `setnick` replaced the entry and has not set
                    // its keys or ports yet
                    "ERROR tunnel settings incomplete",
                    // another client's `stop` cancelled this start within its wait
                    "ERROR starting tunnel: tunnel stopped",
                ],
            ),
            1 => (
                "stop",
                &[
                    "OK tunnel stopping",
                    "ERROR tunnel is inactive",
                    "ERROR no nickname has been set",
                ],
            ),
            _ => (
                "clear",
                &[
                    "OK cleared",
                    "ERROR tunnel is active",
                    "ERROR no nickname has been set",
                ],
            ),
        };
        let reply = c.line(cmd).await;
        assert!(
            allowed.contains(&reply.as_str()),
            "{cmd} {}: {reply}",
            t.nick
        );
    }
    c.expect("quit", "OK Bye!").await;
}

/// The race: `clients` clients, `ops` commands each, on `tunnels`; then checks that
/// nothing is stuck and everything can be stopped and cleared. `settle` bounds how long
/// a start or stop under way may take to finish.
pub(crate) async fn race(
    addr: SocketAddr,
    tunnels: &[Racer],
    clients: usize,
    ops: usize,
    patience: Duration,
    settle: Duration,
) {
    let mut setup = TestClient::connect(addr).await;
    for t in tunnels {
        set_up(&mut setup, t).await;
    }
    let runs: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(client_run(
                addr,
                tunnels.to_vec(),
                0x9e37_79b9_7f4a_7c15 ^ (i as u64 * 0x1234_5678_9abc),
                ops,
                patience,
            ))
        })
        .collect();
    for run in runs {
        run.await.expect("a client's commands");
    }

    // nothing stays STARTING or STOPPING
    within_for(settle, "no tunnel STARTING or STOPPING", async {
        loop {
            let listed = setup.list().await;
            if listed
                .iter()
                .all(|l| l.contains("STARTING: false") && l.contains("STOPPING: false"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // every tunnel left can be stopped and cleared; its ports are free afterwards
    for line in setup.list().await {
        let nick = line
            .split("NICKNAME: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .expect("a nickname")
            .to_owned();
        setup
            .expect(
                &format!("getnick {nick}"),
                &format!("OK Nickname set to {nick}"),
            )
            .await;
        if line.contains("RUNNING: true") {
            setup.expect("stop", "OK tunnel stopping").await;
        }
        within_for(settle, "clear after stop", async {
            loop {
                match setup.line("clear").await.as_str() {
                    "OK cleared" => break,
                    "ERROR tunnel is active" => tokio::time::sleep(Duration::from_millis(20)).await,
                    other => panic!("clear {nick}: {other}"),
                }
            }
        })
        .await;
    }
    assert_eq!(setup.list().await, Vec::<String>::new());
    for t in tunnels {
        if let Some(p) = t.inport {
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("inport released");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_stop_clear_on_the_local_core() {
    let server = start_server(bob_codec::Dialect::Java).await;
    race(server.addr, &racers(4), 6, 60, DEADLINE, DEADLINE).await;
    server.stop().await;
}
