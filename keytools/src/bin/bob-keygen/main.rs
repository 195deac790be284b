//! `bob-keygen`: I2P key generation, key info, verification, b32 and vanity search.
//!
//! Every failure ends in one `error: ...` line on stderr and a non-zero exit status; private
//! keys are only ever written to stdout (when asked) or to files created with mode 0600.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keytools::vanity::{Matcher, Path, Pattern, Prefix, RegexPattern, SearchOptions};
use keytools::{CryptoType, PrivateKeys, SigType, naming, verify_bob, verify_strict};

mod input;
mod output;
mod search;

use input::{Parsed, parse_any, read_bytes, read_keys, read_text};
use output::emit_keys;
use search::{VanityOutput, vanity_bench, vanity_search};

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

/// Most keys `vanity --count` looks for per pattern.
const MAX_COUNT: u32 = 1_000_000;
/// Most patterns one `vanity` run searches for.
const MAX_PATTERNS: usize = 64;

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
