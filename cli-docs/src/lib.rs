//! Shell completions and man pages for the workspace's command-line tools, generated
//! from their clap definitions so they never drift from the real flags.
//!
//! Each binary calls [`handle_generate_args`] first thing in `main`:
//! `bob-server --generate-completions bash` prints a bash completion script,
//! `bobctl --generate-man` prints a roff man page, `bobctl --generate-man-dir DIR` writes
//! it and one page per subcommand (`bobctl-list.1`, … : the pages it refers to). `scripts/gen-completions.sh OUTDIR`
//! runs all of them. The flags are hidden from `--help` and checked before normal
//! parsing, so they work for binaries whose subcommand is otherwise required.
#![warn(missing_docs)]

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::str::FromStr;

use clap_complete::Shell;

/// The hidden flag that prints completions for the shell named after it.
pub const COMPLETIONS_FLAG: &str = "--generate-completions";
/// The hidden flag that prints a man page.
pub const MAN_FLAG: &str = "--generate-man";
/// The hidden flag that writes the man page and one page per subcommand (the pages the
/// main page refers to, e.g. `bobctl-list(1)`) into the directory named after it.
pub const MAN_DIR_FLAG: &str = "--generate-man-dir";

/// What the first arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generate {
    /// completions for a shell
    Completions(Shell),
    /// a man page in roff
    Man,
    /// every man page (the command's and its subcommands') into a directory
    ManDir(std::path::PathBuf),
}

/// Looks at the arguments after the program name: `Ok(None)` unless the first one is
/// one of the hidden generator flags.
///
/// # Errors
/// A message for a missing or unknown shell name.
pub fn parse_generate(args: &[OsString]) -> Result<Option<Generate>, String> {
    let first = args.first().and_then(|a| a.to_str());
    match first {
        Some(MAN_FLAG) => Ok(Some(Generate::Man)),
        Some(MAN_DIR_FLAG) => args
            .get(1)
            .map(|dir| Some(Generate::ManDir(dir.into())))
            .ok_or_else(|| format!("{MAN_DIR_FLAG} needs a directory")),
        Some(COMPLETIONS_FLAG) => {
            let shells = "bash, elvish, fish, powershell, zsh";
            let name = args
                .get(1)
                .and_then(|a| a.to_str())
                .ok_or_else(|| format!("{COMPLETIONS_FLAG} needs a shell: {shells}"))?;
            Shell::from_str(name)
                .map(|s| Some(Generate::Completions(s)))
                .map_err(|_| format!("unknown shell {name:?}: expected one of {shells}"))
        }
        _ => Ok(None),
    }
}

/// Writes what `what` asks for about `cmd` to `out` (completions complete `bin_name`;
/// the man page is named after the command).
///
/// # Errors
/// Write errors of `out`.
pub fn generate(
    what: Generate,
    mut cmd: clap::Command,
    bin_name: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    match what {
        Generate::Completions(shell) => {
            clap_complete::generate(shell, &mut cmd, bin_name, out);
            Ok(())
        }
        Generate::Man => clap_mangen::Man::new(cmd).render(out),
        Generate::ManDir(dir) => {
            clap_mangen::generate_to(cmd, &dir)?;
            writeln!(out, "man pages in {}", dir.display())
        }
    }
}

/// The hook for `main`: if the process was started with a generator flag, prints the
/// completions or man page of `cmd()` to stdout and returns the exit code to leave
/// with; otherwise `None` and the binary goes on as usual. Errors are reported on stderr
/// as `BIN_NAME: message`.
#[must_use]
pub fn handle_generate_args(
    bin_name: &str,
    cmd: impl FnOnce() -> clap::Command,
) -> Option<ExitCode> {
    handle_generate_args_as(bin_name, bin_name, cmd)
}

/// [`handle_generate_args`] for a binary whose error lines start with another word
/// than its name (`bob-keygen` writes `error: message`, like clap): errors are reported
/// on stderr as `ERROR_PREFIX: message`.
#[must_use]
pub fn handle_generate_args_as(
    bin_name: &str,
    error_prefix: &str,
    cmd: impl FnOnce() -> clap::Command,
) -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).take(2).collect();
    match parse_generate(&args) {
        Ok(None) => None,
        Ok(Some(what)) => {
            let mut stdout = io::stdout().lock();
            let result = generate(what, cmd(), bin_name, &mut stdout).and_then(|()| stdout.flush());
            Some(match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{error_prefix}: {e}");
                    ExitCode::FAILURE
                }
            })
        }
        Err(message) => {
            eprintln!("{error_prefix}: {message}");
            Some(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo").about("demo tool").arg(
            clap::Arg::new("listen")
                .long("listen")
                .help("where to listen"),
        )
    }

    #[test]
    fn flags_are_recognised() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(parse_generate(&os(&[])), Ok(None));
        assert_eq!(parse_generate(&os(&["--listen", "x"])), Ok(None));
        assert_eq!(
            parse_generate(&os(&["--generate-man"])),
            Ok(Some(Generate::Man))
        );
        assert_eq!(
            parse_generate(&os(&["--generate-completions", "zsh"])),
            Ok(Some(Generate::Completions(Shell::Zsh)))
        );
        assert!(parse_generate(&os(&["--generate-completions"])).is_err());
        assert!(parse_generate(&os(&["--generate-completions", "cmd.exe"])).is_err());
        assert_eq!(
            parse_generate(&os(&["--generate-man-dir", "/x"])),
            Ok(Some(Generate::ManDir("/x".into())))
        );
        assert!(parse_generate(&os(&["--generate-man-dir"])).is_err());
    }

    #[test]
    fn every_page_the_man_page_refers_to_is_written() {
        let cmd = demo()
            .subcommand(clap::Command::new("list").about("list things"))
            .subcommand(clap::Command::new("stop").about("stop a thing"));
        let dir = std::env::temp_dir().join(format!("cli-docs-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = Vec::new();
        generate(Generate::ManDir(dir.clone()), cmd, "demo", &mut out).unwrap();
        let main = std::fs::read_to_string(dir.join("demo.1"))
            .unwrap()
            .replace("\\-", "-");
        let mut referred = 0;
        for sub in ["list", "stop"] {
            if main.contains(&format!("demo-{sub}(1)")) {
                referred += 1;
            }
            assert!(dir.join(format!("demo-{sub}.1")).is_file(), "demo-{sub}.1");
        }
        assert_eq!(referred, 2, "{main}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn outputs_mention_the_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            generate(Generate::Completions(shell), demo(), "demo", &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("listen"), "{shell}: {text}");
        }
        let mut out = Vec::new();
        generate(Generate::Man, demo(), "demo", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(".TH demo"), "{text}");
        assert!(text.contains("listen"), "{text}");
    }
}
