//! Runs the built `bob-keygen` binary.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use keytools::{Destination, PrivateKeys, SigType};

const KEY_VECTORS: &str = include_str!("../test-vectors/privkey-vectors.txt");

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bob-keygen"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run bob-keygen")
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A fresh directory for one test (removed when dropped).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("bob-keygen-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn vector(label: &str) -> (String, String) {
    let l = KEY_VECTORS
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    (l[1].to_owned(), l[4].to_owned())
}

fn assert_clean_failure(o: &Output) {
    assert!(!o.status.success());
    let e = stderr(o);
    assert!(!e.contains("panicked"), "panic: {e}");
    assert!(!e.trim().is_empty(), "no error message");
}

#[test]
fn generate_prints_keys_of_every_type() {
    for (name, t) in [
        ("ed25519", SigType::Ed25519),
        ("dsa", SigType::DsaSha1),
        ("p256", SigType::EcdsaP256),
        ("p384", SigType::EcdsaP384),
        ("p521", SigType::EcdsaP521),
        ("reddsa", SigType::RedDsa),
    ] {
        for crypto in ["elgamal", "x25519"] {
            let o = run(&["generate", "--type", name, "--crypto", crypto]);
            assert!(o.status.success(), "{name}: {}", stderr(&o));
            let line = stdout(&o);
            let k = PrivateKeys::from_base64(line.trim()).unwrap();
            assert_eq!(k.destination().sig_type(), t);
            if t == SigType::DsaSha1 && crypto == "elgamal" {
                // Java BOB setkeys accepts exactly 884 characters
                assert_eq!(line.trim().len(), 884);
            }
        }
    }
}

#[test]
fn generate_file_mode_0600_and_force() {
    let dir = TempDir::new("force");
    let f = dir.file("k.dat");
    let o = run(&["generate", "--out", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let first = fs::read(&f).unwrap();
    let k = PrivateKeys::from_bytes(&first).unwrap();
    assert!(stderr(&o).contains(&k.destination().b32()));

    // no overwrite without --force
    let o = run(&["generate", "--out", &f]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(fs::read(&f).unwrap(), first);

    // --force overwrites and tightens a loose mode
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&["generate", "--out", &f, "--force", "--type", "dsa"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let second = fs::read(&f).unwrap();
    assert_ne!(second, first);
    assert_eq!(second.len(), 663);
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // base64 file format
    let g = dir.file("k.txt");
    let o = run(&["generate", "--out", &g, "--format", "base64"]);
    assert!(o.status.success());
    let text = fs::read_to_string(&g).unwrap();
    PrivateKeys::from_base64(text.trim()).unwrap();
    assert_eq!(
        fs::metadata(&g).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // binary to stdout is refused
    assert_clean_failure(&run(&["generate", "--format", "binary"]));
}

#[test]
fn info_reads_binary_base64_and_stdin() {
    let dir = TempDir::new("info");
    let (b32, b64) = vector("i2pd-keygen-p521");
    let k = PrivateKeys::from_base64(&b64).unwrap();
    let bin_file = dir.file("p521.dat");
    fs::write(&bin_file, k.to_bytes()).unwrap();
    let txt_file = dir.file("p521.txt");
    fs::write(&txt_file, format!("{b64}\n")).unwrap();
    for o in [
        run(&["info", &bin_file]),
        run(&["info", &txt_file]),
        run_stdin(&["info", "-"], b64.as_bytes()),
    ] {
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("{b32}.b32.i2p")), "{out}");
        assert!(out.contains("ECDSA_SHA512_P521 (3)"));
        assert!(out.contains("private keys"));
        assert!(out.contains("395 bytes"));
        assert!(out.contains(&k.destination().to_base64()));
        // never the private part
        assert!(!out.contains(&b64));
    }
    // a public destination works too
    let o = run(&["info", &k.destination().to_base64()]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("public only"));
}

#[test]
fn verify_b32_and_dest() {
    let (b32, b64) = vector("i2pd-keygen-ed25519");
    let k = PrivateKeys::from_base64(&b64).unwrap();
    let dest = k.destination().to_base64();

    let o = run(&["verify", &dest]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), format!("OK {b32}.b32.i2p"));
    let o = run_stdin(&["verify", "--strict", "-"], dest.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));

    // a whole key blob: Java BOB semantics accept, strict does not
    assert!(run(&["verify", &b64]).status.success());
    let o = run(&["verify", "--strict", &b64]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("trailing bytes"), "{}", stderr(&o));

    let o = run(&["b32", &dest]);
    assert_eq!(stdout(&o).trim(), format!("{b32}.b32.i2p"));
    let o = run(&["b32", &b64]);
    assert_eq!(stdout(&o).trim(), format!("{b32}.b32.i2p"));

    let o = run(&["dest", &b64]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), dest);
    let o = run_stdin(&["dest", "-"], b64.as_bytes());
    assert_eq!(stdout(&o).trim(), dest);
    // a bare destination is not a key blob
    assert_clean_failure(&run(&["dest", &dest]));
}

