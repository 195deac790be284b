//! `bob-keygen vanity`: the search for destinations whose b32 address matches (with its
//! progress bar, Ctrl-C handling and result files) and `vanity --bench`.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use keytools::vanity::{self, Matcher, Path, Pattern, SearchOptions};
use keytools::{CryptoType, PrivateKeys, SigType};
use zeroize::Zeroizing;

use crate::Format;
use crate::output::{key_file_bytes, write_private};

/// Expected time to a first hit above which `vanity` refuses without --force.
const ABSURD_SECS: f64 = 365.0 * 86_400.0;

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
pub(crate) struct VanityOutput {
    pub(crate) out: Option<PathBuf>,
    pub(crate) format: Option<Format>,
    pub(crate) force: bool,
    /// exactly one result: --out is a file; otherwise a directory
    pub(crate) single: bool,
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

pub(crate) fn vanity_search(
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

pub(crate) fn vanity_bench(
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
