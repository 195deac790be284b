//! Running the `bob-server` binary in a test: start it on a port the system picks, read
//! its log up to the `bob-server listening on ADDR` line, keep its log drained, stop it
//! with SIGTERM.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::task::JoinHandle;

use crate::{DEADLINE, within, within_for};

/// The start of the line bob-server logs (on stderr) once its control port accepts
/// connections; the address follows it.
pub const LISTENING: &str = "bob-server listening on ";

/// A server process past its listening line.
#[derive(Debug)]
pub struct Listening {
    /// The process; killed when dropped.
    pub child: Child,
    /// The control address from the listening line (`127.0.0.1:PORT`, `[::1]:PORT`).
    pub addr: String,
    /// Every stderr line read so far (with its line end), the listening line last.
    pub seen: Vec<String>,
    /// The rest of stderr, unread. Keep reading it (or hand it to [`drain`] or
    /// [`Listening::share_log`]) when the server may log much: a full pipe blocks it.
    pub stderr: BufReader<ChildStderr>,
}

/// [`spawn_listening_within`] with the [`DEADLINE`].
///
/// # Panics
/// As [`spawn_listening_within`].
pub async fn spawn_listening(cmd: &mut Command) -> Listening {
    spawn_listening_within(DEADLINE, cmd).await
}

/// Starts `cmd` (the bob-server binary with its arguments) with `RUST_LOG=info`, stderr
/// piped, stdout discarded and kill-on-drop, and reads its stderr until the listening
/// line, for at most `limit`.
///
/// # Panics
/// When the process cannot be started, exits (or closes stderr) before the listening
/// line (the message has the log so far), or `limit` passes.
pub async fn spawn_listening_within(limit: Duration, cmd: &mut Command) -> Listening {
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn bob-server");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    let addr = within_for(limit, "bob-server's listening line", async {
        loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).await.unwrap_or(0);
            assert!(n > 0, "bob-server exited early: {seen:#?}");
            let addr = line.trim().strip_prefix(LISTENING).map(str::to_owned);
            seen.push(line);
            if let Some(addr) = addr {
                return addr;
            }
        }
    })
    .await;
    Listening {
        child,
        addr,
        seen,
        stderr,
    }
}

impl Listening {
    /// Keeps reading the log in the background into a shared list that starts with
    /// [`Listening::seen`]; returns the process, its address and the list.
    #[must_use]
    pub fn share_log(self) -> (Child, String, Arc<Mutex<Vec<String>>>) {
        let Self {
            child,
            addr,
            seen,
            mut stderr,
        } = self;
        let log = Arc::new(Mutex::new(seen));
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            let mut line = String::new();
            while stderr.read_line(&mut line).await.unwrap_or(0) > 0 {
                sink.lock()
                    .expect("log lock")
                    .push(std::mem::take(&mut line));
            }
        });
        (child, addr, log)
    }
}

/// Reads `stderr` to its end in the background (so that the server never blocks on a
/// full pipe); the task yields the lines read.
pub fn drain(mut stderr: BufReader<ChildStderr>) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut lines = Vec::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).await.unwrap_or(0) > 0 {
            lines.push(std::mem::take(&mut line));
        }
        lines
    })
}

/// Sends SIGTERM to `child` and waits for it to exit, for at most the [`DEADLINE`];
/// returns its exit status.
///
/// # Panics
/// When the process has already been reaped, `kill` fails, or it does not exit in time.
pub async fn sigterm(child: &mut Child) -> ExitStatus {
    let pid = child.id().expect("process still running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {pid}: {kill}");
    within("exit after SIGTERM", child.wait())
        .await
        .expect("wait for the process")
}
