//! `bob-keygen`: I2P key generation, key info, verification, b32 and vanity search.
//!
//! Every failure ends in one `error: ...` line on stderr and a non-zero exit status; private
//! keys are only ever written to stdout (when asked) or to files created with mode 0600.

#![forbid(unsafe_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keytools::keyfile::{self, KeyFileError, WriteMode};
use keytools::vanity::{self, Matcher, Path, Pattern, Prefix, RegexPattern, SearchOptions};
use keytools::{CryptoType, Destination, PrivateKeys, SigType, naming, verify_bob, verify_strict};
use zeroize::Zeroizing;

/// Largest input accepted from a file or stdin (key blobs are < 2 KiB; certificates < 64 KiB).
const MAX_INPUT: u64 = 256 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "bob-keygen",
    version,
    about = "I2P destination keys for BOB: generate, inspect, verify, offline-sign, register, \
             b33, vanity b32",
    after_help = "Key files are written atomically with mode 0600 and never through a symlink; \
                  an existing file is only replaced with --force. Inputs are a file, `-` for \
                  stdin, or the base64 text itself; FIFOs, devices and files over 256 KiB are \
                  refused."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct OutArgs {
    /// Write to this file (mode 0600, atomic, never through a symlink) instead of stdout.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Output format (default: base64 on stdout, binary key file with --out).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Replace an existing --out file (a symlink there is replaced, not followed).
    #[arg(long)]
    force: bool,
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
        #[command(flatten)]
        out: OutArgs,
    },
    /// Show types, sizes, b32, offline signature and public destination of keys or a destination.
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
    /// Print the blinded b32 address ("b33") for an encrypted LeaseSet (Ed25519/RedDSA only).
    B33 {
        /// Base64 destination or key blob, a file, or `-` for stdin.
        dest: String,
        /// Clients also need a secret (flag 0x02).
        #[arg(long)]
        secret: bool,
        /// Per-client authorization is required (flag 0x04).
        #[arg(long)]
        client_auth: bool,
    },
    /// Print the public destination (base64) of a key blob.
    Dest {
        /// Base64 key blob, a key file, or `-` for stdin.
        keys: String,
    },
    /// Make an offline-signed key blob: a new transient key certified by KEYS' long-term key,
    /// which the output does not contain (keep KEYS offline; renew before expiry).
    Offline {
        /// The long-term key blob: a file, `-` for stdin, or base64.
        keys: String,
        /// Transient signature type (ed25519, p256, reddsa, ...).
        #[arg(long = "type", short = 't', default_value = "ed25519")]
        sig: SigType,
        /// Valid for this many days from now.
        #[arg(long, default_value_t = 365, conflicts_with = "expires")]
        days: u32,
        /// Expiry as seconds since the epoch (instead of --days).
        #[arg(long, value_name = "UNIX_TIME")]
        expires: Option<u32>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Print a signed address-book registration line `NAME=DEST#!date=…#sig=…` (what a
    /// registrar such as reg.i2p takes); with --parent-keys the `addsubdomain` form for a
    /// subdomain, signed by the parent name's keys too.
    Register {
        /// Host name (example.i2p, or sub.example.i2p with --parent-keys).
        name: String,
        /// The name's key blob: a file, `-` for stdin, or base64.
        keys: String,
        /// Keys of the parent name (sub.example.i2p → example.i2p's keys).
        #[arg(long, value_name = "KEYS")]
        parent_keys: Option<String>,
        /// The date property (seconds since the epoch; default: now).
        #[arg(long, value_name = "UNIX_TIME")]
        date: Option<u64>,
    },
    /// Check signed registration lines (exit 0 all valid, 1 otherwise).
    VerifyRegistration {
        /// The line, or `-` to read lines from stdin (blank lines and `#` comments skipped).
        line: String,
    },
    /// Search for keys whose b32 address starts with a PREFIX or matches a --regex.
    Vanity {
        /// b32 prefixes (letters a-z and digits 2-7); each is searched for.
        prefixes: Vec<String>,
        /// Regular expression over the 52 b32 characters (`^` anchors at the start,
        /// case-sensitive, ASCII); repeatable.
        #[arg(long, short = 'r', value_name = "PATTERN")]
        regex: Vec<String>,
        /// Keys to find for each pattern.
        #[arg(long, short = 'n', default_value_t = 1)]
        count: u32,
        /// Worker threads (default: number of CPUs).
        #[arg(long, short = 'j')]
        threads: Option<usize>,
        /// Signature type: ed25519 or reddsa.
        #[arg(long = "type", short = 't', default_value = "ed25519")]
        sig: SigType,
        /// Crypto type: elgamal or x25519.
        #[arg(long, default_value = "elgamal")]
        crypto: CryptoType,
        /// Write the keys to this file (one result) or directory (several results, one
        /// `<b32>.dat` file each) instead of stdout.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Output format for --out.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Replace an existing --out file, and search even when the expected time to the first
        /// hit is absurd (over a year).
        #[arg(long)]
        force: bool,
        /// SHA-256 path: auto (fastest this CPU has), single, portable, sha-ni-x2, sha-ni-x4,
        /// avx2-x8, avx512-x16.
        #[arg(long, default_value = "auto")]
        engine: String,
        /// Measure candidates/s of every available path (and the naive baseline) for SECONDS
        /// each, on 1 thread and on --threads, and exit.
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

fn main() -> ExitCode {
    // hidden `--generate-completions SHELL` / `--generate-man` / `--generate-man-dir DIR`
    // (scripts/gen-completions.sh); errors as `error: ...` like every other failure here
    if let Some(code) = cli_docs::handle_generate_args_as(
        "bob-keygen",
        "error",
        <Cli as clap::CommandFactory>::command,
    ) {
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
        Command::Generate { sig, crypto, out } => {
            let keys = PrivateKeys::generate(sig, crypto)?;
            emit_keys(&keys, &out)?;
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
        Command::B33 {
            dest,
            secret,
            client_auth,
        } => {
            let parsed = parse_any(&read_bytes(&dest)?)?;
            println!("{}", parsed.destination().b33(secret, client_auth)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Dest { keys } => {
            println!("{}", read_keys(&keys)?.destination().to_base64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Offline {
            keys,
            sig,
            days,
            expires,
            out,
        } => {
            let long = read_keys(&keys)?;
            let expires = match expires {
                Some(e) => e,
                None => {
                    let e = now_secs().saturating_add(u64::from(days).saturating_mul(86_400));
                    u32::try_from(e).map_err(|_| {
                        anyhow::anyhow!("--days {days} ends after 2106, the last 32-bit expiry")
                    })?
                }
            };
            let o = long.offline_sign(sig, expires)?;
            eprintln!(
                "offline-signed {}: transient {sig} key valid until {} (unix {expires})",
                o.destination().b32(),
                utc(u64::from(expires))
            );
            emit_keys(&o, &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Register {
            name,
            keys,
            parent_keys,
            date,
        } => {
            let keys = read_keys(&keys)?;
            let date = date.unwrap_or_else(now_secs);
            let line = match parent_keys {
                None => naming::register(&name, &keys, date)?,
                Some(p) => {
                    let lower = name.to_ascii_lowercase();
                    let Some(parent) = naming::parent_domain(&lower) else {
                        bail!("--parent-keys needs a subdomain such as www.{lower}");
                    };
                    let parent = parent.to_owned();
                    naming::register_subdomain(&name, &keys, &parent, &read_keys(&p)?, date)?
                }
            };
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyRegistration { line } => verify_registrations(&line),
        Command::Vanity {
            prefixes,
            regex,
            count,
            threads,
            sig,
            crypto,
            out,
            format,
            force,
            engine,
            bench,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if threads == 0 || threads > 1024 {
                bail!("--threads must be between 1 and 1024");
            }
            let path = engine_path(&engine)?;
            if let Some(secs) = bench {
                return vanity_bench(sig, crypto, threads, secs);
            }
            if !(1..=MAX_COUNT).contains(&count) {
                bail!("--count must be between 1 and {MAX_COUNT}");
            }
            let mut patterns = Vec::new();
            for p in &prefixes {
                patterns.push(Pattern::Prefix(Prefix::new(p)?));
            }
            for r in &regex {
                patterns.push(Pattern::Regex(Box::new(RegexPattern::new(r)?)));
            }
            if patterns.is_empty() {
                bail!("give at least one PREFIX or --regex PATTERN (or --bench SECONDS)");
            }
            if patterns.len() > MAX_PATTERNS {
                bail!("at most {MAX_PATTERNS} patterns at once");
            }
            let opts = SearchOptions {
                sig,
                crypto,
                threads,
                path: Some(path),
            };
            let output = VanityOutput {
                out,
                format,
                force,
                single: patterns.len() == 1 && count == 1,
            };
            vanity_search(Matcher::new(patterns)?, count, &opts, &output)
        }
    }
}

/// Age after which a temporary key file of ours is abandoned.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);
/// Most keys `vanity --count` looks for per pattern.
const MAX_COUNT: u32 = 1_000_000;
/// Most patterns one `vanity` run searches for.
const MAX_PATTERNS: usize = 64;
/// Expected time to a first hit above which `vanity` refuses without --force.
const ABSURD_SECS: f64 = 365.0 * 86_400.0;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (civil-from-days, proleptic
/// Gregorian; written out because only this one line needs a calendar).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn engine_path(name: &str) -> anyhow::Result<Path> {
    let available = || {
        Path::available()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if name == "auto" {
        return Ok(Path::best());
    }
    let Some(p) = Path::from_name(name) else {
        bail!(
            "unknown --engine {name:?} (expected auto or one of: {})",
            Path::ALL.map(|p| p.name()).join(", ")
        );
    };
    if !p.is_available() {
        bail!(
            "--engine {name}: this CPU lacks the instructions (available: {})",
            available()
        );
    }
    Ok(p)
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

/// Reads `arg`: `-` is stdin, an existing path is a file (regular files only, bounded), anything
/// else is the text itself.
fn read_bytes(arg: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if arg == "-" {
        let mut buf = Zeroizing::new(Vec::new());
        io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        if buf.len() as u64 > MAX_INPUT {
            bail!("stdin: larger than {MAX_INPUT} bytes");
        }
        return Ok(buf);
    }
    let p = std::path::Path::new(arg);
    if fs::symlink_metadata(p).is_ok() {
        return Ok(keyfile::read_file_bounded(p, MAX_INPUT)?);
    }
    if arg.contains(['/', '.']) || arg.is_empty() {
        // base64 never contains '/' or '.', so this was meant as a path
        bail!("cannot read {arg}: no such file");
    }
    if arg.len() as u64 > MAX_INPUT {
        bail!("argument is larger than {MAX_INPUT} bytes");
    }
    Ok(Zeroizing::new(arg.as_bytes().to_vec()))
}

fn read_text(arg: &str) -> anyhow::Result<String> {
    let raw = read_bytes(arg)?;
    let text = std::str::from_utf8(&raw).context("input is not base64 text")?;
    Ok(text.trim().to_owned())
}

/// Private keys from a file, stdin or base64 (binary or base64 content).
fn read_keys(arg: &str) -> anyhow::Result<PrivateKeys> {
    let raw = read_bytes(arg)?;
    keyfile::parse_key_bytes(&raw)
        .map_err(|e| anyhow::anyhow!("{arg}: not a private key blob: {e}"))
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

/// A key blob if it parses as one (an expired offline section included, so `info` can say
/// so), else a destination; the error names both attempts.
fn parse_any(raw: &[u8]) -> anyhow::Result<Parsed> {
    let bytes = decode_input(raw)?;
    match PrivateKeys::from_bytes_any_expiry(&bytes) {
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
        Parsed::Keys(k) if k.offline().is_some() => "private keys, offline-signed",
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
            let now = now_secs();
            let state = if u64::from(o.expires) < now {
                "EXPIRED".to_owned()
            } else {
                format!("{} days left", (u64::from(o.expires) - now) / 86_400)
            };
            println!(
                "offline signed:   transient {} ({}) key, expires {} (unix {}), {state}",
                o.transient_type,
                o.transient_type.code(),
                utc(u64::from(o.expires)),
                o.expires
            );
            println!(
                "transient key:    {}",
                keytools::encoding::base64_encode(&o.transient_public_key)
            );
        }
    }
    println!("b32:              {}", d.b32());
    if let Ok(b33) = d.b33(false, false) {
        println!("b33 (encrypted):  {b33}");
    }
    println!("destination:      {}", d.to_base64());
    Ok(())
}

fn verify_registrations(arg: &str) -> anyhow::Result<ExitCode> {
    let text;
    let lines: Vec<&str> = if arg == "-" {
        text = String::from_utf8(read_bytes("-")?.to_vec()).context("stdin is not UTF-8 text")?;
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    } else {
        vec![arg]
    };
    if lines.is_empty() {
        bail!("no registration line given");
    }
    let mut ok = true;
    for line in lines {
        match naming::verify_registration(line) {
            Ok(v) => {
                let mut extra = String::new();
                if let Some(d) = v.date {
                    extra.push_str(&format!(" date {}", utc(d)));
                }
                if let Some((parent, _)) = &v.old {
                    extra.push_str(&format!(" signed by {parent}"));
                }
                if let Some(a) = &v.action {
                    extra.push_str(&format!(" action {a}"));
                }
                println!("OK {} {}{extra}", v.name, v.destination.b32());
            }
            Err(e) => {
                ok = false;
                let name = line.split('=').next().unwrap_or_default();
                let name: String = name.chars().take(80).collect();
                eprintln!("invalid {name:?}: {e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bytes of `keys` in `format` (binary by default).
fn key_file_bytes(keys: &PrivateKeys, format: Option<Format>) -> Zeroizing<Vec<u8>> {
    match format.unwrap_or(Format::Binary) {
        Format::Binary => Zeroizing::new(keys.to_bytes()),
        Format::Base64 => {
            let mut s = keys.to_base64().into_bytes();
            s.push(b'\n');
            Zeroizing::new(s)
        }
    }
}

/// Writes a private key file (0600, atomic, never through a symlink); without `force` an
/// existing file (or symlink) is left alone and reported.
fn write_private(path: &std::path::Path, data: &[u8], force: bool) -> anyhow::Result<()> {
    let mode = if force {
        WriteMode::Replace
    } else {
        WriteMode::CreateNew
    };
    // temp files of a writer killed mid-write hold private keys: remove ours once they are
    // clearly abandoned (no write takes ten minutes)
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if let Ok(removed) = keyfile::remove_stale_temp_files(dir, STALE_TEMP_AGE) {
        for r in removed {
            eprintln!("removed stale temporary key file {}", r.display());
        }
    }
    match keyfile::write_private_file_with(path, data, mode) {
        Ok(()) => {}
        Err(KeyFileError::Exists { .. }) => bail!(
            "{} already exists (use --force to overwrite)",
            path.display()
        ),
        Err(e) => return Err(e.into()),
    }
    warn_open_dir(path.parent());
    Ok(())
}

/// Warns when the directory of a key file lets others replace it.
fn warn_open_dir(dir: Option<&std::path::Path>) {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if let Ok(a) = keyfile::check_key_dir(dir)
        && a.group_or_world_writable
    {
        eprintln!(
            "warning: {} is writable by group or others (mode {:04o}): they can replace the key \
             file; chmod go-w it",
            dir.display(),
            a.mode
        );
    }
}

/// Writes keys: base64 line to stdout, or a file (never overwritten without --force).
fn emit_keys(keys: &PrivateKeys, out: &OutArgs) -> anyhow::Result<()> {
    match &out.out {
        None => {
            if out.format == Some(Format::Binary) {
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
            write_private(path, &key_file_bytes(keys, out.format), out.force)?;
            eprintln!("wrote {} ({})", path.display(), keys.destination().b32());
        }
    }
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

/// A duration for people: "40 ms", "3.2 min", "2.1 days", "4.5e12 years".
fn human_time(secs: f64) -> String {
    const YEAR: f64 = 365.25 * 86_400.0;
    if !secs.is_finite() {
        "forever".into()
    } else if secs < 1.0 {
        format!("{:.0} ms", secs * 1e3)
    } else if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 2.0 * 86_400.0 {
        format!("{:.1} hours", secs / 3600.0)
    } else if secs < YEAR {
        format!("{:.1} days", secs / 86_400.0)
    } else if secs < 1e4 * YEAR {
        format!("{:.1} years", secs / YEAR)
    } else {
        format!("{:.1e} years", secs / YEAR)
    }
}

/// Where `vanity` results go.
struct VanityOutput {
    out: Option<PathBuf>,
    format: Option<Format>,
    force: bool,
    /// exactly one result: --out is a file; otherwise a directory
    single: bool,
}

impl VanityOutput {
    /// Checks the destination before searching.
    fn prepare(&self) -> anyhow::Result<()> {
        let Some(p) = &self.out else {
            if self.format == Some(Format::Binary) {
                bail!("--format binary needs --out");
            }
            return Ok(());
        };
        if self.single {
            if fs::symlink_metadata(p).is_ok() && !self.force {
                bail!("{} already exists (use --force to overwrite)", p.display());
            }
        } else {
            match fs::metadata(p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!(
                    "{}: several keys are searched for, so --out must be a directory",
                    p.display()
                ),
                Err(_) => {
                    use std::os::unix::fs::DirBuilderExt;
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(p)
                        .with_context(|| format!("cannot create directory {}", p.display()))?;
                }
            }
        }
        Ok(())
    }

    /// Emits one verified hit.
    fn emit(&self, keys: &PrivateKeys) -> anyhow::Result<()> {
        let b32 = keys.destination().b32();
        match &self.out {
            None => {
                let line = Zeroizing::new(keys.to_base64());
                let mut stdout = io::stdout().lock();
                writeln!(stdout, "{}", line.as_str())
                    .and_then(|()| stdout.flush())
                    .context("cannot write to stdout")?;
            }
            Some(p) if self.single => {
                write_private(p, &key_file_bytes(keys, self.format), self.force)?;
                eprintln!("wrote {}", p.display());
            }
            Some(dir) => {
                let ext = if self.format == Some(Format::Base64) {
                    "b64"
                } else {
                    "dat"
                };
                let name = b32.trim_end_matches(".b32.i2p");
                let f = dir.join(format!("{name}.{ext}"));
                write_private(&f, &key_file_bytes(keys, self.format), self.force)?;
                eprintln!("wrote {}", f.display());
            }
        }
        Ok(())
    }
}

/// Search state shared with the hit callback.
struct Found {
    per_pattern: Vec<u32>,
    total: u64,
    error: Option<anyhow::Error>,
}

fn vanity_search(
    matcher: Matcher,
    count: u32,
    opts: &SearchOptions,
    output: &VanityOutput,
) -> anyhow::Result<ExitCode> {
    output.prepare()?;
    let stop = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    install_ctrlc(&stop, &interrupted)?;
    let path = opts.path.unwrap_or(Path::Single);
    // the real rate of this search (its patterns included), measured briefly
    let rate = vanity::measure_rate(&matcher, opts, Duration::from_millis(150))?.max(1.0);
    let mut worst = 0f64;
    for p in matcher.patterns() {
        let expected = p.expected_tries();
        let secs = expected * f64::from(count) / rate;
        worst = worst.max(secs);
        let what = match p {
            Pattern::Prefix(x) => {
                let n = x.as_str().len();
                // 52 characters fix all 256 hash bits (the last one carries a single bit)
                let power = if n == vanity::MAX_PREFIX_LEN {
                    "2^256".to_owned()
                } else {
                    format!("32^{n}")
                };
                format!(
                    "b32 prefix {:?}; expected tries {power} = {}",
                    x.as_str(),
                    human(expected).trim_end()
                )
            }
            Pattern::Regex(r) => format!(
                "regex {:?}; expected tries {}",
                r.as_str(),
                human(expected).trim_end()
            ),
        };
        // printed after the Ctrl-C handler is in place (the CLI test relies on that order)
        eprintln!(
            "searching for {what}, expected time to first hit {}",
            human_time(expected / rate)
        );
    }
    eprintln!(
        "{} thread(s), {}, {path} hashing: {}candidates/s; {} key(s) per pattern",
        opts.threads,
        opts.sig,
        human(rate),
        count
    );
    if worst > ABSURD_SECS && !output.force {
        bail!(
            "refusing: the expected search time is {} at {}candidates/s (use --force to search \
             anyway)",
            human_time(worst),
            human(rate)
        );
    }
    let n = matcher.patterns().len();
    let found = Mutex::new(Found {
        per_pattern: vec![0; n],
        total: 0,
        error: None,
    });
    let tries = AtomicU64::new(0);
    let expected = matcher
        .patterns()
        .iter()
        .map(|p| p.expected_tries() * f64::from(count))
        .fold(0f64, f64::max);
    let bar = ProgressBar::new(expected.min(u64::MAX as f64) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} tries (expected) {per_sec} elapsed {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let on_hit = |hit: vanity::Hit| -> bool {
        let Ok(mut f) = found.lock() else {
            return true;
        };
        if f.per_pattern[hit.pattern] >= count {
            return false;
        }
        // independent re-check from the serialized blob before anything is written
        let result = PrivateKeys::from_bytes(&hit.keys.to_bytes())
            .context("found key failed re-verification")
            .and_then(|check| {
                let b32 = check.destination().b32();
                if !matcher.patterns()[hit.pattern].matches_b32(&b32) {
                    bail!("found key failed re-verification: {b32} does not match");
                }
                bar.suspend(|| {
                    eprintln!(
                        "found {b32} for {:?} after {} tries in {:.1} s",
                        matcher.patterns()[hit.pattern].as_str(),
                        human(tries.load(Ordering::Relaxed) as f64).trim_end(),
                        start.elapsed().as_secs_f64()
                    );
                    output.emit(&check)
                })
            });
        match result {
            Ok(()) => {
                f.per_pattern[hit.pattern] += 1;
                f.total += 1;
                f.per_pattern.iter().all(|&c| c >= count)
            }
            Err(e) => {
                f.error = Some(e);
                true
            }
        }
    };
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| vanity::search_each(&matcher, opts, &stop, &tries, &on_hit));
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
    result?;
    let found = found
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a search thread panicked"))?;
    if let Some(e) = found.error {
        return Err(e);
    }
    let wanted = n as u64 * u64::from(count);
    let summary = format!(
        "{} tries in {secs:.1} s ({}candidates/s); {} of {wanted} key(s) found",
        human(done as f64).trim_end(),
        human(done as f64 / secs.max(1e-9)),
        found.total
    );
    if found.total == wanted {
        eprintln!("done after {summary}");
        Ok(ExitCode::SUCCESS)
    } else if interrupted.load(Ordering::Relaxed) {
        eprintln!("interrupted after {summary} (those were written)");
        Ok(ExitCode::from(130))
    } else {
        bail!("search stopped after {summary}")
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
    // Each figure is the best of SLICES short runs taken round-robin over the paths, so a
    // load change on a shared machine hits every path alike and the ratios stay meaningful.
    const SLICES: u32 = 5;
    let d = Duration::from_secs_f64(secs / f64::from(SLICES));
    let matcher = vanity::bench_matcher();
    let mut thread_counts = vec![1];
    if threads > 1 {
        thread_counts.push(threads);
    }
    let mut paths: Vec<Option<Path>> = vec![None];
    paths.extend(Path::available().into_iter().map(Some));
    let mut best = vec![vec![0f64; thread_counts.len()]; paths.len()];
    for _ in 0..SLICES {
        for (pi, p) in paths.iter().enumerate() {
            for (ti, &t) in thread_counts.iter().enumerate() {
                let opts = SearchOptions {
                    sig,
                    crypto,
                    threads: t,
                    path: *p,
                };
                let r = vanity::measure_rate(&matcher, &opts, d)?;
                best[pi][ti] = best[pi][ti].max(r);
            }
        }
    }
    let rows: Vec<(String, Vec<f64>)> = paths
        .iter()
        .zip(best)
        .map(|(p, rates)| {
            let name = p.map_or("naive (full SHA-256 + base32)", |p| p.name());
            (name.to_owned(), rates)
        })
        .collect();
    let single = rows
        .iter()
        .find(|r| r.0 == Path::Single.name())
        .map(|r| r.1.clone())
        .unwrap_or_default();
    println!(
        "vanity --bench: {sig}, best of {SLICES} round-robin runs in {secs} s per figure, best \
         path here: {} (candidates/s; 2 SHA-256 compressions per candidate)",
        Path::best()
    );
    let mut header = format!("{:<30}", "path");
    for &t in &thread_counts {
        header.push_str(&format!(
            " {:>14} {:>9}",
            format!("{t} thread(s)"),
            "vs single"
        ));
    }
    header.push_str("  compressions/s per thread");
    println!("{header}");
    for (name, rates) in &rows {
        let mut line = format!("{name:<30}");
        for (i, r) in rates.iter().enumerate() {
            let base = single.get(i).copied().unwrap_or(f64::NAN);
            line.push_str(&format!(
                " {:>14} {:>8.2}x",
                format!("{}", human(*r).trim_end()),
                r / base
            ));
        }
        let last = rates.last().copied().unwrap_or(0.0);
        let t = *thread_counts.last().unwrap_or(&1) as f64;
        line.push_str(&format!("  {}", human(2.0 * last / t).trim_end()));
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
