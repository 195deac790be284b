//! A private i2pd for tests that start, kill or inspect their router: Debian's i2pd
//! (`scripts/start-i2pd-offline.sh`) on four free loopback ports with its own data
//! directory, so killing it does not disturb the shared router of `scripts/test.sh` or
//! another test.
//!
//! Without i2pd, [`OwnI2pd::start`] fails under `CI=true` and otherwise says loudly that
//! the test did not run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bob_testkit::{free_port, within_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client's patience for one web console page.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join(name)
}

/// A private i2pd on loopback; stopped and its directory removed on drop.
pub(crate) struct OwnI2pd {
    dir: PathBuf,
    /// SAM, BOB, NTCP2 and web console ports, as start-i2pd-offline.sh takes them
    ports: Vec<u16>,
}

impl OwnI2pd {
    /// Starts one on free ports (three attempts: a port may be taken between the pick
    /// and i2pd's bind), or `None` (with the loud message) when i2pd is not installed.
    pub(crate) fn start() -> Option<Self> {
        let installed = Command::new("sh")
            .args(["-c", "command -v i2pd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            let msg = "i2pd is not installed: the router lifecycle test needs it \
                       (apt-get install i2pd; scripts/test.sh installs it)";
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true: {msg}");
            eprintln!("\n!!!!!!!! NOT RUN: {msg} !!!!!!!!\n");
            return None;
        }
        // one directory per router: several tests run their own at once
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = bob_testkit::scratch_dir(&format!("own-i2pd-{n}"));
        for _ in 0..3 {
            let mut ports: Vec<u16> = Vec::new();
            while ports.len() < 4 {
                let p = free_port();
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            let status = Command::new(script("start-i2pd-offline.sh"))
                .arg(&dir)
                .args(ports.iter().map(u16::to_string))
                .status()
                .expect("runs start-i2pd-offline.sh");
            if status.success() {
                return Some(Self { dir, ports });
            }
        }
        panic!("could not start a private i2pd in {}", dir.display());
    }

    pub(crate) fn sam_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its ports as `scripts/start-i2pd-offline.sh` takes them: SAM, BOB, NTCP2, web
    /// console.
    pub(crate) fn ports(&self) -> Vec<String> {
        self.ports.iter().map(u16::to_string).collect()
    }

    /// Kills the router at once (SIGKILL): no goodbye on its sockets' side but the
    /// kernel's.
    pub(crate) fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("i2pd.pid")).expect("i2pd.pid");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("runs kill");
        assert!(status.success(), "kill -KILL {pid}");
    }

    /// The ids of the SAM sessions the router holds, from its web console.
    pub(crate) async fn sam_sessions(&self) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.ports[3]))
            .await
            .expect("i2pd web console");
        s.write_all(b"GET /?page=sam_sessions HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut page = Vec::new();
        within_for(
            REPLY_TIMEOUT,
            "the web console page",
            s.read_to_end(&mut page),
        )
        .await
        .expect("reads the page");
        let page = String::from_utf8_lossy(&page);
        assert!(
            page.contains("SAM sessions:"),
            "not the sessions page: {page}"
        );
        page.split("sam_id=")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for OwnI2pd {
    fn drop(&mut self) {
        let _ = Command::new(script("stop-i2pd.sh")).arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
