//! Every command's OK and ERROR paths, in both dialects.

use bob_codec::Dialect;
use bob_integration_tests::{local_core, start_server, start_server_with, test_config};
use keytools::SigType;

const JAVA_COMMANDS: &str = "OK COMMANDS: help clear getdest getkeys getnick inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick show showprops start status stop verify visit zap";
const I2PD_COMMANDS: &str = "OK COMMANDS: clear getdest getkeys getnick help inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick settunneltype start status stop zap";

fn fresh_status(nick: &str) -> String {
    format!(
        "NICKNAME: {nick} STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost"
    )
}

#[tokio::test]
async fn help_and_unknown_commands() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    c.expect("help", JAVA_COMMANDS).await;
    c.expect("HELP", JAVA_COMMANDS).await;
    c.expect(
        "help setnick",
        "OK setnick nickname * Create a new nickname.",
    )
    .await;
    c.expect(
        "help SETKEYS",
        "OK setkeys BASE64_keypair * Sets the keypair for the current nickname.",
    )
    .await;
    c.expect("help nosuch", "ERROR No such command").await;
    c.expect("frobnicate", "ERROR UNKNOWN COMMAND! Try help")
        .await;
    c.expect("quit", "OK Bye!").await;
    c.expect_eof().await;
    server.stop().await;

    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    c.expect("help", I2PD_COMMANDS).await;
    c.expect(
        "help setnick",
        "OK setnick <NICKNAME> - Creates a new nickname.",
    )
    .await;
    c.expect("help nosuch", "ERROR No such command").await;
    c.expect("frobnicate", "ERROR unknown command").await;
    c.expect("quit", "OK Bye!").await;
    c.expect_eof().await;
    server.stop().await;
}

/// Every command that needs a selected nickname, sent without one.
#[tokio::test]
async fn commands_without_nickname() {
    for dialect in [Dialect::Java, Dialect::I2pd] {
        let server = start_server(dialect).await;
        let mut c = server.client().await;
        for cmd in [
            "show",
            "showprops",
            "getdest",
            "clear",
            "stop",
            "inhost 127.0.0.1",
            "inport 1234",
            "outhost 127.0.0.1",
            "outport 1234",
            "quiet true",
            "option a=b",
            "newkeys",
            "setkeys AAAA",
            "getnick nosuch",
            "status nosuch",
            "status",
        ] {
            c.expect(cmd, "ERROR no nickname has been set").await;
        }
        let (getkeys, start) = match dialect {
            Dialect::Java => (
                "ERROR no public key has been set",
                "ERROR tunnel settings incomplete",
            ),
            Dialect::I2pd => ("ERROR keys are not set", "ERROR no nickname has been set"),
        };
        c.expect("getkeys", getkeys).await;
        c.expect("start", start).await;
        c.expect("ping foo.i2p", "ERROR No local destination").await;
        assert!(c.list().await.is_empty());
        server.stop().await;
    }
}