#[test]
fn bad_input_gives_one_clear_error() {
    let o = run(&["verify", "abc+def"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("invalid destination: invalid base64"),
        "{}",
        stderr(&o)
    );

    let (_, b64) = vector("i2pd-keygen-ed25519");
    let d = Destination::from_base64(
        &PrivateKeys::from_base64(&b64)
            .unwrap()
            .destination()
            .to_base64(),
    )
    .unwrap();
    let trunc = keytools::encoding::base64_encode(&d.as_bytes()[..200]);
    let o = run(&["verify", &trunc]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "invalid destination: truncated destination: need 387 bytes, have 200"
    );

    let mut unknown = d.as_bytes().to_vec();
    unknown[388] = 99;
    let o = run(&["b32", &keytools::encoding::base64_encode(&unknown)]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("unknown signature type 99"),
        "{}",
        stderr(&o)
    );

    let o = run(&["info", "/nonexistent/dir/keys.dat"]);
    assert_clean_failure(&o);
    assert!(stderr(&o).starts_with("error: cannot read /nonexistent/dir/keys.dat"));

    let o = run(&["generate", "--type", "rsa"]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("unknown signature type \"rsa\""),
        "{}",
        stderr(&o)
    );
    let o = run(&["generate", "--type", "4"]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("not supported in destinations"));

    let o = run_stdin(&["dest", "-"], &[0u8, 1, 2, 3, 0xff, 0xfe]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));

    let o = run(&["vanity", "l0l"]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("not in the b32 alphabet"),
        "{}",
        stderr(&o)
    );
    let o = run(&["vanity", "ab", "--type", "p256", "-j", "1"]);
    assert_clean_failure(&o);
}

#[test]
fn vanity_one_char_prefix() {
    let o = run(&["vanity", "q", "-j", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let k = PrivateKeys::from_base64(stdout(&o).trim()).unwrap();
    assert!(k.destination().b32().starts_with('q'));
    assert!(stderr(&o).contains("expected tries 32^1"), "{}", stderr(&o));

    let dir = TempDir::new("vanity");
    let f = dir.file("v.dat");
    let o = run(&["vanity", "7", "-j", "2", "--type", "reddsa", "--out", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let k = PrivateKeys::from_bytes(&fs::read(&f).unwrap()).unwrap();
    assert!(k.destination().b32().starts_with('7'));
    assert_eq!(k.destination().sig_type(), SigType::RedDsa);
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // existing file without --force: refused before searching
    let o = run(&["vanity", "7", "-j", "1", "--out", &f]);
    assert_clean_failure(&o);
}

#[test]
fn vanity_bench_reports_rates() {
    let o = run(&["vanity", "--bench", "0.2", "-j", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("candidates/s"), "{out}");
    assert!(out.contains("naive"), "{out}");
}

#[test]
fn vanity_stops_cleanly_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let mut child = bin()
        .args(["vanity", "zzzzzzzzzzzz", "-j", "1", "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    // blocks until the handler is installed and the search has started
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("searching for b32 prefix"), "{first}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(out.status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted after"), "{rest}");
    assert!(out.stdout.is_empty(), "nothing printed on interrupt");
}
