//! Unit tests of the local backend.

use keytools::{CryptoType, SigType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).expect("key generation")
}

async fn open(core: &LocalCore, keys: &PrivateKeys) -> Arc<dyn Session> {
    core.open_session(keys.clone(), Vec::new())
        .await
        .expect("open session")
}

#[tokio::test]
async fn duplicate_destination_is_refused_until_closed() {
    let core = LocalCore::new();
    let k = keys();
    let first = open(&core, &k).await;
    let second = core.open_session(k.clone(), Vec::new()).await;
    assert_eq!(second.unwrap_err(), CoreError::DuplicateDestination);
    first.close().await;
    assert_eq!(core.session_count(), 0);
    let again = open(&core, &k).await;
    assert_eq!(again.destination(), k.destination());
    // Closing the stale session again must not unregister the new one.
    first.close().await;
    assert_eq!(core.session_count(), 1);
}

#[tokio::test]
async fn dropped_session_frees_its_destination() {
    let core = LocalCore::new();
    let k = keys();
    drop(open(&core, &k).await);
    assert_eq!(core.session_count(), 0);
    open(&core, &k).await;
}

#[tokio::test]
async fn close_ends_pending_and_later_accepts() {
    let core = LocalCore::new();
    let session = open(&core, &keys()).await;
    let waiting = {
        let session = Arc::clone(&session);
        tokio::spawn(async move { session.accept().await.map(|_| ()) })
    };
    let waiting2 = {
        let session = Arc::clone(&session);
        tokio::spawn(async move { session.accept().await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    session.close().await;
    assert_eq!(waiting.await.unwrap(), Err(CoreError::Closed));
    assert_eq!(waiting2.await.unwrap(), Err(CoreError::Closed));
    assert_eq!(session.accept().await.unwrap_err(), CoreError::Closed);
    let target = Target::Destination(session.destination().clone());
    assert_eq!(
        session.connect(target).await.unwrap_err(),
        CoreError::Closed
    );
}

#[tokio::test]
async fn connect_accept_carries_bytes_and_peer() {
    let core = LocalCore::new();
    let (ka, kb) = (keys(), keys());
    let a = open(&core, &ka).await;
    let b = open(&core, &kb).await;
    let mut out = a
        .connect(Target::Destination(kb.destination().clone()))
        .await
        .unwrap();
    let Incoming { mut stream, peer } = b.accept().await.unwrap();
    assert_eq!(&peer, ka.destination());
    out.write_all(b"ping").await.unwrap();
    out.shutdown().await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"ping");
    stream.write_all(b"pong").await.unwrap();
    drop(stream);
    got.clear();
    out.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"pong");
}

#[tokio::test]
async fn concurrent_accepts_get_different_streams() {
    let core = LocalCore::new();
    let (ka, kb) = (keys(), keys());
    let a = open(&core, &ka).await;
    let b = open(&core, &kb).await;
    let accepts: Vec<_> = (0..3)
        .map(|_| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                let mut incoming = b.accept().await.unwrap();
                let mut tag = [0u8; 1];
                incoming.stream.read_exact(&mut tag).await.unwrap();
                tag[0]
            })
        })
        .collect();
    let mut streams = Vec::new();
    for tag in 0..3u8 {
        let target = Target::Name(kb.destination().b32().to_uppercase());
        let mut s = a.connect(target).await.unwrap();
        s.write_all(&[tag]).await.unwrap();
        streams.push(s);
    }
    let mut tags = Vec::new();
    for accept in accepts {
        tags.push(accept.await.unwrap());
    }
    tags.sort_unstable();
    assert_eq!(tags, [0, 1, 2]);
}

#[tokio::test]
async fn unreachable_and_unknown_targets() {
    let (kn, ks) = (keys(), keys());
    let mut hosts = HashMap::new();
    hosts.insert("Offline.I2P".to_owned(), kn.destination().clone());
    let core = LocalCore::with_hosts(hosts);
    let session = open(&core, &ks).await;
    let offline = Target::Destination(kn.destination().clone());
    assert!(matches!(
        session.connect(offline.clone()).await,
        Err(CoreError::Unreachable(_))
    ));
    assert!(matches!(
        session.connect(Target::Name("offline.i2p".into())).await,
        Err(CoreError::Unreachable(_))
    ));
    assert_eq!(
        session
            .connect(Target::Name("nobody.i2p".into()))
            .await
            .unwrap_err(),
        CoreError::NotFound
    );
    assert_eq!(
        session
            .connect(Target::Name(kn.destination().b32()))
            .await
            .unwrap_err(),
        CoreError::NotFound
    );
    assert!(matches!(
        session.ping(offline).await,
        Err(CoreError::Unreachable(_))
    ));
    let own = Target::Destination(ks.destination().clone());
    assert!(session.ping(own).await.is_ok());
}

