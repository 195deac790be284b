//! `bobctl router`: the in-process router's gauges, read from the server's `/metrics`.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::Failure;

/// Largest metrics body read (the server caps its own at 4 MiB).
const MAX_METRICS_BODY: usize = 8 * 1024 * 1024;

/// `GET /metrics` from `addr`: the body, or why not.
pub(crate) async fn fetch_metrics(addr: &str, timeout: Duration) -> Result<String, Failure> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    let unreachable = |e: &dyn std::fmt::Display| {
        Failure::Transport(format!("cannot read metrics from {addr}: {e}"))
    };
    let get = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get("/metrics")
            .header(hyper::header::HOST, addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Usage(format!("--metrics {addr}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!("HTTP status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_METRICS_BODY)
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        conn.abort();
        String::from_utf8(body.to_vec()).map_err(|_| unreachable(&"the body is not UTF-8"))
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| unreachable(&format!("no answer within {} s", timeout.as_secs())))?
}

/// The router gauges of a metrics body (`bob_router_*`), in order of appearance;
/// `kind` from `bob_router_info{kind="…"}`. `None` without `bob_router_info`: the
/// server runs no router in its process.
pub(crate) fn router_gauges(metrics: &str) -> Option<(String, Vec<(String, u64)>)> {
    let mut kind = None;
    let mut gauges = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("bob_router_info{kind=\"") {
            kind = rest.split_once('"').map(|(k, _)| k.to_owned());
        } else if let Some(rest) = line.strip_prefix("bob_router_")
            && let Some((name, value)) = rest.split_once(' ')
            && let Ok(value) = value.trim().parse::<u64>()
        {
            gauges.push((name.to_owned(), value));
        }
    }
    kind.map(|k| (k, gauges))
}

/// `bobctl router`: the text for people, or a JSON object.
pub(crate) fn print_router(kind: &str, gauges: &[(String, u64)], json: bool) {
    let get = |name: &str| gauges.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    if json {
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), kind.into());
        for (name, value) in gauges {
            let value = if name == "sam_healthy" {
                serde_json::Value::Bool(*value != 0)
            } else {
                (*value).into()
            };
            object.insert(name.clone(), value);
        }
        println!("{}", serde_json::Value::Object(object));
        return;
    }
    let n = |name: &str| get(name).map_or_else(|| "?".to_owned(), |v| v.to_string());
    let built = get("tunnels_built").unwrap_or(0);
    let failed = get("tunnel_build_failures").unwrap_or(0);
    let success = if built + failed == 0 {
        "none finished yet".to_owned()
    } else {
        // counts stay far below 2^52: exact
        #[allow(clippy::cast_precision_loss)]
        let share = built as f64 * 100.0 / (built + failed) as f64;
        format!("{share:.0} % succeeded")
    };
    let healthy = get("sam_healthy") == Some(1);
    println!("router    {kind} (in the server's process)");
    println!(
        "SAM port  {}",
        if healthy { "healthy" } else { "NOT ANSWERING" }
    );
    println!(
        "routers   {} known at start, {} connected",
        n("known_routers"),
        n("connected_routers")
    );
    println!("tunnels   {built} built, {failed} failed ({success})");
    println!(
        "transit   {} tunnels for other routers",
        n("transit_tunnels")
    );
    if !healthy {
        println!("note      no tunnel can start while the SAM port does not answer");
    } else if built == 0 {
        println!("note      the router has built no tunnel yet: tunnels start after that");
    }
}
