//! Tests of the state directory: per-tunnel files, loading, damage, migration.

use super::*;
use crate::tunnel::TunnelKind;
use keytools::{CryptoType, PrivateKeys, SigType};

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bob-state-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn record(nick: &str, running: bool) -> TunnelRecord {
    let keys = PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).unwrap();
    TunnelRecord {
        nickname: nick.into(),
        keys: Some(keys.to_base64()),
        inhost: "localhost".into(),
        inport: Some(4444),
        outhost: "127.0.0.1".into(),
        outport: None,
        quiet: true,
        kind: TunnelKind::Stream,
        options: vec![
            ("inbound.length".into(), "1".into()),
            ("a".into(), "b".into()),
        ],
        running,
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempdir("rt");
    let store = StateStore::open(&dir).unwrap();
    assert!(store.load().unwrap().tunnels.is_empty());
    let mut udp = record("two", false);
    udp.kind = TunnelKind::Udp;
    let records = vec![record("one", true), udp];
    store.save(1, &records).unwrap();
    let loaded = StateStore::open(&dir).unwrap().load().unwrap();
    assert_eq!(loaded.tunnels, records);
    // BOB's own tunnels are saved without a kind, as before kinds existed
    let one = fs::read_to_string(store.tunnel_path("one")).unwrap();
    assert!(!one.contains("kind"), "{one}");
    let two = fs::read_to_string(store.tunnel_path("two")).unwrap();
    assert!(two.contains("kind = \"udp\""), "{two}");
    assert!(loaded.problems.is_empty() && loaded.kept_aside.is_empty());
    assert!(store.tunnel_path("one").ends_with("tunnels/6f6e65.toml"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&store.tunnel_path("one")), 0o600);
        assert_eq!(mode(&store.path()), 0o700);
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A nickname too long to name a file in hex is stored under its SHA-256.
#[test]
fn long_nicknames_are_stored_under_their_hash() {
    let dir = tempdir("long");
    let store = StateStore::open(&dir).unwrap();
    let long = "n".repeat(bob_codec::types::MAX_NICKNAME_LEN);
    let name = tunnel_file_name(&long);
    assert!(
        name.starts_with("sha256-") && name.len() == 7 + 64 + 5,
        "{name}"
    );
    assert_eq!(tunnel_file_name(&"n".repeat(MAX_HEX_NICKNAME)).len(), 205);
    let records = vec![record(&long, false)];
    store.save(1, &records).unwrap();
    assert!(store.tunnel_path(&long).is_file());
    assert_eq!(
        StateStore::open(&dir).unwrap().load().unwrap().tunnels,
        records
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn older_generations_never_overwrite_newer() {
    let dir = tempdir("gen");
    let store = StateStore::open(&dir).unwrap();
    store.save(5, &[record("new", false)]).unwrap();
    store.save(3, &[record("old", false)]).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.tunnels.len(), 1);
    assert_eq!(loaded.tunnels[0].nickname, "new");
    fs::remove_dir_all(&dir).unwrap();
}

/// A save writes the files of the tunnels that changed and removes those of the
/// tunnels that are gone; every other file is left alone (same inode, not rewritten).
#[cfg(unix)]
#[test]
fn a_save_touches_only_the_changed_tunnels_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempdir("touch");
    let store = StateStore::open(&dir).unwrap();
    let mut records: Vec<_> = (0..100)
        .map(|i| record(&format!("t{i:03}"), false))
        .collect();
    store.save(1, &records).unwrap();
    assert_eq!(store.files_written(), 100);
    let inodes = |records: &[TunnelRecord]| -> Vec<u64> {
        records
            .iter()
            .map(|r| fs::metadata(store.tunnel_path(&r.nickname)).unwrap().ino())
            .collect()
    };
    let before = inodes(&records);

    records[42].outport = Some(8080);
    store.save(2, &records).unwrap();
    assert_eq!(store.files_written(), 101, "one file written");
    assert_eq!(store.writes(), 2);
    let after = inodes(&records);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b != a, i == 42, "file {i} rewritten: {}", b != a);
    }

    let gone = records.remove(7);
    store.save(3, &records).unwrap();
    assert_eq!((store.files_written(), store.files_removed()), (101, 1));
    assert!(!store.tunnel_path(&gone.nickname).exists());
    assert_eq!(inodes(&records), [&after[..7], &after[8..]].concat());

    // an unchanged snapshot writes nothing
    store.save(4, &records).unwrap();
    assert_eq!((store.files_written(), store.writes()), (101, 3));
    assert_eq!(
        StateStore::open(&dir).unwrap().load().unwrap().tunnels,
        records
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// One damaged tunnel file is reported and kept aside (0600); the others load.
#[test]
fn a_corrupt_file_is_kept_aside_and_the_rest_restored() {
    let dir = tempdir("corrupt");
    let store = StateStore::open(&dir).unwrap();
    let good = record("good", false);
    store
        .save(1, &[good.clone(), record("bad", false)])
        .unwrap();
    let garbage = b"version = 2\n[tunnel\ngarbage";
    fs::write(store.tunnel_path("bad"), garbage).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.tunnels, [good]);
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    assert!(loaded.problems[0].contains(&tunnel_file_name("bad")));
    assert_eq!(loaded.kept_aside.len(), 1);
    let aside = &loaded.kept_aside[0];
    assert_eq!(fs::read(aside).unwrap(), garbage);
    #[cfg(unix)]
    assert_eq!(mode(aside), 0o600);
    assert!(!store.tunnel_path("bad").exists(), "not met again");
    // the kept-aside file is not read as a tunnel
    let again = StateStore::open(&dir).unwrap().load().unwrap();
    assert!(again.problems.is_empty() && again.tunnels.len() == 1);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_entries_are_dropped_with_a_reason_and_kept() {
    let dir = tempdir("bad");
    let store = StateStore::open(&dir).unwrap();
    let good = record("good", true);
    let mut bad_keys = record("badkeys", false);
    bad_keys.keys = Some("not-base64!".into());
    let mut no_keys_running = record("nokeys", true);
    no_keys_running.keys = None;
    let mut huge = record("huge", false);
    huge.options.push((
        "k".into(),
        "v".repeat(bob_codec::types::MAX_OPTION_VALUE_LEN + 1),
    ));
    store
        .save(1, &[good.clone(), bad_keys, no_keys_running, huge])
        .unwrap();
    // another tunnel's entry under this one's name
    fs::copy(store.tunnel_path("good"), store.tunnel_path("thief")).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.tunnels, vec![good]);
    assert_eq!(loaded.problems.len(), 4, "{:?}", loaded.problems);
    let all = loaded.problems.join("\n");
    for what in [
        "badkeys",
        "nokeys",
        "huge",
        "not stored under its file name",
    ] {
        assert!(all.contains(what), "{what}: {all}");
    }
    assert_eq!(loaded.kept_aside.len(), 4);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_version_is_set_aside() {
    let dir = tempdir("ver");
    let store = StateStore::open(&dir).unwrap();
    fs::write(store.tunnel_path("x"), b"version = 99\n").unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.problems[0].contains("version 99"));
    assert_eq!(loaded.kept_aside.len(), 1);
    fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO among the tunnel files is refused at once (it would otherwise block the
/// server before it greets anyone) and moved out of the way; the other tunnels load.
/// A FIFO as the legacy file is an error naming the path once.
#[cfg(unix)]
#[test]
fn a_fifo_state_file_is_refused_not_waited_on() {
    let dir = tempdir("fifo");
    let store = StateStore::open(&dir).unwrap();
    store.save(1, &[record("good", false)]).unwrap();
    let mkfifo = |path: PathBuf| {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
    };
    mkfifo(store.tunnel_path("web"));
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.clone();
    std::thread::spawn(move || {
        let store = StateStore::open(&d).unwrap();
        let first = store.load();
        mkfifo(store.legacy_path());
        let second = store.load().map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send((first, second));
    });
    let (first, second) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("load returned instead of waiting on the FIFO");
    let loaded = first.unwrap();
    assert_eq!(loaded.tunnels.len(), 1);
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    assert!(loaded.problems[0].contains("not a regular file"));
    let err = second.unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(err.matches("registry.toml").count(), 1, "{err}");
    assert!(!store.tunnel_path("web").exists(), "moved out of the way");
    fs::remove_dir_all(&dir).unwrap();
}

/// A symlink at a tunnel file's path is replaced by the next save, never followed.
#[cfg(unix)]
#[test]
fn a_symlinked_state_file_is_replaced_not_written_through() {
    let dir = tempdir("link");
    let store = StateStore::open(&dir).unwrap();
    let victim = dir.join("victim");
    fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, store.tunnel_path("web")).unwrap();
    store.save(1, &[record("web", false)]).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    assert!(
        fs::symlink_metadata(store.tunnel_path("web"))
            .unwrap()
            .is_file()
    );
    assert_eq!(store.load().unwrap().tunnels.len(), 1);

    // a valid entry read through a symlink is rewritten as a regular file by the
    // first save, even though its record did not change
    let outside = dir.join("outside.toml");
    fs::rename(store.tunnel_path("web"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, store.tunnel_path("web")).unwrap();
    let store = StateStore::open(&dir).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.tunnels.len(), 1);
    store.save(1, &loaded.tunnels).unwrap();
    assert!(
        fs::symlink_metadata(store.tunnel_path("web"))
            .unwrap()
            .is_file()
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Entries a command could not have made (an empty nickname, a control character in
/// a host) are dropped on load and reported, not restored as ghosts.
#[test]
fn impossible_entries_are_dropped() {
    let dir = tempdir("ghost");
    let store = StateStore::open(&dir).unwrap();
    fs::write(
        store.legacy_path(),
        "version = 1\n\
             [[tunnel]]\nnickname = \"\"\ninhost = \"localhost\"\nouthost = \"localhost\"\n\
             [[tunnel]]\nnickname = \"x\"\ninhost = \"a\\u0007b\"\nouthost = \"localhost\"\n\
             [[tunnel]]\nnickname = \"ok\"\ninhost = \"localhost\"\nouthost = \"localhost\"\n",
    )
    .unwrap();
    let loaded = store.load().unwrap();
    let names: Vec<_> = loaded.tunnels.iter().map(|t| t.nickname.as_str()).collect();
    assert_eq!(names, ["ok"]);
    assert!(
        loaded.problems[0].contains("nickname is empty"),
        "{:?}",
        loaded.problems
    );
    assert!(
        loaded.problems[1].contains("inhost"),
        "{:?}",
        loaded.problems
    );
    assert_eq!(loaded.kept_aside.len(), 1);
    fs::remove_dir_all(&dir).unwrap();
}

/// The previous version's single file is read once, written as tunnel files by the
/// first save and renamed aside; a migration interrupted before the rename is
/// finished by the next start without duplicates.
#[test]
fn a_legacy_state_file_is_migrated_once() {
    let dir = tempdir("migrate");
    let store = StateStore::open(&dir).unwrap();
    let records = vec![record("a", true), record("b", false)];
    write_legacy_file(&store.legacy_path(), &records).unwrap();
    // interrupted migration: one tunnel file already written
    StateStore::open(&dir)
        .unwrap()
        .save(1, &records[..1])
        .unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.tunnels, records);
    assert!(store.legacy_path().exists(), "kept until saved");
    store.save(1, &loaded.tunnels).unwrap();
    assert!(!store.legacy_path().exists());
    assert!(dir.join(MIGRATED_STATE_FILE).is_file());
    assert!(store.tunnel_path("b").is_file());
    let again = StateStore::open(&dir).unwrap().load().unwrap();
    assert_eq!(again.tunnels, records);
    fs::remove_dir_all(&dir).unwrap();
}

/// A temporary file an interrupted save left behind (keys inside) is removed when
/// the directory is opened again, in the state directory and among the tunnel
/// files; a fresh one (a save in progress) and other files are kept.
#[cfg(unix)]
#[test]
fn open_removes_stale_temp_files_only() {
    let dir = tempdir("stale");
    let tunnels = dir.join(TUNNELS_DIR);
    fs::create_dir_all(&tunnels).unwrap();
    let stale = dir.join(".registry.toml.bobtmp-0123456789abcdef");
    let stale_tunnel = tunnels.join(".6f6e65.toml.bobtmp-0123456789abcdef");
    let fresh = tunnels.join(".6f6e65.toml.bobtmp-fedcba9876543210");
    let other = dir.join("notes.txt");
    for f in [&stale, &stale_tunnel, &fresh, &other] {
        fs::write(f, b"x").unwrap();
    }
    for f in [&stale, &stale_tunnel] {
        let aged = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(f)
            .status()
            .expect("touch runs");
        assert!(aged.success());
    }
    let store = StateStore::open(&dir).unwrap();
    assert!(
        !stale.exists() && !stale_tunnel.exists(),
        "stale temp files removed"
    );
    assert!(fresh.exists() && other.exists());
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty() && loaded.tunnels.is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_redacts_keys() {
    let r = record("x", false);
    let shown = format!("{r:?}");
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains(r.keys.as_deref().unwrap()));
}
