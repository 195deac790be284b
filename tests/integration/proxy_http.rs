//! HTTP proxy tunnels (`settunneltype httpproxy`) end to end with real `curl`: a web
//! server published through a quiet BOB server tunnel on the local core, reached
//! through an HTTP proxy tunnel made with BOB commands. The web server answers with
//! the request line and headers it saw, so header handling is checked where it lands.

use std::convert::Infallible;
use std::time::Duration;

use bob_codec::Dialect;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keytools::Destination;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{DEADLINE, within};
use bob_integration_tests::{
    BobClient, TestServer, local_core, start_server, start_server_with, test_config,
};

/// A web server answering `/big` with 1 MiB of a pattern and anything else with
/// `METHOD URI` and one `name: value` line per header it received.
async fn echo_web_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let body = if request.uri().path() == "/big" {
                        big_body()
                    } else {
                        let mut seen =
                            format!("{} {}\n", request.method(), request.uri()).into_bytes();
                        for (name, value) in request.headers() {
                            seen.extend_from_slice(name.as_str().as_bytes());
                            seen.extend_from_slice(b": ");
                            seen.extend_from_slice(value.as_bytes());
                            seen.push(b'\n');
                        }
                        seen
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    port
}

fn big_body() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i % 251) as u8).collect()
}

/// A server with a published site and an HTTP proxy tunnel `px`.
struct Setup {
    server: TestServer,
    bob: BobClient,
    site_b32: String,
    proxy_port: u16,
}

/// Starts the server, the site's quiet server tunnel and the proxy tunnel (after
/// `options`, each an `option` command).
async fn setup(options: &[&str]) -> Setup {
    let server = start_server(Dialect::Java).await;
    let mut bob = server.client().await;
    let web = echo_web_server().await;
    let site = bob.quiet_server_tunnel("site", web).await;
    let site_b32 = Destination::from_base64(site.trim())
        .expect("getdest is a destination")
        .b32();
    bob.new_tunnel("px").await;
    bob.expect(
        "settunneltype httpproxy",
        "OK tunnel type set to HTTP proxy",
    )
    .await;
    for option in options {
        let reply = bob.cmd(&format!("option {option}")).await;
        assert!(reply.starts_with("OK"), "{reply}");
    }
    let proxy_port = bob.start_inbound().await;
    bob.wait_status("px", "RUNNING: true").await;
    bob.wait_status("site", "RUNNING: true").await;
    Setup {
        server,
        bob,
        site_b32,
        proxy_port,
    }
}

impl Setup {
    fn proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }
}

/// Runs curl with `args`; the status (the response's, or the proxy's answer to a
/// failed CONNECT) and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["-s", "-S", "--max-time", "20", "-o", "-"])
        .args(["-w", "\n%{http_code} %{http_connect}"])
        .args(args)
        .kill_on_drop(true);
    let output = within("curl", command.output())
        .await
        .expect("curl runs (scripts/test.sh installs it)");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, codes) = out.rsplit_once('\n').expect("curl's status line");
    let code = codes
        .split_whitespace()
        .map(|code| code.parse().unwrap_or(0))
        .find(|&code| code != 0)
        .unwrap_or(0);
    (code, body.to_owned())
}

/// The value of `name=` in a `stats` reply.
fn counter(stats: &str, name: &str) -> u64 {
    stats
        .split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {stats}"))
}

