//! The `stats` extension command on the wire, and the metrics listener's address
//! checks (moved from bobctl's tests: they need no binary).

use std::sync::Arc;

use bob_integration_tests::BobClient as Bob;
use bob_server::backend::local::LocalCore;
use bob_server::config::Config;
use bob_server::server::Server;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn metrics_refuses_remote_address_without_allow_remote() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("0.0.0.0:0".parse().unwrap()),
        ..Config::default()
    };
    let err = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refusing to listen on non-loopback address 0.0.0.0:0"),
        "{err}"
    );
    // an address in use
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some(taken.local_addr().unwrap()),
        ..Config::default()
    };
    let err = Server::bind(config, Arc::new(LocalCore::new()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot listen for metrics"),
        "{err}"
    );
}

#[tokio::test]
async fn stats_command_on_the_wire_in_both_dialects() {
    for dialect in [bob_codec::Dialect::Java, bob_codec::Dialect::I2pd] {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            dialect,
            ..Config::default()
        };
        let server = Server::bind(config, Arc::new(LocalCore::new()))
            .await
            .unwrap();
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        let mut c = Bob::connect(addr).await;
        assert_eq!(c.line("stats").await, "ERROR no nickname has been set");
        assert_eq!(c.line("stats nope").await, "ERROR no nickname has been set");
        c.line("setnick t").await;
        let zero =
            "OK STATS nickname=t running=false accepted=0 active=0 failed=0 bytes_in=0 bytes_out=0";
        assert_eq!(c.line("stats").await, zero);
        assert_eq!(c.line("STATS t extra").await, zero);
        let mut other = Bob::connect(addr).await;
        assert_eq!(other.line("stats t").await, zero);
        let help = c.line("help stats").await;
        match dialect {
            bob_codec::Dialect::Java => {
                assert!(help.starts_with("OK stats [nickname] * "), "{help}")
            }
            bob_codec::Dialect::I2pd => {
                assert!(help.starts_with("OK stats [<NICKNAME>] - "), "{help}")
            }
        }
        // the COMMANDS: list stays the reference servers'
        assert!(!c.line("help").await.contains("stats"));
        shutdown.cancel();
    }
}
