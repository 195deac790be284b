use super::*;

fn b64_destination() -> Destination {
    keytools::PrivateKeys::generate(keytools::SigType::Ed25519, keytools::CryptoType::ElGamal)
        .expect("keys generate")
        .destination()
        .clone()
}

#[test]
fn options_give_settings() {
    assert_eq!(HttpSettings::from_option(None), Ok(HttpSettings::default()));
    assert_eq!(
        HttpSettings::from_option(Some("TRUE")),
        Ok(HttpSettings { keep_headers: true })
    );
    assert_eq!(
        HttpSettings::from_option(Some("false")),
        Ok(HttpSettings::default())
    );
    let err = HttpSettings::from_option(Some("yes")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bob.http.keepheaders must be true or false, not \"yes\""
    );
    assert_eq!(
        Refusal::Misconfigured(err.to_string()).status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[test]
fn the_helper_replaces_names_only() {
    let dest = b64_destination();
    let helped = Some(Target::Destination(dest.clone()));
    let name = Target::Name("site.i2p".to_owned());
    assert_eq!(
        with_helper(name.clone(), helped.clone()),
        Target::Destination(dest.clone())
    );
    assert_eq!(with_helper(name.clone(), None), name);
    let b32 = Target::Name(format!("{}.b32.i2p", "a".repeat(52)));
    assert_eq!(with_helper(b32.clone(), helped.clone()), b32);
    let full = Target::Destination(b64_destination());
    assert_eq!(with_helper(full.clone(), helped), full);
}

#[test]
fn the_address_helper_is_split_off() {
    assert_eq!(split_helper(None), (None, String::new()));
    assert_eq!(split_helper(Some("a=1&b=2")), (None, "a=1&b=2".to_owned()));
    assert_eq!(
        split_helper(Some("a=1&i2paddresshelper=abc%7E&b=2&I2PAddressHelper=x")),
        (Some("abc~".to_owned()), "a=1&b=2".to_owned())
    );
    assert_eq!(
        split_helper(Some("i2paddresshelper=xyz")),
        (Some("xyz".to_owned()), String::new())
    );
}

#[test]
fn helper_values() {
    let b32 = "b".repeat(52);
    assert_eq!(
        helper_target(&b32),
        Ok(Target::Name(format!("{b32}.b32.i2p")))
    );
    assert_eq!(
        helper_target(&format!("{}.B32.I2P", b32.to_uppercase())),
        Ok(Target::Name(format!("{b32}.b32.i2p")))
    );
    let dest = b64_destination();
    assert_eq!(
        helper_target(&dest.to_base64()),
        Ok(Target::Destination(dest))
    );
    let err = helper_target("nonsense").unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("i2paddresshelper"), "{err}");
}

#[test]
fn request_headers_are_cleaned() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("connection", "keep-alive, x-private"),
        ("x-private", "secret"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic eDp5"),
        ("keep-alive", "300"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("user-agent", "curl/7.88"),
        ("referer", "http://other.i2p/"),
        ("accept-language", "de-CH"),
        ("x-forwarded-for", "10.0.0.1"),
        ("via", "1.1 squid"),
        ("sec-ch-ua-platform", "Linux"),
        ("accept", "*/*"),
        ("cookie", "a=b"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    let mut kept = headers.clone();
    clean_request_headers(&mut headers, false);
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "cookie", "user-agent"]);
    assert_eq!(headers[header::USER_AGENT], USER_AGENT);

    clean_request_headers(&mut kept, true);
    let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "accept-language",
            "cookie",
            "referer",
            "sec-ch-ua-platform",
            "user-agent",
            "via",
            "x-forwarded-for"
        ]
    );
    assert_eq!(kept[header::USER_AGENT], "curl/7.88");
}