#[tokio::test]
async fn lookup_b32_base64_and_hosts() {
    let (kh, ks) = (keys(), keys());
    let mut hosts = HashMap::new();
    hosts.insert("named.i2p".to_owned(), kh.destination().clone());
    let core = LocalCore::with_hosts(hosts);
    let dest = ks.destination().clone();
    // b32 resolves only while the session is open
    assert_eq!(core.lookup(&dest.b32()).await, Err(CoreError::NotFound));
    let session = open(&core, &ks).await;
    assert_eq!(core.lookup(&dest.b32()).await.unwrap(), dest);
    assert_eq!(
        session.lookup(&dest.b32().to_uppercase()).await.unwrap(),
        dest
    );
    assert_eq!(core.lookup(&dest.to_base64()).await.unwrap(), dest);
    assert_eq!(core.lookup("NAMED.i2p").await.unwrap(), *kh.destination());
    assert_eq!(core.lookup("other.i2p").await, Err(CoreError::NotFound));
    assert_eq!(core.lookup("not base64 !").await, Err(CoreError::NotFound));
    session.close().await;
    assert_eq!(core.lookup(&dest.b32()).await, Err(CoreError::NotFound));
}

#[test]
fn hosts_file_parses_comments_metadata_and_case() {
    let (k1, k2) = (keys(), keys());
    let (d1, d2) = (k1.destination(), k2.destination());
    let text = format!(
        "# comment\n\n  One.i2p={}  \ntwo.i2p={}#!date=1#sig=abc\r\none.i2p={}\n",
        d1.to_base64(),
        d2.to_base64(),
        d2.to_base64()
    );
    let hosts = parse_hosts(&text).unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(&hosts["one.i2p"], d1, "first entry wins");
    assert_eq!(&hosts["two.i2p"], d2);
}

#[test]
fn hosts_file_errors_name_the_line() {
    let d = keys().destination().to_base64();
    let cases = [
        (
            format!("# c\nok.i2p={d}\nnoequals\n"),
            3,
            "expected name=destination",
        ),
        (format!("\n=x{d}\n"), 2, "empty host name"),
        (format!("example.com={d}\n"), 1, "does not end with .i2p"),
        ("bad.i2p=\n".to_owned(), 1, "no destination"),
        (
            "\n\n\n\nbad.i2p=AAAA\n".to_owned(),
            5,
            "bad destination for bad.i2p",
        ),
        (
            "bad.i2p=not*base64\n".to_owned(),
            1,
            "bad destination for bad.i2p",
        ),
    ];
    for (text, line, needle) in cases {
        let err = parse_hosts(&text).unwrap_err();
        let HostsFileError::Line {
            line: got,
            ref reason,
        } = err
        else {
            panic!("expected a line error, got {err:?}");
        };
        assert_eq!(got, line, "{text:?}: {err}");
        assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("hosts file line {line}: "))
        );
    }
}

#[test]
fn hosts_file_io_error_names_the_path() {
    let err = LocalCore::load_hosts_file("/nonexistent/dir/hosts.txt").unwrap_err();
    assert!(matches!(err, HostsFileError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/hosts.txt"));
}

#[test]
fn hosts_file_loads_from_disk() {
    let k = keys();
    let path = std::env::temp_dir().join(format!(
        "bob-local-hosts-{}-{}.txt",
        std::process::id(),
        line!()
    ));
    std::fs::write(&path, format!("site.i2p={}\n", k.destination().to_base64())).unwrap();
    let core = LocalCore::load_hosts_file(&path);
    std::fs::remove_file(&path).unwrap();
    let core = core.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(core.lookup("site.i2p")).unwrap(),
        *k.destination()
    );
}