#[tokio::test]
async fn setters_java() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    c.expect("setnick t1", "OK Nickname set to t1").await;
    c.expect("status t1", &format!("OK DATA {}", fresh_status("t1")))
        .await;
    c.expect("show", &format!("OK {}", fresh_status("t1")))
        .await;
    assert_eq!(c.list().await, vec![fresh_status("t1")]);
    c.expect(
        "showprops",
        "OK PROPERTIES: {inbound.length=3, inbound.lengthVariance=0, inbound.nickname=t1, outbound.length=3, outbound.lengthVariance=0, outbound.nickname=t1}",
    )
    .await;
    c.expect("option a==b", "OK a set to b").await;
    c.expect(
        "option inbound.length=1 x=y",
        "OK inbound.length set to 1, x set to y",
    )
    .await;
    c.expect("option a=b=c", "ERROR too many or no options.")
        .await;
    c.expect("option q=1 =bad", "ERROR too many or no options.")
        .await;
    c.expect("option", "ERROR too many or no options.").await;
    c.expect(
        "showprops",
        "OK PROPERTIES: {a=b, inbound.length=1, inbound.lengthVariance=0, inbound.nickname=t1, outbound.length=3, outbound.lengthVariance=0, outbound.nickname=t1, x=y}",
    )
    .await;
    c.expect("getdest", "ERROR keys not set.").await;
    c.expect("getkeys", "ERROR no public key has been set")
        .await;
    c.expect("start", "ERROR tunnel settings incomplete").await;
    c.expect("inhost 127.0.0.2", "OK inhost set").await;
    c.expect("outhost example", "OK outhost set").await;
    c.expect("inhost", "ERROR empty inhost").await;
    c.expect("outhost", "ERROR empty outhost").await;
    c.expect("inport 12345", "OK inbound port set").await;
    c.expect("outport 65535", "OK outbound port set").await;
    c.expect("inport", "ERROR not a number").await;
    c.expect("quiet TRUE", "OK Quiet set").await;
    c.expect(
        "status t1",
        "OK DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: true INPORT: 12345 INHOST: 127.0.0.2 OUTPORT: 65535 OUTHOST: example",
    )
    .await;
    c.expect("quiet", "OK Quiet set").await;
    assert!(c.cmd("show").await.contains(" QUIET: false "));
    c.expect("start", "ERROR tunnel settings incomplete").await;
    c.expect("settunneltype socks", "OK tunnel type set to SOCKS")
        .await;
    c.expect(
        "status t1",
        "OK DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: 12345 INHOST: 127.0.0.2 OUTPORT: 65535 OUTHOST: example PROXYTYPE: SOCKS",
    )
    .await;
    c.expect(
        "settunneltype HttpProxy",
        "OK tunnel type set to HTTP proxy",
    )
    .await;
    c.expect("settunneltype udp", "OK tunnel type set to UDP")
        .await;
    c.expect(
        "option bob.udp.dest=abc.b32.i2p",
        "OK bob.udp.dest set to abc.b32.i2p",
    )
    .await;
    c.expect(
        "status t1",
        "OK DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: 12345 INHOST: 127.0.0.2 OUTPORT: 65535 OUTHOST: example TUNNELTYPE: UDP UDPDEST: abc.b32.i2p",
    )
    .await;
    c.expect(
        "settunneltype gopher",
        "ERROR unknown tunnel type \"gopher\" (known: tcp, udp, socks, httpproxy)",
    )
    .await;
    c.expect(
        "settunneltype",
        "ERROR no tunnel type given (tcp, udp, socks, httpproxy)",
    )
    .await;
    c.expect("settunneltype tcp", "OK tunnel type set to TCP")
        .await;
    c.expect(
        "status t1",
        "OK DATA NICKNAME: t1 STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: 12345 INHOST: 127.0.0.2 OUTPORT: 65535 OUTHOST: example",
    )
    .await;
    c.expect("visit", "OK ").await;
    c.expect("clear", "OK cleared").await;
    c.expect("show", "ERROR no nickname has been set").await;
    c.expect("status t1", "ERROR no nickname has been set")
        .await;
    assert!(c.list().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn setters_i2pd() {
    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    c.expect("setnick t1", "OK Nickname set to t1").await;
    c.expect("option a=b", "OK option a set to b").await;
    c.expect("option a", "ERROR malformed").await;
    c.expect("getdest", "ERROR keys are not set").await;
    c.expect("getkeys", "ERROR keys are not set").await;
    c.expect("start", "ERROR Keys must be set.").await;
    c.expect("inhost", "ERROR empty inhost").await;
    c.expect("inport", "ERROR empty inport").await;
    c.expect("outport", "ERROR empty outport").await;
    c.expect("inport abc", "ERROR not a number").await;
    c.expect("outport 0", "ERROR port out of range").await;
    c.expect("lookup", "ERROR empty lookup address").await;
    c.expect("lookup nosuch.i2p", "ERROR Address Not found")
        .await;
    c.expect("ping", "ERROR empty ping address").await;
    c.ok_text("newkeys").await;
    c.expect(
        "start",
        "ERROR (inhost):inport or outhost:outport must be set.",
    )
    .await;
    c.expect("showprops", "OK PROPERTIES: {a=b, inbound.length=3, inbound.lengthVariance=0, inbound.nickname=t1, outbound.length=3, outbound.lengthVariance=0, outbound.nickname=t1}").await;
    c.expect("clear", "OK cleared").await;
    server.stop().await;
}

#[tokio::test]
async fn keys_commands() {
    for dialect in [Dialect::Java, Dialect::I2pd] {
        let server = start_server(dialect).await;
        let mut c = server.client().await;
        let dest = c.new_tunnel("k1").await;
        // default newkeys type: DSA_SHA1 with a NULL certificate, like Java BOB
        assert_eq!(dest.len(), 516, "{dest}");
        assert!(dest.ends_with("AAAA"));
        c.expect("getdest", &format!("OK {dest}")).await;
        let keys = c.ok_text("getkeys").await;
        assert_eq!(keys.len(), 884);
        c.expect("verify", "ERROR not in BASE64 format").await;
        c.expect("verify !!!!", "ERROR not in BASE64 format").await;
        c.expect(&format!("verify {dest}"), "OK").await;
        c.expect(&format!("verify {keys}"), "OK").await;

        // an EdDSA key from the i2pd extension, then imported elsewhere with setkeys
        let ed = c.ok_text("newkeys 7").await;
        assert_eq!(ed.len(), 524, "{ed}");
        assert!(ed.ends_with("BQAEAAcAAA=="), "{ed}");
        let ed_keys = c.ok_text("getkeys").await;
        c.expect("setnick k2", "OK Nickname set to k2").await;
        c.expect(&format!("setkeys {ed_keys}"), &format!("OK {ed}"))
            .await;
        c.expect("getdest", &format!("OK {ed}")).await;
        c.expect(&format!("setkeys {keys}"), &format!("OK {dest}"))
            .await;
        let named = c.ok_text("newkeys EdDSA_SHA512_Ed25519 ElGamal").await;
        assert_eq!(named.len(), 524);
        // k1's keys were replaced by the `newkeys 7` above
        c.expect("getnick k1", "OK Nickname set to k1").await;
        c.expect("getdest", &format!("OK {ed}")).await;
        c.expect("getkeys", &format!("OK {ed_keys}")).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn newkeys_default_type_is_configurable() {
    let mut config = test_config(Dialect::I2pd);
    config.newkeys_sig = SigType::Ed25519;
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    let dest = c.new_tunnel("e").await;
    assert_eq!(dest.len(), 524);
    let dsa = c.ok_text("newkeys 0").await;
    assert_eq!(dsa.len(), 516);
    server.stop().await;
}
