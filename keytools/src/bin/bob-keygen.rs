//! `bob-keygen`: I2P key generation, key info, verification, b32 and vanity search.
//!
//! Every failure ends in one `error: ...` line on stderr and a non-zero exit status; private
//! keys are only ever written to stdout (when asked) or to files created with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keytools::vanity::{self, Prefix};
use keytools::{CryptoType, Destination, PrivateKeys, SigType, verify_bob, verify_strict};
use zeroize::Zeroizing;

/// Largest input accepted from a file or stdin (key blobs are < 2 KiB; certificates < 64 KiB).
const MAX_INPUT: u64 = 256 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "bob-keygen",
    version,
    about = "I2P destination keys for BOB: generate, inspect, verify, vanity b32"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a new key blob (what BOB `setkeys` takes).
    Generate {
        /// Signature type: ed25519, dsa, p256, p384, p521, reddsa (or the I2P code/name).
        #[arg(long = "type", short = 't', default_value = "ed25519")]
        sig: SigType,
        /// Crypto type: elgamal or x25519.
        #[arg(long, default_value = "elgamal")]
        crypto: CryptoType,
        /// Write to this file (mode 0600) instead of printing to stdout.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Output format (default: base64 on stdout, binary key file with --out).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Overwrite an existing --out file.
        #[arg(long)]
        force: bool,
    },
    /// Show types, sizes, b32 and public destination of a key file or destination.
    Info {
        /// A file (binary or base64), `-` for stdin, or a base64 string.
        input: String,
    },
    /// Check a base64 destination (exit 0 valid, 1 invalid).
    Verify {
        /// Base64 destination, a file holding one, or `-` for stdin.
        dest: String,
        /// Exact length, no excess certificate data, valid curve point.
        #[arg(long)]
        strict: bool,
    },
    /// Print the b32 address of a destination (or of the destination in a key blob).
    B32 {
        /// Base64 destination or key blob, a file, or `-` for stdin.
        dest: String,
    },
    /// Print the public destination (base64) of a key blob.
    Dest {
        /// Base64 key blob, a key file, or `-` for stdin.
        keys: String,
    },
    /// Search for keys whose b32 address starts with PREFIX.
    Vanity {
        /// b32 prefix (letters a-z and digits 2-7).
        #[arg(required_unless_present = "bench")]
        prefix: Option<String>,
        /// Worker threads (default: number of CPUs).
        #[arg(long, short = 'j')]
        threads: Option<usize>,
        /// Signature type: ed25519 or reddsa.
        #[arg(long = "type", short = 't', default_value = "ed25519")]
        sig: SigType,
        /// Crypto type: elgamal or x25519.
        #[arg(long, default_value = "elgamal")]
        crypto: CryptoType,
        /// Write the found keys to this file (binary, mode 0600) instead of stdout (base64).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Output format for --out.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Overwrite an existing --out file.
        #[arg(long)]
        force: bool,
        /// Measure candidates/s for SECONDS (fast search and the naive baseline) and exit.
        #[arg(long, value_name = "SECONDS")]
        bench: Option<f64>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// I2P base64 text line
    Base64,
    /// i2pd/Java binary key file
    Binary,
}

