//! Issue 13 hardening: caps on every value and on the registry, replies under
//! back-pressure, over-long first lines answered at once, limits the runtime supports,
//! failed accept loops.

use std::time::Duration;

use bob_codec::Dialect;
use bob_integration_tests::{local_core, start_server, start_server_with, test_config, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (or resets) the connection.
async fn read_to_close(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got).await;
    got
}

#[tokio::test]
async fn over_long_first_line_without_newline_is_refused_at_once() {
    let mut config = test_config(Dialect::Java);
    // far beyond the test's deadline: only an immediate answer passes
    config.tunnel_limits.first_line_timeout = Duration::from_secs(3600);
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    c.new_tunnel("cli").await;
    let inport = c.start_inbound().await;

    // 4097 bytes, one over the limit, and no newline: the answer cannot wait for more
    let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    app.write_all(&[b'a'; 4097]).await.unwrap();
    let got = within("error line", read_to_close(&mut app)).await;
    assert_eq!(String::from_utf8_lossy(&got), "ERROR line too long\n");

    // 4096 bytes plus `\r`s still wait for the newline (the line itself fits)
    let mut app = TcpStream::connect(("127.0.0.1", inport)).await.unwrap();
    let mut fits = vec![b'a'; 4096];
    fits.extend_from_slice(b"\r\r");
    app.write_all(&fits).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), app.read(&mut byte)).await;
    assert!(waited.is_err(), "a line that fits must not be refused");
    server.stop().await;
}

#[tokio::test]
async fn over_long_control_line_without_newline_is_refused_at_once() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    // one byte over the limit and no newline
    c.send_raw(&vec![b'a'; 16 * 1024 + 1]).await;
    assert_eq!(
        within("error line", c.read_line()).await,
        "ERROR line too long (limit 16384 bytes)\n"
    );
    // the rest of that line is discarded, then the connection goes on
    c.send_raw(b"aaaa\n").await;
    assert!(c.list().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn caps_are_enforced_at_the_command_and_nothing_changes() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    let long_nick = "n".repeat(256);
    c.expect(
        &format!("setnick {long_nick}"),
        "ERROR nickname is longer than 255 bytes",
    )
    .await;
    assert!(c.list().await.is_empty());
    let max_nick = "n".repeat(255);
    c.ok(&format!("setnick {max_nick}")).await;

    let show_before = c.line("show").await;
    c.expect(
        &format!("inhost {}", "h".repeat(256)),
        "ERROR host is longer than 255 bytes",
    )
    .await;
    c.expect(
        &format!("outhost {}", "h".repeat(256)),
        "ERROR host is longer than 255 bytes",
    )
    .await;
    assert_eq!(c.line("show").await, show_before);

    let props_before = c.line("showprops").await;
    c.expect(
        &format!("option k={}", "v".repeat(4097)),
        "ERROR option value is longer than 4096 bytes",
    )
    .await;
    c.expect(
        &format!("option ok=1 {}=v", "k".repeat(256)),
        "ERROR option key is longer than 255 bytes",
    )
    .await;
    assert_eq!(c.line("showprops").await, props_before);
    server.stop().await;
}

#[tokio::test]
async fn the_option_limit_message_matches_what_fits() {
    let server = start_server(Dialect::Java).await;
    let mut c = server.client().await;
    c.ok("setnick many").await;
    // every one of the documented 256 user options fits, besides the defaults
    for chunk in (0..256).collect::<Vec<_>>().chunks(64) {
        let pairs: Vec<String> = chunk.iter().map(|i| format!("user.{i}=v")).collect();
        c.ok(&format!("option {}", pairs.join(" "))).await;
    }
    c.expect("option user.256=v", "ERROR too many options (limit 256)")
        .await;
    // overwriting a key the tunnel holds never counts against the limit
    c.ok("option user.0=w").await;
    server.stop().await;
}

#[tokio::test]
async fn the_registry_byte_cap_refuses_and_changes_nothing() {
    let mut config = test_config(Dialect::Java);
    // room for two small tunnels (each counts 1 KiB plus its names and options)
    config.max_registry_bytes = 4 * 1024;
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    c.ok("setnick a").await;
    let props_before = c.line("showprops").await;
    let big = "v".repeat(4000);
    c.expect(
        &format!("option big={big}"),
        "ERROR registry full (limit 4096 bytes)",
    )
    .await;
    assert_eq!(c.line("showprops").await, props_before);
    c.expect(&format!("inhost {}", "h".repeat(255)), "OK inhost set")
        .await;
    c.ok("setnick b").await;
    c.expect("setnick c", "ERROR registry full (limit 4096 bytes)")
        .await;
    assert_eq!(c.list().await.len(), 2);
    // clearing gives the bytes back
    c.ok("getnick b").await;
    c.ok("clear").await;
    c.ok("setnick c").await;
    server.stop().await;
}

/// Creates `n` tunnels with the longest nicknames and hosts (a large `list`).
async fn fill(c: &mut bob_integration_tests::BobClient, n: usize) {
    let host = "h".repeat(255);
    for i in 0..n {
        let nick = format!("{i:04}{}", "n".repeat(251));
        c.ok(&format!("setnick {nick}")).await;
        c.ok(&format!("inhost {host}")).await;
        c.ok(&format!("outhost {host}")).await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_stalls_only_itself_and_is_closed() {
    let mut config = test_config(Dialect::Java);
    config.control_write_timeout = Duration::from_millis(500);
    let server = start_server_with(config, local_core()).await;
    let mut c = server.client().await;
    fill(&mut c, 64).await;

    // pipelined `list`s, never a reply read
    let mut hog = TcpStream::connect(server.addr).await.unwrap();
    let (mut hog_read, mut hog_write) = hog.split();
    let mut greeting = [0u8; 1];
    hog_read.read_exact(&mut greeting).await.unwrap();
    let pushed = tokio::select! {
        pushed = async {
            let burst = b"list\n".repeat(4096);
            let mut pushed = 0usize;
            while hog_write.write_all(&burst).await.is_ok() {
                pushed += burst.len();
            }
            pushed
        } => pushed,
        () = tokio::time::sleep(Duration::from_secs(5)) => panic!("the server never gave up on the reader"),
    };
    // the server stopped reading commands while its replies were backed up
    assert!(pushed < 64 << 20, "server took {pushed} bytes of commands");
    // everyone else was served meanwhile
    assert_eq!(c.list().await.len(), 64);
    // and the hog was closed after the write timeout
    let mut rest = Vec::new();
    let _ = within("hog closed", hog_read.read_to_end(&mut rest)).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_reader_that_never_reads() {
    let server = start_server(Dialect::Java).await; // default 30 s write timeout
    let mut c = server.client().await;
    fill(&mut c, 64).await;
    let mut hog = TcpStream::connect(server.addr).await.unwrap();
    let burst = b"list\n".repeat(4096);
    // fill the socket buffers both ways until the server no longer reads
    loop {
        let wrote = tokio::time::timeout(Duration::from_millis(500), hog.write_all(&burst)).await;
        if wrote.is_err() {
            break;
        }
    }
    // far below the write timeout
    bob_integration_tests::within_for(Duration::from_secs(5), "shutdown", server.stop()).await;
    drop(hog);
}
