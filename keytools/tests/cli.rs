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
    let o = run(&["vanity", "--bench", "0.05", "-j", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("candidates/s"), "{out}");
    assert!(out.contains("naive"), "{out}");
    assert!(out.contains("2 thread(s)"), "{out}");
    // a row per path this CPU has, each with a positive rate
    for p in keytools::vanity::Path::available() {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{} ", p.name())))
            .unwrap_or_else(|| panic!("no row for {p}: {out}"));
        assert!(!row.contains(" 0 "), "{row}");
    }
    assert_clean_failure(&run(&["vanity", "--bench", "0"]));
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

// ---- offline, register, verify-registration, b33, hardened files, vanity patterns ----

/// Runs the binary and fails the test if it has not finished within `secs` (then kills it).
fn run_deadline(args: &[&str], secs: u64) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bob-keygen {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The second implementation: Python 3 with the `cryptography` package (installed by
/// scripts/test.sh). A missing interpreter or package is a failure, not a skip.
fn python(script: &str, args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(format!("{PY_COMMON}\n{script}"))
        .args(args)
        .output()
        .expect("python3 is needed for the cross-implementation tests (scripts/test.sh)");
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// I2P base64, destination layout and Ed25519 written independently of keytools.
const PY_COMMON: &str = r#"
import base64, hashlib, os, sys, zlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
def b64d(s): return base64.b64decode(s.replace('-', '+').replace('~', '/') + '=' * (-len(s) % 4))
def b64e(b): return base64.b64encode(b).decode().replace('+', '-').replace('/', '~')
def b32(dest): return base64.b32encode(hashlib.sha256(dest).digest()).decode().lower().rstrip('=') + '.b32.i2p'
def ed_pub(dest):
    # KEY certificate, signing type 7 (Ed25519): key right-aligned in the 128-byte area
    assert dest[384] == 5 and int.from_bytes(dest[389:391], 'big') in (0, 4), dest[384:391]
    assert int.from_bytes(dest[387:389], 'big') == 7
    return dest[352:384]
def verify_line(line):
    head, props = line.split('#!', 1)
    name, dest64 = head.split('=', 1)
    fields = props.split('#')
    assert fields[-1].startswith('sig='), fields[-1]
    signed = line[:line.rindex('#sig=')] if len(fields) > 1 else head
    dest = b64d(dest64)
    Ed25519PublicKey.from_public_bytes(ed_pub(dest)).verify(b64d(fields[-1][4:]), signed.encode())
    d = dict(f.split('=', 1) for f in fields)
    if 'oldsig' in d:
        Ed25519PublicKey.from_public_bytes(ed_pub(b64d(d['olddest']))).verify(
            b64d(d['oldsig']), line[:line.index('#oldsig=')].encode())
        assert name.endswith('.' + d['oldname'])
    return name, b32(dest)
"#;

fn generate_file(dir: &TempDir, name: &str, sig: &str) -> String {
    let f = dir.file(name);
    let o = run(&["generate", "--type", sig, "--out", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    f
}

#[test]
fn offline_blob_round_trips_and_matches_i2pd_layout() {
    let dir = TempDir::new("offline");
    let (_, b64) = vector("i2pd-keygen-ed25519");
    let (_, i2pd_offline) = vector("i2pd-ed25519-offline");
    let long = dir.file("long.txt");
    fs::write(&long, &b64).unwrap();
    let out = dir.file("online.dat");
    let o = run(&["offline", &long, "--days", "10", "--out", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ours = fs::read(&out).unwrap();
    let theirs = keytools::encoding::base64_decode(&i2pd_offline).unwrap();
    // same layout as i2pd-tools offlinekeys: 813 bytes, the same destination and crypto key,
    // a zero signing key, then expires | type 7 | transient key | signature | transient key
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours[..391 + 256], theirs[..391 + 256]);
    assert!(ours[647..679].iter().all(|&b| b == 0));
    assert_eq!(ours[683..685], [0, 7]);
    let k = PrivateKeys::from_bytes(&ours).unwrap();
    let off = k.offline().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((i64::from(off.expires) - (now as i64 + 10 * 86_400)).abs() < 60);

    // info shows it
    let o = run(&["info", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("offline-signed"), "{text}");
    assert!(
        text.contains("transient EdDSA_SHA512_Ed25519 (7) key"),
        "{text}"
    );
    assert!(
        text.contains(" 10 days left") || text.contains(" 9 days left"),
        "{text}"
    );

    // Python checks the certificate with the destination's key and the transient key pair
    let py = python(
        r#"
blob = open(sys.argv[1], 'rb').read()
dest = blob[:391]
sec = blob[391 + 256 + 32:]
signed, sig, tpriv = sec[:38], sec[38:102], sec[102:134]
Ed25519PublicKey.from_public_bytes(ed_pub(dest)).verify(sig, signed)
tpub = Ed25519PrivateKey.from_private_bytes(tpriv).public_key().public_bytes_raw()
assert tpub == signed[6:38]
print(int.from_bytes(signed[:4], 'big'))
"#,
        &[&out],
    );
    assert_eq!(py.trim(), off.expires.to_string());

    // the i2pd vector shows up as offline-signed too (its expiry is ten years out)
    let o = run(&["info", &i2pd_offline]);
    assert!(stdout(&o).contains("offline-signed"), "{}", stderr(&o));

    // bad input: an offline blob cannot be offline-signed again, the past is refused, an
    // expiry after 2106 is refused, the output is not overwritten without --force
    for args in [
        vec!["offline", out.as_str()],
        vec!["offline", long.as_str(), "--expires", "1000"],
        vec!["offline", long.as_str(), "--days", "4000000"],
        vec!["offline", long.as_str(), "--out", out.as_str()],
        vec!["offline", long.as_str(), "--type", "rsa"],
    ] {
        let o = run(&args);
        assert_clean_failure(&o);
    }
    assert_eq!(fs::read(&out).unwrap(), ours);
    let o = run(&["offline", &long, "--out", &out]);
    assert!(
        stderr(&o).contains("already exists (use --force"),
        "{}",
        stderr(&o)
    );
    let o = run(&["offline", &long, "--type", "p256", "--out", &out, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(fs::read(&out).unwrap(), ours);
}

#[test]
fn register_lines_verify_both_ways_with_python() {
    let dir = TempDir::new("register");
    let keys = generate_file(&dir, "k.dat", "ed25519");
    let parent = generate_file(&dir, "p.dat", "ed25519");
    let k = PrivateKeys::from_bytes(&fs::read(&keys).unwrap()).unwrap();
    let b32 = k.destination().b32();

    let o = run(&["register", "Example.i2p", &keys, "--date", "1700000000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o).trim().to_owned();
    assert!(line.starts_with(&format!(
        "example.i2p={}#!date=1700000000#sig=",
        k.destination().to_base64()
    )));
    // Python verifies our signature
    assert_eq!(
        python("print(*verify_line(sys.argv[1]))", &[&line]).trim(),
        format!("example.i2p {b32}")
    );
    // and we verify ours
    let o = run(&["verify-registration", &line]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!("OK example.i2p {b32} date 2023-11-14")));

    // subdomain: both signatures checked by Python, and by us
    let o = run(&[
        "register",
        "www.example.i2p",
        &keys,
        "--parent-keys",
        &parent,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sub = stdout(&o).trim().to_owned();
    assert!(sub.contains("#!action=addsubdomain#date="), "{sub}");
    assert!(sub.contains("#oldname=example.i2p#oldsig="), "{sub}");
    assert_eq!(
        python("print(*verify_line(sys.argv[1]))", &[&sub]).trim(),
        format!("www.example.i2p {b32}")
    );
    let o = run_stdin(
        &["verify-registration", "-"],
        format!("# feed\n{line}\n\n{sub}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stdout(&o).contains("signed by example.i2p action addsubdomain"));

    // Python signs a line for its own destination; we verify it
    let py = python(
        r#"
sk = Ed25519PrivateKey.generate()
pub = sk.public_key().public_bytes_raw()
dest = os.urandom(352) + pub + bytes([5, 0, 4, 0, 7, 0, 0])
line = 'python.i2p=' + b64e(dest) + '#!date=1700000000'
line += '#sig=' + b64e(sk.sign(line.encode()))
print(line, b32(dest))
"#,
        &[],
    );
    let (py_line, py_b32) = py.trim().split_once(' ').unwrap();
    let o = run(&["verify-registration", py_line]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!("OK python.i2p {py_b32}")));

    // tampering, a stranger's parent key and malformed lines: exit 1 with a reason
    let forged = sub.replace(
        &PrivateKeys::from_bytes(&fs::read(&parent).unwrap())
            .unwrap()
            .destination()
            .to_base64(),
        &k.destination().to_base64(),
    );
    for bad in [
        line.replace("1700000000", "1700000001"),
        py_line.replacen("python", "pithon", 1),
        forged,
        "example.i2p=AAAA#!sig=AAAA".to_owned(),
        "no line at all".to_owned(),
    ] {
        let o = run(&["verify-registration", &bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(stderr(&o).contains("invalid"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    let o = run_stdin(
        &["verify-registration", "-"],
        format!("{line}\nbad=line\n").as_bytes(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).lines().count(),
        1,
        "the good line still reported"
    );

    // bad names and a subdomain form without a subdomain
    for args in [
        vec!["register", "bad_name.i2p", keys.as_str()],
        vec!["register", "x.b32.i2p", keys.as_str()],
        vec!["register", "example.com", keys.as_str()],
        vec![
            "register",
            "example.i2p",
            keys.as_str(),
            "--parent-keys",
            parent.as_str(),
        ],
        vec!["register", "example.i2p", "/nonexistent/keys"],
    ] {
        assert_clean_failure(&run(&args));
    }
}

#[test]
fn b33_matches_python_and_refuses_other_types() {
    let dir = TempDir::new("b33");
    let (_, b64) = vector("i2pd-keygen-ed25519");
    let k = PrivateKeys::from_base64(&b64).unwrap();
    let dest = k.destination().to_base64();
    for (flags, extra) in [
        (0u8, vec![]),
        (2, vec!["--secret"]),
        (4, vec!["--client-auth"]),
        (6, vec!["--secret", "--client-auth"]),
    ] {
        let mut args = vec!["b33", dest.as_str()];
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let expect = python(
            r#"
dest = b64d(sys.argv[1]); pk = ed_pub(dest)
data = bytearray([int(sys.argv[2]), 7, 11]) + pk
crc = zlib.crc32(pk)
for i in range(3): data[i] ^= (crc >> (8 * i)) & 0xff
print(base64.b32encode(bytes(data)).decode().lower().rstrip('=') + '.b32.i2p')
"#,
            &[&dest, &flags.to_string()],
        );
        assert_eq!(stdout(&o).trim(), expect.trim());
        assert_eq!(stdout(&o).trim().len(), 56 + 8);
    }
    // key blob, file and stdin work the same; ECDSA has no b33
    let f = dir.file("k.txt");
    fs::write(&f, &b64).unwrap();
    let a = stdout(&run(&["b33", &f]));
    assert_eq!(a, stdout(&run_stdin(&["b33", "-"], b64.as_bytes())));
    assert_eq!(a, stdout(&run(&["b33", &dest])));
    let p = generate_file(&dir, "p.dat", "p256");
    let o = run(&["b33", &p]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("blinded addresses need"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn outputs_never_follow_symlinks_and_odd_files_are_refused() {
    let dir = TempDir::new("links");
    let victim = dir.file("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.file("keys.dat");
    std::os::unix::fs::symlink(&victim, &link).unwrap();

    // without --force: the symlink counts as an existing file
    let o = run(&["generate", "--out", &link]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // with --force: the link is replaced by a 0600 key file; the target is untouched
    let o = run(&["generate", "--out", &link, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let m = fs::symlink_metadata(&link).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    PrivateKeys::from_bytes(&fs::read(&link).unwrap()).unwrap();
    // no temporary files left behind
    let names: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // a FIFO neither hangs a read nor is written to
    let fifo = dir.file("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for args in [
        vec!["info", fifo.as_str()],
        vec!["b32", fifo.as_str()],
        vec!["verify", fifo.as_str()],
        vec!["generate", "--out", fifo.as_str(), "--force"],
    ] {
        let o = run_deadline(&args, 20);
        assert_clean_failure(&o);
        assert!(stderr(&o).contains("FIFO"), "{args:?}: {}", stderr(&o));
    }
    let o = run_deadline(&["info", "/dev/zero"], 20);
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    let o = run_deadline(&["info", dir.0.to_str().unwrap()], 20);
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));
    let big = dir.file("big");
    fs::write(&big, vec![b'A'; 300 * 1024]).unwrap();
    let o = run(&["info", &big]);
    assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));

    // temp files of a killed writer (our naming scheme, older than ten minutes) are removed
    // before the next write; a fresh one and other files are left alone
    let stale = dir.file(".k.dat.bobtmp-0123456789abcdef");
    let fresh = dir.file(".k.dat.bobtmp-fedcba9876543210");
    fs::write(&stale, b"old key").unwrap();
    fs::write(&fresh, b"in progress").unwrap();
    assert!(
        Command::new("touch")
            .args(["-d", "1 hour ago", &stale])
            .status()
            .unwrap()
            .success()
    );
    let o = run(&["generate", "--out", &dir.file("k2.dat")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed stale temporary key file"),
        "{}",
        stderr(&o)
    );
    assert!(!std::path::Path::new(&stale).exists());
    assert!(std::path::Path::new(&fresh).exists());

    // a key written into a world-writable directory is written, with a warning
    let open = dir.0.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let f = open.join("k.dat");
    let o = run(&["generate", "--out", f.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("writable by group or others"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn vanity_several_patterns_regex_and_count() {
    let dir = TempDir::new("vanity-many");
    let out = dir.file("found");
    let o = run_deadline(
        &[
            "vanity", "a", "b", "--regex", "^c[2-7]", "--count", "2", "-j", "2", "--out", &out,
        ],
        300,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("expected time to first hit"), "{err}");
    assert!(err.contains("expected tries 32^1 = 32"), "{err}");
    // exact expected tries of the regex: 32*32/6 = 170.7
    assert!(
        err.contains("regex \"^c[2-7]\"; expected tries 171"),
        "{err}"
    );
    let mut counts = [0; 3];
    for e in fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k = PrivateKeys::from_bytes(&fs::read(&p).unwrap()).unwrap();
        let b32 = k.destination().b32();
        assert_eq!(p.file_stem().unwrap().to_str().unwrap(), &b32[..52]);
        match b32.as_bytes()[0] {
            b'a' => counts[0] += 1,
            b'b' => counts[1] += 1,
            b'c' => {
                assert!(b"234567".contains(&b32.as_bytes()[1]), "{b32}");
                counts[2] += 1
            }
            _ => panic!("{b32} matches nothing"),
        }
    }
    assert_eq!(counts, [2, 2, 2]);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // to stdout: one base64 key per line
    let o = run_deadline(&["vanity", "q", "--count", "3", "-j", "1"], 300);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<_> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(
            PrivateKeys::from_base64(l)
                .unwrap()
                .destination()
                .b32()
                .starts_with('q')
        );
    }
}

#[test]
fn vanity_forced_engines_and_bad_patterns() {
    // the scalar fallbacks, forced: same verified results
    for engine in ["single", "portable"] {
        let o = run_deadline(&["vanity", "z", "-j", "1", "--engine", engine], 300);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{engine} hashing")),
            "{}",
            stderr(&o)
        );
        let k = PrivateKeys::from_base64(stdout(&o).trim()).unwrap();
        assert!(k.destination().b32().starts_with('z'));
    }
    let fifty_two = "a".repeat(52);
    for (args, msg) in [
        (vec!["vanity", "x", "--engine", "gpu"], "unknown --engine"),
        (vec!["vanity", "--regex", "^A"], "can never match"),
        (vec!["vanity", "--regex", "b$"], "can never match"),
        (vec!["vanity", "--regex", "("], "invalid vanity pattern"),
        (vec!["vanity", "ab1"], "not in the b32 alphabet"),
        (vec!["vanity", "x", "--count", "0"], "--count"),
        (vec!["vanity"], "at least one PREFIX"),
        // the 52-character prefix is refused with its estimate instead of running forever
        (
            vec!["vanity", fifty_two.as_str(), "-j", "1"],
            "refusing: the expected",
        ),
        (vec!["vanity", "zzzzzzzzzzzzz", "-j", "1"], "use --force"),
    ] {
        let o = run_deadline(&args, 60);
        assert_clean_failure(&o);
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
    let o = run_deadline(&["vanity", &fifty_two, "-j", "1"], 60);
    assert!(stderr(&o).contains("years"), "{}", stderr(&o));
}