/// Polls `stats px` until it counts `failed` failures (a connection closed by the
/// server is counted just after the close the client sees).
async fn wait_failed(bob: &mut BobClient, failed: u64) {
    within("stats px failed count", async {
        loop {
            let stats = bob.cmd("stats px").await;
            let now = counter(&stats, "failed");
            assert!(now <= failed, "{stats}");
            if now == failed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn status_names_the_proxy_type() {
    let mut setup = setup(&[]).await;
    let line = setup.bob.cmd("status px").await;
    assert!(line.contains("PROXYTYPE: HTTPPROXY"), "{line}");
    let line = setup.bob.cmd("status site").await;
    assert!(!line.contains("PROXYTYPE"), "{line}");
    setup.server.stop().await;
}

#[tokio::test]
async fn get_strips_identifying_headers_and_goes_out_in_origin_form() {
    let setup = setup(&[]).await;
    let url = format!("http://{}/page?q=1", setup.site_b32);
    let (code, body) = curl(&[
        "-x",
        &setup.proxy(),
        "-A",
        "secret-agent/1.0",
        "-H",
        "Referer: http://me.i2p/",
        "-H",
        "Accept-Language: de-CH",
        "-H",
        "X-Forwarded-For: 10.1.2.3",
        "-H",
        "Via: 1.1 corp-proxy",
        "-H",
        "Cookie: a=b",
        &url,
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("GET /page?q=1"), "{body}");
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&"user-agent: MYOB/6.66 (AN/ON)"), "{body}");
    assert!(headers.contains(&"cookie: a=b"), "{body}");
    assert!(
        headers.contains(&format!("host: {}", setup.site_b32).as_str()),
        "{body}"
    );
    for gone in [
        "referer",
        "accept-language",
        "x-forwarded-for",
        "via",
        "proxy-connection",
    ] {
        assert!(
            !headers.iter().any(|h| h.starts_with(&format!("{gone}:"))),
            "{gone} was forwarded: {body}"
        );
    }
    assert!(!body.contains("secret-agent"), "{body}");
    setup.server.stop().await;
}

#[tokio::test]
async fn posts_and_kept_alive_connections() {
    let setup = setup(&[]).await;
    let proxy = setup.proxy();
    let url = format!("http://{}/form", setup.site_b32);
    let (code, body) = curl(&["-x", &proxy, "--data-binary", "a=1&b=2", &url]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("POST /form\n"), "{body}");
    assert!(body.contains("content-length: 7\n"), "{body}");
    // two URLs in one curl run share one connection to the proxy: both answers
    // arrive, and the tunnel has accepted two connections in all
    let first = format!("http://{}/one", setup.site_b32);
    let second = format!("http://{}/two", setup.site_b32);
    let (code, body) = curl(&["-x", &proxy, &first, &second]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("GET /one\n"), "{body}");
    assert!(body.contains("GET /two\n"), "{body}");
    let mut setup = setup;
    let stats = setup.bob.cmd("stats px").await;
    assert_eq!(counter(&stats, "accepted"), 2, "{stats}");
    setup.server.stop().await;
}

#[tokio::test]
async fn keepheaders_option_keeps_them() {
    let setup = setup(&["bob.http.keepheaders=true"]).await;
    let url = format!("http://{}/", setup.site_b32);
    let (code, body) = curl(&[
        "-x",
        &setup.proxy(),
        "-A",
        "secret-agent/1.0",
        "-H",
        "Referer: http://me.i2p/",
        &url,
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("user-agent: secret-agent/1.0"), "{body}");
    assert!(body.contains("referer: http://me.i2p/"), "{body}");
    setup.server.stop().await;
}

#[tokio::test]
async fn a_bad_keepheaders_value_is_refused_at_start() {
    let server = start_server(Dialect::Java).await;
    let mut bob = server.client().await;
    bob.new_tunnel("px").await;
    bob.expect(
        "settunneltype httpproxy",
        "OK tunnel type set to HTTP proxy",
    )
    .await;
    let reply = bob.cmd("option bob.http.keepheaders=maybe").await;
    assert!(reply.starts_with("OK"), "{reply}");
    bob.expect("inport 4", "OK inbound port set").await;
    assert_eq!(
        bob.cmd("start").await,
        "ERROR starting tunnel: bob.http.keepheaders must be true or false, not \"maybe\"\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn connect_tunnels_raw_bytes() {
    let setup = setup(&[]).await;
    let url = format!("http://{}/in-tunnel", setup.site_b32);
    let (code, body) = curl(&["-p", "-x", &setup.proxy(), "-A", "inside/1", &url]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("GET /in-tunnel\n"), "{body}");
    // the proxy cannot see into a CONNECT tunnel: the client's own headers arrive
    assert!(body.contains("user-agent: inside/1"), "{body}");
    setup.server.stop().await;
}

#[tokio::test]
async fn a_mebibyte_through_get_and_connect() {
    let mut setup = setup(&[]).await;
    let url = format!("http://{}/big", setup.site_b32);
    for connect in [false, true] {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-s", "-S", "--max-time", "30", "-x", &setup.proxy()])
            .args(connect.then_some("-p"))
            .arg(&url)
            .kill_on_drop(true);
        let output = within("curl", command.output()).await.expect("curl runs");
        assert!(output.status.success(), "connect={connect}: {output:?}");
        assert!(
            output.stdout == big_body(),
            "connect={connect}: body differs ({} bytes)",
            output.stdout.len()
        );
    }
    let stats = setup.bob.cmd("stats px").await;
    assert!(stats.contains(" failed=0 "), "{stats}");
    assert!(counter(&stats, "bytes_in") >= 2 << 20, "{stats}");
    setup.server.stop().await;
}

#[tokio::test]
async fn failures_are_error_pages() {
    let setup = setup(&[]).await;
    let proxy = setup.proxy();
    let (code, body) = curl(&["-x", &proxy, "http://nobody-knows.i2p/"]).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("nobody-knows.i2p"), "{body}");

    let offline = crate::support::keys().destination().to_base64();
    let url = format!("http://offline.i2p/?i2paddresshelper={offline}");
    let (code, body) = curl(&["-x", &proxy, &url]).await;
    assert_eq!(code, 504, "unreachable destination: {body}");

    let (code, body) = curl(&["-x", &proxy, "http://example.com/"]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("example.com"), "{body}");
    let (code, _) = curl(&["-p", "-x", &proxy, "http://example.com/"]).await;
    assert_eq!(code, 403, "CONNECT to a clearnet host");

    let direct = format!("http://127.0.0.1:{}/", setup.proxy_port);
    let (code, body) = curl(&[&direct]).await;
    assert_eq!(code, 400, "origin-form: {body}");

    let big = format!("X-Big: {}", "a".repeat(70 * 1024));
    let (code, _) = curl(&["-x", &proxy, "-H", &big, "http://x.i2p/"]).await;
    assert_eq!(code, 431, "oversized head");
    // every error page and hyper's own 431 count as failures
    let mut setup = setup;
    wait_failed(&mut setup.bob, 6).await;
    setup.server.stop().await;
}

#[tokio::test]
async fn the_address_helper_serves_one_request() {
    let setup = setup(&[]).await;
    let proxy = setup.proxy();
    let b32 = setup.site_b32.trim_end_matches(".b32.i2p").to_owned();
    let url = format!("http://named.i2p/x?a=1&i2paddresshelper={b32}&b=2");
    let (code, body) = curl(&["-x", &proxy, &url]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("GET /x?a=1&b=2\n"), "{body}");
    assert!(body.contains("host: named.i2p\n"), "{body}");
    let (code, _) = curl(&["-x", &proxy, "http://named.i2p/x"]).await;
    assert_eq!(code, 404, "the helper is not remembered");
    setup.server.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_closed() {
    let mut config = test_config(Dialect::Java);
    config.tunnel_limits.first_line_timeout = Duration::from_millis(500);
    let server = start_server_with(config, local_core()).await;
    let mut bob = server.client().await;
    bob.new_tunnel("px").await;
    bob.expect(
        "settunneltype httpproxy",
        "OK tunnel type set to HTTP proxy",
    )
    .await;
    let port = bob.start_inbound().await;
    bob.wait_status("px", "RUNNING: true").await;
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    socket
        .write_all(b"GET http://x.i2p/ HTTP/1.1\r\nHost: x.i2p\r\n")
        .await
        .expect("write");
    // the tunnel's first-line timeout bounds the request head
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "an unfinished head kept the connection open"
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    wait_failed(&mut bob, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn stop_closes_the_listener() {
    let mut setup = setup(&[]).await;
    setup
        .bob
        .expect("getnick px", "OK Nickname set to px")
        .await;
    let reply = setup.bob.cmd("stop").await;
    assert!(reply.starts_with("OK"), "{reply}");
    setup.bob.wait_status("px", "RUNNING: false").await;
    TcpListener::bind(("127.0.0.1", setup.proxy_port))
        .await
        .expect("the proxy's port is free again after stop");
    setup.server.stop().await;
}

/// An upstream HTTP proxy for the outproxy test: answers absolute-form requests with
/// `OUTPROXY METHOD URI` and the headers it saw; accepts `CONNECT` and then serves the
/// echo web server's answers on the tunnelled connection.
async fn fake_outproxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|mut request: Request<Incoming>| async move {
                    if request.method() == hyper::Method::CONNECT {
                        let upgrade = hyper::upgrade::on(&mut request);
                        tokio::spawn(async move {
                            if let Ok(upgraded) = upgrade.await {
                                let _ = http1::Builder::new()
                                    .serve_connection(upgraded, service_fn(echo_inside))
                                    .await;
                            }
                        });
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())));
                    }
                    let mut seen =
                        format!("OUTPROXY {} {}\n", request.method(), request.uri()).into_bytes();
                    for (name, value) in request.headers() {
                        seen.extend_from_slice(name.as_str().as_bytes());
                        seen.extend_from_slice(b": ");
                        seen.extend_from_slice(value.as_bytes());
                        seen.push(b'\n');
                    }
                    Ok(Response::new(Full::new(Bytes::from(seen))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

/// What the outproxy serves inside a CONNECT tunnel.
async fn echo_inside(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = format!("INSIDE {} {}\n", request.method(), request.uri());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::test]
async fn clearnet_hosts_go_to_the_outproxy_when_set() {
    let outproxy = fake_outproxy().await;
    let server = start_server(Dialect::Java).await;
    let mut bob = server.client().await;
    bob.new_tunnel("px").await;
    bob.expect(
        "settunneltype httpproxy",
        "OK tunnel type set to HTTP proxy",
    )
    .await;
    bob.expect("outhost 127.0.0.1", "OK outhost set").await;
    bob.expect(&format!("outport {outproxy}"), "OK outbound port set")
        .await;
    let port = bob.start_inbound().await;
    bob.wait_status("px", "RUNNING: true").await;
    let proxy = format!("http://127.0.0.1:{port}");

    let (code, body) = curl(&[
        "-x",
        &proxy,
        "-A",
        "secret-agent/1.0",
        "-H",
        "Referer: http://me.example/",
        "http://example.com/page",
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("OUTPROXY GET http://example.com/page\n"),
        "absolute form to the outproxy: {body}"
    );
    assert!(body.contains("user-agent: MYOB/6.66 (AN/ON)"), "{body}");
    assert!(!body.contains("referer"), "{body}");

    let (code, body) = curl(&["-p", "-x", &proxy, "http://example.com/tls"]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "INSIDE GET /tls\n");
    server.stop().await;
}
