//! Bad input is answered with the documented `ERROR` and the connection stays usable.

use bob_codec::Dialect;
use bob_integration_tests::start_server;

#[tokio::test]
async fn framing_errors_keep_the_connection() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;

    let mut long = vec![b'a'; 16 * 1024 + 1];
    long.push(b'\n');
    c.send_raw(&long).await;
    assert_eq!(
        c.read_line().await,
        "ERROR line too long (limit 16384 bytes)\n"
    );
    assert!(c.list().await.is_empty());

    // a very long line in many pieces, then a good one in the same write
    let mut huge = vec![b'x'; 200_000];
    huge.extend_from_slice(b"\nsetnick after\n");
    c.send_raw(&huge).await;
    assert_eq!(
        c.read_line().await,
        "ERROR line too long (limit 16384 bytes)\n"
    );
    assert_eq!(c.read_line().await, "OK Nickname set to after\n");

    c.send_raw(b"setnick \xff\xfe\n").await;
    assert_eq!(c.read_line().await, "ERROR invalid UTF-8 in line\n");
    c.expect("show", &format!("OK {}", "NICKNAME: after STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost")).await;

    c.send_raw(b"\0\n").await;
    assert_eq!(c.read_line().await, "ERROR UNKNOWN COMMAND! Try help\n");
    c.send_raw(b"set\0nick a\n").await;
    assert_eq!(c.read_line().await, "ERROR UNKNOWN COMMAND! Try help\n");
    c.send_raw(b"setnick a\0b\n").await;
    assert_eq!(
        c.read_line().await,
        "ERROR control characters are not allowed in a request\n"
    );
    c.send_raw(b"inhost \x01\x02\n").await;
    assert_eq!(
        c.read_line().await,
        "ERROR control characters are not allowed in a request\n"
    );
    assert_eq!(c.list().await.len(), 1, "no entry made from garbage");
    server.stop().await;
}

#[tokio::test]
async fn blank_lines_crlf_and_pipelining() {
    let server = start_server(Dialect::I2pd).await;
    let mut c = server.client().await;
    // blank lines are ignored (no reply) in both dialects
    c.send_raw(b"\n\r\n   \n\t\nsetnick crlf\r\n").await;
    assert_eq!(c.read_line().await, "OK Nickname set to crlf\n");
    // four commands in one segment, answered in order
    c.send_raw(b"inport 1234\noutport 99999\nquiet true\nstatus crlf\n")
        .await;
    assert_eq!(c.read_line().await, "OK inbound port set\n");
    assert_eq!(c.read_line().await, "ERROR port out of range\n");
    assert_eq!(c.read_line().await, "OK Quiet set\n");
    assert_eq!(
        c.read_line().await,
        "OK DATA NICKNAME: crlf STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: true INPORT: 1234 INHOST: localhost OUTPORT: not_set OUTHOST: localhost\n"
    );
    // commands are case-insensitive, operands keep their case
    c.expect("SetNick MiXeD", "OK Nickname set to MiXeD").await;
    server.stop().await;
}

#[tokio::test]
async fn bad_ports_keep_the_old_port() {
    for dialect in [Dialect::Java, Dialect::I2pd] {
        let server = start_server(dialect).await;
        let mut c = server.client().await;
        c.expect("setnick p", "OK Nickname set to p").await;
        c.expect("inport 1", "OK inbound port set").await;
        c.expect("outport 2", "OK outbound port set").await;
        for (arg, reply) in [
            ("0", "ERROR port out of range"),
            ("70000", "ERROR port out of range"),
            ("65536", "ERROR port out of range"),
            ("abc", "ERROR not a number"),
            ("80x", "ERROR not a number"),
            ("-1", "ERROR not a number"),
        ] {
            c.expect(&format!("inport {arg}"), reply).await;
            c.expect(&format!("outport {arg}"), reply).await;
        }
        let status = c.cmd("show").await;
        assert!(
            status.contains(" INPORT: 1 ") && status.contains(" OUTPORT: 2 "),
            "{status}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_keys_and_types() {
    for dialect in [Dialect::Java, Dialect::I2pd] {
        let server = start_server(dialect).await;
        let mut c = server.client().await;
        c.expect("setnick k", "OK Nickname set to k").await;
        let bad = match dialect {
            Dialect::Java => "ERROR not in BASE64 format",
            Dialect::I2pd => "ERROR invalid keys",
        };
        c.expect("setkeys", bad).await;
        c.expect("setkeys !!!!not-base64", bad).await;
        c.expect("setkeys AAAA", bad).await;
        let dest = c.ok_text("newkeys").await;
        // the public destination alone is not a key blob
        c.expect(&format!("setkeys {dest}"), bad).await;
        for t in ["4", "5", "6", "8", "12", "13", "-1", "99999999999", "abc"] {
            c.expect(
                &format!("newkeys {t}"),
                &format!("ERROR unsupported signature type {t}"),
            )
            .await;
        }
        c.expect("newkeys 7 1", "ERROR unsupported crypto type 1")
            .await;
        // the failed attempts left the keys alone
        c.expect("getdest", &format!("OK {dest}")).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn registry_and_options_are_bounded() {
    use bob_integration_tests::{local_core, start_server_with, test_config};
    let mut config = test_config(Dialect::Java);
    config.max_tunnels = 2;
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    c.expect("setnick a", "OK Nickname set to a").await;
    c.expect("setnick b", "OK Nickname set to b").await;
    c.expect("setnick c", "ERROR too many tunnels (limit 2)")
        .await;
    // replacing an existing name is still fine, and b stays selected after the refusal
    c.expect("show", &format!("OK {}", "NICKNAME: b STARTING: false RUNNING: false STOPPING: false KEYS: false QUIET: false INPORT: not_set INHOST: localhost OUTPORT: not_set OUTHOST: localhost")).await;
    c.expect("setnick a", "OK Nickname set to a").await;

    // 6 properties to begin with (4 defaults, 2 nicknames); room for the 256 user
    // options the limit names
    let mut batch = String::new();
    for i in 0..256 {
        batch.push_str(&format!("option k{i}=v\n"));
    }
    c.send_raw(batch.as_bytes()).await;
    for i in 0..256 {
        assert_eq!(c.read_line().await, format!("OK k{i} set to v\n"));
    }
    c.expect("option one=more", "ERROR too many options (limit 256)")
        .await;
    c.expect("option k0=changed", "OK k0 set to changed").await;
    server.stop().await;
}