#[test]
fn pages_escape_and_carry_the_status() {
    let refusal = Refusal::NotFound("<script>.i2p".to_owned());
    let page = refusal.page();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        Refusal::Timeout("x.i2p".to_owned()).status(),
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        Refusal::Clearnet("example.com".to_owned()).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        escape_html("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}

/// End to end on the local core with real `curl`: a web server published through a
/// quiet BOB server tunnel, the proxy's handler on a listener of its own.
mod curl {
    use std::process::Output;
    use std::time::Duration;

    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::backend::local::LocalCore;
    use crate::backend::{Session, StreamingCore};
    use crate::tunnel::proxy::{Protocol, ProxySettings};
    use crate::tunnel::{
        Endpoint, RunningTunnel, SessionSlot, SlotState, TunnelContext, TunnelLimits, TunnelSpec,
        TunnelStats,
    };

    /// How long any one step may take before the test fails.
    const DEADLINE: Duration = Duration::from_secs(30);

    fn keys() -> keytools::PrivateKeys {
        keytools::PrivateKeys::generate(keytools::SigType::Ed25519, keytools::CryptoType::ElGamal)
            .expect("keys generate")
    }

    fn local(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    /// A web server that answers `/big` with 1 MiB of a pattern and anything else
    /// with what it saw: `METHOD URI` and one `name: value` line per header.
    async fn echo_web_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
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
                    let _ = server::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        port
    }

    fn big_body() -> Vec<u8> {
        (0..1 << 20).map(|i: u32| (i % 251) as u8).collect()
    }

    /// The web server's tunnel, the proxy's listener, and what the test looks at.
    struct Setup {
        core: Arc<dyn StreamingCore>,
        _site: RunningTunnel,
        site_b32: String,
        proxy_port: u16,
        stats: Arc<TunnelStats>,
        cancel: CancellationToken,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    async fn setup(options: &[(&str, &str)], limits: TunnelLimits) -> Setup {
        let core: Arc<dyn StreamingCore> = Arc::new(LocalCore::new());
        let web = echo_web_server().await;
        let site = RunningTunnel::start(
            core.clone(),
            TunnelSpec {
                nickname: "site".to_owned(),
                keys: keys(),
                options: Vec::new(),
                inbound: None,
                outbound: Some(local(web)),
                quiet: true,
            },
            limits.clone(),
        )
        .await
        .expect("site tunnel starts");
        let site_b32 = site.destination().b32();
        let session: Arc<dyn Session> = core
            .open_session(keys(), Vec::new())
            .await
            .expect("proxy session opens");
        let (_ready, slot) = tokio::sync::watch::channel(SlotState::Ready(session));
        let cancel = CancellationToken::new();
        let stats = Arc::new(TunnelStats::default());
        let context = TunnelContext {
            session: SessionSlot(slot),
            limits,
            stats: Arc::clone(&stats),
            accepting: cancel.child_token(),
            cancel: cancel.clone(),
            tracker: TaskTracker::new(),
        };
        let settings = ProxySettings {
            outproxy: None,
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = listener.local_addr().unwrap().port();
        tokio::spawn(crate::tunnel::proxy::accept_loop(
            listener,
            context,
            Protocol::Http,
            Arc::new(settings),
        ));
        Setup {
            core,
            _site: site,
            site_b32,
            proxy_port,
            stats,
            cancel,
        }
    }

    /// Runs curl with `args` (after `-s -S --max-time`), returning status code and body.
    async fn curl(args: &[&str]) -> (u16, Vec<u8>) {
        let mut command = tokio::process::Command::new("curl");
        command
            .args([
                "-s",
                "-S",
                "--max-time",
                "20",
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{http_connect}",
            ])
            .args(args)
            .kill_on_drop(true);
        let output: Output = tokio::time::timeout(DEADLINE, command.output())
            .await
            .expect("curl finishes")
            .expect("curl runs (is it installed?)");
        let mut out = output.stdout;
        let newline = out.iter().rposition(|&b| b == b'\n').expect("status line");
        // the response's status, or the proxy's answer to a CONNECT that failed
        let codes: Vec<u16> = String::from_utf8_lossy(&out[newline + 1..])
            .split_whitespace()
            .map(|code| code.parse().unwrap_or(0))
            .collect();
        let code = codes.iter().copied().find(|&c| c != 0).unwrap_or(0);
        out.truncate(newline);
        (code, out)
    }

    fn proxy_arg(setup: &Setup) -> String {
        format!("http://127.0.0.1:{}", setup.proxy_port)
    }

    fn text(body: &[u8]) -> String {
        String::from_utf8_lossy(body).into_owned()
    }

    #[tokio::test]
    async fn get_goes_out_in_origin_form_without_identifying_headers() {
        let setup = setup(&[], TunnelLimits::default()).await;
        let url = format!("http://{}/path?q=1", setup.site_b32);
        let proxy = proxy_arg(&setup);
        let (code, body) = curl(&[
            "-x",
            &proxy,
            "-A",
            "secret-agent/1.0",
            "-H",
            "Referer: http://me.i2p/",
            "-H",
            "Accept-Language: de-CH",
            "-H",
            "X-Forwarded-For: 10.1.2.3",
            "-H",
            "Cookie: a=b",
            &url,
        ])
        .await;
        let body = text(&body);
        assert_eq!(code, 200, "{body}");
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("GET /path?q=1"));
        let headers: Vec<&str> = lines.collect();
        assert!(headers.contains(&"user-agent: MYOB/6.66 (AN/ON)"), "{body}");
        assert!(headers.contains(&"cookie: a=b"), "{body}");
        assert!(headers.contains(&"connection: close"), "{body}");
        assert!(
            headers.contains(&format!("host: {}", setup.site_b32).as_str()),
            "{body}"
        );
        for gone in [
            "referer",
            "accept-language",
            "x-forwarded-for",
            "proxy-connection",
        ] {
            assert!(
                !headers.iter().any(|h| h.starts_with(&format!("{gone}:"))),
                "{gone} was forwarded: {body}"
            );
        }
        assert!(!body.contains("secret-agent"));
    }

    #[tokio::test]
    async fn keepheaders_passes_them_on() {
        let setup = setup(&[(KEEP_HEADERS_OPTION, "true")], TunnelLimits::default()).await;
        let url = format!("http://{}/", setup.site_b32);
        let proxy = proxy_arg(&setup);
        let (code, body) = curl(&[
            "-x",
            &proxy,
            "-A",
            "secret-agent/1.0",
            "-H",
            "Referer: http://me.i2p/",
            &url,
        ])
        .await;
        let body = text(&body);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("user-agent: secret-agent/1.0"), "{body}");
        assert!(body.contains("referer: http://me.i2p/"), "{body}");
    }

    #[tokio::test]
    async fn a_bad_keepheaders_value_is_a_500_page_naming_it() {
        let setup = setup(&[(KEEP_HEADERS_OPTION, "maybe")], TunnelLimits::default()).await;
        let url = format!("http://{}/", setup.site_b32);
        let (code, body) = curl(&["-x", &proxy_arg(&setup), &url]).await;
        assert_eq!(code, 500);
        assert!(text(&body).contains("bob.http.keepheaders"));
    }

    #[tokio::test]
    async fn connect_relays_raw_bytes() {
        let setup = setup(&[], TunnelLimits::default()).await;
        let url = format!("http://{}/through-connect", setup.site_b32);
        let (code, body) =
            curl(&["-p", "-x", &proxy_arg(&setup), "-A", "agent-in-tls", &url]).await;
        let body = text(&body);
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with("GET /through-connect\n"), "{body}");
        // inside a CONNECT tunnel the proxy sees nothing: the client's own headers arrive
        assert!(body.contains("user-agent: agent-in-tls"), "{body}");
    }

    #[tokio::test]
    async fn a_mebibyte_comes_back_whole_and_is_counted() {
        let setup = setup(&[], TunnelLimits::default()).await;
        let url = format!("http://{}/big", setup.site_b32);
        let (code, body) = curl(&["-x", &proxy_arg(&setup), &url]).await;
        assert_eq!(code, 200);
        assert!(
            body == big_body(),
            "1 MiB body differs (got {} bytes)",
            body.len()
        );
        let stats = setup.stats.snapshot();
        assert!(stats.bytes_in >= 1 << 20, "{stats:?}");
        assert_eq!(stats.failed, 0, "{stats:?}");
    }

    #[tokio::test]
    async fn errors_are_pages_with_the_right_status() {
        let setup = setup(&[], TunnelLimits::default()).await;
        let proxy = proxy_arg(&setup);
        // unknown name
        let (code, body) = curl(&["-x", &proxy, "http://nobody-knows.i2p/"]).await;
        assert_eq!(code, 404);
        assert!(text(&body).contains("nobody-knows.i2p"), "{}", text(&body));
        // an unknown b32 is unknown too on the local core
        let (code, _) = curl(&["-x", &proxy, &format!("http://{}.b32.i2p/", "c".repeat(52))]).await;
        assert_eq!(code, 404);
        // a destination that exists but runs nowhere: unreachable (named through the
        // address helper: curl refuses a 516-character base64 host name)
        let offline = keys().destination().to_base64();
        let url = format!("http://offline.i2p/?i2paddresshelper={offline}");
        let (code, body) = curl(&["-x", &proxy, &url]).await;
        assert_eq!(code, 504, "{}", text(&body));
        // clearnet without an outproxy
        let (code, body) = curl(&["-x", &proxy, "http://example.com/"]).await;
        assert_eq!(code, 403);
        assert!(text(&body).contains("example.com"));
        let (code, _) = curl(&["-p", "-x", &proxy, "http://example.com/"]).await;
        assert_eq!(code, 403, "CONNECT to clearnet");
        // not a proxy request (origin-form straight to the port)
        let (code, body) = curl(&[&format!("http://127.0.0.1:{}/", setup.proxy_port)]).await;
        assert_eq!(code, 400);
        assert!(text(&body).contains("HTTP proxy"));
        // oversized head: hyper's 431
        let big = format!("X-Big: {}", "a".repeat(MAX_REQUEST_HEAD + 1024));
        let (code, _) = curl(&["-x", &proxy, "-H", &big, "http://x.i2p/"]).await;
        assert_eq!(code, 431);
        assert!(setup.stats.snapshot().failed >= 6);
    }

    #[tokio::test]
    async fn the_address_helper_serves_one_request_and_is_removed() {
        let setup = setup(&[], TunnelLimits::default()).await;
        let proxy = proxy_arg(&setup);
        let b32 = setup.site_b32.trim_end_matches(".b32.i2p").to_owned();
        let url = format!("http://named.i2p/x?a=1&i2paddresshelper={b32}&b=2");
        let (code, body) = curl(&["-x", &proxy, &url]).await;
        let body = text(&body);
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with("GET /x?a=1&b=2\n"), "{body}");
        assert!(body.contains("host: named.i2p"), "{body}");
        // nothing was remembered
        let (code, _) = curl(&["-x", &proxy, "http://named.i2p/x"]).await;
        assert_eq!(code, 404);
        // a full destination as the helper, percent-encoded
        let site = setup
            .core
            .lookup(&setup.site_b32)
            .await
            .expect("site resolves")
            .to_base64();
        let encoded = site.replace('~', "%7E");
        let url = format!("http://named.i2p/?i2paddresshelper={encoded}");
        let (code, body) = curl(&["-x", &proxy, &url]).await;
        assert_eq!(code, 200, "{}", text(&body));
        assert!(text(&body).starts_with("GET /\n"));
        // a helper that is neither
        let (code, _) = curl(&["-x", &proxy, "http://named.i2p/?i2paddresshelper=zzz"]).await;
        assert_eq!(code, 400);
    }

    #[tokio::test]
    async fn a_slow_client_is_closed_after_the_header_timeout() {
        let limits = TunnelLimits {
            first_line_timeout: Duration::from_millis(300),
            ..TunnelLimits::default()
        };
        let setup = setup(&[], limits).await;
        let mut socket = TcpStream::connect(("127.0.0.1", setup.proxy_port))
            .await
            .unwrap();
        socket
            .write_all(b"GET http://x.i2p/ HTTP/1.1\r\nHost: x.i2p\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was not closed");
        assert!(rest.is_empty(), "{}", text(&rest));
        assert_eq!(setup.stats.snapshot().failed, 1);
    }
}