/// `bob-keygen --generate-completions SHELL` / `--generate-man` (hidden; used by
/// `scripts/gen-completions.sh`): prints completions or a man page made from the clap
/// definition, so they never drift from the real flags. `None` for any other arguments.
fn generate_docs() -> Option<ExitCode> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut args = std::env::args().skip(1);
    let mut out = io::stdout().lock();
    let result = match args.next().as_deref() {
        Some("--generate-man") => clap_mangen::Man::new(Cli::command()).render(&mut out),
        Some("--generate-completions") => {
            let Some(shell) = args.next().and_then(|s| s.parse::<Shell>().ok()) else {
                eprintln!(
                    "error: --generate-completions needs a shell: bash, elvish, fish, powershell, zsh"
                );
                return Some(ExitCode::from(2));
            };
            clap_complete::generate(shell, &mut Cli::command(), "bob-keygen", &mut out);
            Ok(())
        }
        _ => return None,
    };
    Some(match result.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

fn main() -> ExitCode {
    if let Some(code) = generate_docs() {
        return code;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate {
            sig,
            crypto,
            out,
            format,
            force,
        } => {
            let keys = PrivateKeys::generate(sig, crypto)?;
            emit_keys(&keys, out.as_deref(), format, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { input } => {
            info(&input)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { dest, strict } => {
            let text = read_text(&dest)?;
            let result = if strict {
                verify_strict(&text)
            } else {
                verify_bob(&text)
            };
            match result {
                Ok(d) => {
                    println!("OK {}", d.b32());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("invalid destination: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::B32 { dest } => {
            let parsed = parse_any(&read_bytes(&dest)?)?;
            println!("{}", parsed.destination().b32());
            Ok(ExitCode::SUCCESS)
        }
        Command::Dest { keys } => {
            let raw = read_bytes(&keys)?;
            let k =
                PrivateKeys::from_bytes(&decode_input(&raw)?).context("not a private key blob")?;
            println!("{}", k.destination().to_base64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Vanity {
            prefix,
            threads,
            sig,
            crypto,
            out,
            format,
            force,
            bench,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if threads == 0 || threads > 1024 {
                bail!("--threads must be between 1 and 1024");
            }
            if let Some(secs) = bench {
                return vanity_bench(sig, crypto, threads, secs);
            }
            let prefix = Prefix::new(prefix.as_deref().unwrap_or_default())?;
            vanity_search(&prefix, sig, crypto, threads, out.as_deref(), format, force)
        }
    }
}

/// Parsed input: a private-key blob or a bare destination.
enum Parsed {
    Keys(Box<PrivateKeys>),
    Dest(Destination),
}

impl Parsed {
    fn destination(&self) -> &Destination {
        match self {
            Self::Keys(k) => k.destination(),
            Self::Dest(d) => d,
        }
    }
}

/// Reads `arg`: `-` is stdin, an existing path is a file, anything else is the text itself.
fn read_bytes(arg: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    if arg == "-" {
        io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
    } else if Path::new(arg).exists() {
        fs::File::open(arg)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut buf))
            .with_context(|| format!("cannot read {arg}"))?;
    } else if arg.contains(['/', '.']) || arg.is_empty() {
        // base64 never contains '/' or '.', so this was meant as a path
        bail!("cannot read {arg}: no such file");
    } else {
        buf.extend_from_slice(arg.as_bytes());
    }
    if buf.len() as u64 > MAX_INPUT {
        bail!("input is larger than {MAX_INPUT} bytes");
    }
    Ok(buf)
}

fn read_text(arg: &str) -> anyhow::Result<String> {
    let raw = read_bytes(arg)?;
    let text = std::str::from_utf8(&raw).context("input is not base64 text")?;
    Ok(text.trim().to_owned())
}

/// Text input is I2P base64 (surrounding whitespace ignored); anything that is not UTF-8 is a
/// binary key file or destination.
fn decode_input(raw: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match std::str::from_utf8(raw) {
        Ok(text) => Ok(Zeroizing::new(keytools::encoding::base64_decode(
            text.trim(),
        )?)),
        Err(_) => Ok(Zeroizing::new(raw.to_vec())),
    }
}

/// A key blob if it parses as one, else a destination; the error names both attempts.
fn parse_any(raw: &[u8]) -> anyhow::Result<Parsed> {
    let bytes = decode_input(raw)?;
    match PrivateKeys::from_bytes(&bytes) {
        Ok(k) => Ok(Parsed::Keys(Box::new(k))),
        Err(key_err) => match Destination::from_bytes(&bytes) {
            Ok(d) => Ok(Parsed::Dest(d)),
            Err(dest_err) => {
                bail!("neither a destination ({dest_err}) nor private keys ({key_err})")
            }
        },
    }
}

fn info(input: &str) -> anyhow::Result<()> {
    let parsed = parse_any(&read_bytes(input)?)?;
    let d = parsed.destination();
    let kind = match &parsed {
        Parsed::Keys(_) => "private keys",
        Parsed::Dest(_) => "destination (public only)",
    };
    println!("kind:             {kind}");
    println!(
        "signature type:   {} ({})",
        d.sig_type(),
        d.sig_type().code()
    );
    println!(
        "crypto type:      {} ({})",
        d.crypto_type(),
        d.crypto_type().code()
    );
    let cert = match d.cert_type() {
        0 => "NULL".to_owned(),
        5 => "KEY".to_owned(),
        other => other.to_string(),
    };
    println!(
        "certificate:      {cert}, {} payload bytes",
        d.cert_payload().len()
    );
    println!("destination size: {} bytes", d.as_bytes().len());
    if let Parsed::Keys(k) = &parsed {
        println!("key blob size:    {} bytes", k.to_bytes().len());
        if let Some(o) = k.offline() {
            println!(
                "offline signed:   transient {} key, expires {} (unix time)",
                o.transient_type, o.expires
            );
        }
    }
    println!("b32:              {}", d.b32());
    println!("destination:      {}", d.to_base64());
    Ok(())
}

/// Writes keys: base64 line to stdout, or a file (mode 0600, never overwritten without --force).
fn emit_keys(
    keys: &PrivateKeys,
    out: Option<&Path>,
    format: Option<Format>,
    force: bool,
) -> anyhow::Result<()> {
    match out {
        None => {
            if format == Some(Format::Binary) {
                bail!("--format binary needs --out FILE");
            }
            let line = Zeroizing::new(keys.to_base64());
            let mut stdout = io::stdout().lock();
            writeln!(stdout, "{}", line.as_str())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
            eprintln!("{}", keys.destination());
        }
        Some(path) => {
            let data = match format.unwrap_or(Format::Binary) {
                Format::Binary => Zeroizing::new(keys.to_bytes()),
                Format::Base64 => {
                    let mut s = keys.to_base64().into_bytes();
                    s.push(b'\n');
                    Zeroizing::new(s)
                }
            };
            write_private(path, &data, force)?;
            eprintln!("wrote {} ({})", path.display(), keys.destination().b32());
        }
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8], force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut opts = OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists (use --force to overwrite)",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    // an existing file keeps its old mode when truncated: tighten it
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn install_ctrlc(stop: &Arc<AtomicBool>, interrupted: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let (stop, interrupted) = (Arc::clone(stop), Arc::clone(interrupted));
    ctrlc::set_handler(move || {
        interrupted.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
    })
    .context("cannot install the Ctrl-C handler")
}

fn human(n: f64) -> String {
    if n >= 1e12 {
        format!("{n:.2e} ")
    } else if n >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0} ")
    }
}

fn vanity_search(
    prefix: &Prefix,
    sig: SigType,
    crypto: CryptoType,
    threads: usize,
    out: Option<&Path>,
    format: Option<Format>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    if out.is_none() && format == Some(Format::Binary) {
        bail!("--format binary needs --out FILE");
    }
    if let Some(p) = out
        && p.exists()
        && !force
    {
        bail!("{} already exists (use --force to overwrite)", p.display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    install_ctrlc(&stop, &interrupted)?;
    let expected = prefix.expected_tries();
    // printed after the Ctrl-C handler is in place (the CLI test relies on that order)
    eprintln!(
        "searching for b32 prefix {:?} with {threads} thread(s), {sig}; expected tries 32^{} = {}",
        prefix.as_str(),
        prefix.as_str().len(),
        human(expected).trim_end()
    );
    let tries = AtomicU64::new(0);
    let bar = ProgressBar::new(expected.min(u64::MAX as f64) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} tries (expected) {per_sec} elapsed {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| vanity::search(prefix, sig, crypto, threads, &stop, &tries));
        while !worker.is_finished() {
            bar.set_position(tries.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
        worker
            .join()
            .unwrap_or_else(|_| Err(keytools::KeyError::Random("worker thread panicked".into())))
    });
    let done = tries.load(Ordering::Relaxed);
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    match result? {
        Some(keys) => {
            // independent re-check from the serialized blob before anything is written
            let check = PrivateKeys::from_bytes(&keys.to_bytes())
                .context("found key failed re-verification")?;
            let b32 = check.destination().b32();
            if !prefix.matches_b32(&b32) {
                bail!("found key failed re-verification: {b32} does not start with the prefix");
            }
            eprintln!(
                "found {b32} after {} tries in {secs:.1} s ({}candidates/s)",
                human(done as f64).trim_end(),
                human(done as f64 / secs)
            );
            emit_keys(&check, out, format, force)?;
            Ok(ExitCode::SUCCESS)
        }
        None if interrupted.load(Ordering::Relaxed) => {
            eprintln!(
                "interrupted after {} tries in {secs:.1} s; nothing written",
                human(done as f64).trim_end()
            );
            Ok(ExitCode::from(130))
        }
        None => bail!("search stopped without a result"),
    }
}

fn vanity_bench(
    sig: SigType,
    crypto: CryptoType,
    threads: usize,
    secs: f64,
) -> anyhow::Result<ExitCode> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        bail!("--bench SECONDS must be between 0 and 3600");
    }
    let d = Duration::from_secs_f64(secs);
    let fast = vanity::measure_rate(sig, crypto, threads, d, false)?;
    let naive = vanity::measure_rate(sig, crypto, threads, d, true)?;
    println!(
        "vanity {sig}, {threads} thread(s), {secs} s each: midstate {:.0} candidates/s, naive full SHA-256 + base32 {:.0} candidates/s, speed-up {:.1}x",
        fast,
        naive,
        fast / naive
    );
    Ok(ExitCode::SUCCESS)
}
