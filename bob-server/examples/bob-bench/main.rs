//! `bob-bench`: data-path, scale and control-plane benchmarks of a real `bob-server`
//! process on loopback, each against a baseline measured in the same run.
//!
//! ```text
//! cargo run --release -p bob-server --example bob-bench -- [--server PATH] [--router sam|devnet] [BENCH...]
//! BENCH = throughput | setup | scale | control | soak | router | devnet | hostile | hostile-save | proxy | udp | all
//!         (default: all but soak, router, devnet, hostile, proxy, udp; hostile-save: only hostile's save cost;
//!         devnet: a server built with --features embedded-router)
//! --router sam = router (i2pd's BOB vs bob-server over i2pd's SAM),
//! --router devnet = devnet (bob-server --router devnet vs both of those)
//! ```
//! Every benchmark prints a table and one `JSON {...}` line. All traffic stays on
//! loopback; every loop is bounded in count and time. The server is started as a child
//! process (`--server`, default: the `bob-server` binary next to this example) so that
//! its memory can be read from `/proc`.
//!
//! One file per benchmark: `throughput`, `setup`, `scale`, `control`, `soak`, `router`, `devnet`,
//! `hostile`, `proxy`, `udp`;
//! `common` holds the server process, the BOB client and the sinks.

mod common;
mod control;
mod devnet;
mod hostile;
mod proxy;
mod router;
mod scale;
mod setup;
mod soak;
mod throughput;
mod udp;

use std::path::PathBuf;

use crate::common::*;
use crate::control::*;
use crate::devnet::*;
use crate::hostile::*;
use crate::proxy::*;
use crate::router::*;
use crate::scale::*;
use crate::setup::*;
use crate::soak::*;
use crate::throughput::*;
use crate::udp::*;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--echo-sink-child") {
        return match echo_sink_child().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo sink: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut binary = std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.parent())
                .map(|d| d.join("bob-server"))
        })
        .unwrap_or_else(|| PathBuf::from("bob-server"));
    if let Some(i) = args.iter().position(|a| a == "--server") {
        if i + 1 >= args.len() {
            eprintln!("--server needs a path");
            return std::process::ExitCode::from(2);
        }
        binary = PathBuf::from(args.remove(i + 1));
        args.remove(i);
    }
    if let Some(i) = args.iter().position(|a| a == "--router") {
        let bench = match args.get(i + 1).map(String::as_str) {
            Some("sam") => "router",
            Some("devnet") => "devnet",
            other => {
                eprintln!(
                    "--router needs sam or devnet, not {:?}",
                    other.unwrap_or("")
                );
                return std::process::ExitCode::from(2);
            }
        };
        args.drain(i..=i + 1);
        args.push(bench.into());
    }
    let scale_conns = std::env::var("BOB_BENCH_SCALE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let soak_bytes = std::env::var("BOB_BENCH_SOAK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024)
        << 20;
    if args.is_empty() || args.iter().any(|a| a == "all") {
        args = ["throughput", "setup", "scale", "control"]
            .map(String::from)
            .to_vec();
    }
    println!(
        "# bob-bench on {} cores; server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        binary.display()
    );
    let mut failed = false;
    for bench in &args {
        let result = match bench.as_str() {
            "throughput" | "setup" | "soak" | "proxy" => {
                match ServerProc::start(&binary, &[]).await {
                    Ok(server) => match bench.as_str() {
                        "throughput" => bench_throughput(&server).await,
                        "setup" => bench_setup(&server).await,
                        "proxy" => bench_proxy(&server).await,
                        _ => bench_soak(&server, soak_bytes, soak_conns()).await,
                    },
                    Err(e) => Err(e),
                }
            }
            "scale" => bench_scale(&binary, scale_conns).await,
            "control" => bench_control(&binary).await,
            "router" => bench_router(&binary).await,
            "devnet" => bench_devnet(&binary).await,
            "hostile" => bench_hostile(&binary).await,
            "hostile-save" => save_cost(&binary).await,
            "udp" => bench_udp(&binary).await,
            other => Err(format!("unknown benchmark {other:?}").into()),
        };
        if let Err(e) = result {
            eprintln!("{bench}: FAILED: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
