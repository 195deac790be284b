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
