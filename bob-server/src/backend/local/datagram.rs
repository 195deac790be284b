//! Datagrams on the in-process network (the `local` side of [`crate::backend::datagram`]).
//!
//! Each datagram session registers its destination with a bounded inbox
//! ([`DATAGRAM_BACKLOG`] datagrams). `send_to` puts the datagram into the receiver's
//! inbox without waiting: a full inbox, or a destination with no datagram session,
//! loses the datagram as a network would (counted in [`LocalCore::datagrams_lost`]).
//! Repliable datagrams carry the sender's destination, raw ones do not. Payloads over
//! [`LOCAL_MAX_DATAGRAM`] are refused, never truncated.
//!
//! Test hooks ([`LocalCore::set_datagram_faults`]): a loss rate (deterministic
//! pseudo-random, so a run is reproducible) and a delivery delay.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keytools::{Destination, PrivateKeys};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{LocalCore, Network, Registered};
use crate::backend::datagram::{
    Datagram, DatagramCore, DatagramError, DatagramSession, DatagramStyle,
};
use crate::backend::{BoxFuture, CoreError, Options};

/// The largest payload a local datagram carries (the UDP limit, rounded down).
pub const LOCAL_MAX_DATAGRAM: usize = 65_000;

/// Datagrams a session's inbox holds before further ones are lost.
pub const DATAGRAM_BACKLOG: usize = 4096;

/// Injected faults for tests (see the module docs); the default injects none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramFaults {
    /// datagrams lost per million sent (0 = none, 1,000,000 = all)
    pub loss_per_million: u32,
    /// time between `send_to` and delivery
    pub delay: Duration,
}

/// The datagram half of a local network.
#[derive(Default)]
pub(super) struct DatagramNet {
    /// open datagram sessions by destination hash
    sessions: Mutex<HashMap<[u8; 32], Registered<Datagram>>>,
    /// the injected faults
    faults: Mutex<DatagramFaults>,
    /// state of the loss generator (xorshift64)
    rng: AtomicU64,
    /// datagrams sent but never delivered (no receiver, full inbox, injected loss)
    lost: AtomicU64,
}

impl DatagramNet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Registered<Datagram>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> DatagramFaults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The destination of the open datagram session whose b32 is `b32` (lower-case).
    pub(super) fn find_b32(&self, b32: &str) -> Option<Destination> {
        self.lock()
            .values()
            .find(|r| r.b32 == b32)
            .map(|r| r.destination.clone())
    }

    /// Whether the loss generator drops the next datagram.
    fn lose(&self, per_million: u32) -> bool {
        if per_million == 0 {
            return false;
        }
        // xorshift64: a fixed sequence, so runs with the same faults lose the same
        // datagrams. Written here because a test hook needs no crate.
        let mut x = self.rng.load(Ordering::Relaxed);
        if x == 0 {
            x = 0x9E37_79B9_7F4A_7C15;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x % 1_000_000 < u64::from(per_million)
    }

    fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    fn unregister(&self, hash: &[u8; 32], id: u64) {
        let mut sessions = self.lock();
        if sessions.get(hash).is_some_and(|r| r.id == id) {
            sessions.remove(hash);
        }
    }
}

impl LocalCore {
    /// Sets the faults injected into datagrams sent from now on (a test hook).
    pub fn set_datagram_faults(&self, faults: DatagramFaults) {
        *self
            .network
            .datagrams
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Datagrams sent on this network and never delivered.
    pub fn datagrams_lost(&self) -> u64 {
        self.network.datagrams.lost.load(Ordering::Relaxed)
    }
}

impl DatagramCore for LocalCore {
    fn open_datagram_session(
        &self,
        keys: PrivateKeys,
        options: Options,
        style: DatagramStyle,
    ) -> BoxFuture<'_, Result<Arc<dyn DatagramSession>, CoreError>> {
        // Options tune a router; the local network can send either style on any session.
        let _ = (options, style);
        Box::pin(async move {
            let destination = keys.destination().clone();
            let hash = destination.hash();
            let (tx, rx) = mpsc::channel(DATAGRAM_BACKLOG);
            let id = self.network.next_id.fetch_add(1, Ordering::Relaxed);
            super::register(
                &mut self.network.datagrams.lock(),
                hash,
                id,
                &destination,
                tx,
            )?;
            tracing::debug!(b32 = %destination.b32(), "local datagram session registered");
            let session: Arc<dyn DatagramSession> = Arc::new(LocalDatagramSession {
                destination,
                hash,
                id,
                network: Arc::clone(&self.network),
                inbox: tokio::sync::Mutex::new(rx),
                closed: CancellationToken::new(),
            });
            Ok(session)
        })
    }

    /// The stream and datagram tables are separate: a destination can be in both.
    fn shares_destinations(&self) -> bool {
        true
    }
}

/// A datagram session on the local network.
struct LocalDatagramSession {
    destination: Destination,
    hash: [u8; 32],
    id: u64,
    network: Arc<Network>,
    /// a tokio mutex: `recv` holds it across `.await`
    inbox: tokio::sync::Mutex<mpsc::Receiver<Datagram>>,
    closed: CancellationToken,
}

impl fmt::Debug for LocalDatagramSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDatagramSession")
            .field("b32", &self.destination.b32())
            .field("closed", &self.closed.is_cancelled())
            .finish()
    }
}

impl DatagramSession for LocalDatagramSession {
    fn destination(&self) -> &Destination {
        &self.destination
    }

    fn max_payload(&self) -> usize {
        LOCAL_MAX_DATAGRAM
    }

    fn send_to<'a>(
        &'a self,
        to: &'a Destination,
        style: DatagramStyle,
        from_port: u16,
        to_port: u16,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DatagramError>> {
        Box::pin(async move {
            if self.closed.is_cancelled() {
                return Err(DatagramError::Closed);
            }
            if payload.len() > LOCAL_MAX_DATAGRAM {
                return Err(DatagramError::Oversize {
                    size: payload.len(),
                    max: LOCAL_MAX_DATAGRAM,
                });
            }
            let net = &self.network.datagrams;
            let faults = net.faults();
            if net.lose(faults.loss_per_million) {
                net.lost();
                return Ok(());
            }
            let Some(inbox) = net.lock().get(&to.hash()).map(|r| r.inbox.clone()) else {
                // Nobody listens there: lost, as on a network.
                net.lost();
                return Ok(());
            };
            let datagram = Datagram {
                from: (style == DatagramStyle::Repliable).then(|| self.destination.clone()),
                style,
                from_port,
                to_port,
                payload: bytes::Bytes::copy_from_slice(payload),
            };
            if faults.delay.is_zero() {
                if inbox.try_send(datagram).is_err() {
                    net.lost();
                }
            } else {
                let network = Arc::clone(&self.network);
                tokio::spawn(async move {
                    tokio::time::sleep(faults.delay).await;
                    if inbox.try_send(datagram).is_err() {
                        network.datagrams.lost();
                    }
                });
            }
            Ok(())
        })
    }

    fn recv(&self) -> BoxFuture<'_, Result<Datagram, DatagramError>> {
        Box::pin(async move {
            let mut inbox = tokio::select! {
                guard = self.inbox.lock() => guard,
                () = self.closed.cancelled() => return Err(DatagramError::Closed),
            };
            tokio::select! {
                biased;
                () = self.closed.cancelled() => Err(DatagramError::Closed),
                next = inbox.recv() => next.ok_or(DatagramError::Closed),
            }
        })
    }

    fn lookup<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Destination, DatagramError>> {
        let result = self
            .network
            .lookup(name)
            .map_err(|_| DatagramError::NotFound);
        Box::pin(async move { result })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.cancel();
            self.network.datagrams.unregister(&self.hash, self.id);
            let mut inbox = self.inbox.lock().await;
            inbox.close();
            while inbox.try_recv().is_ok() {}
        })
    }
}

impl Drop for LocalDatagramSession {
    fn drop(&mut self) {
        self.network.datagrams.unregister(&self.hash, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::StreamingCore;

    fn keys() -> PrivateKeys {
        PrivateKeys::generate(keytools::SigType::Ed25519, keytools::CryptoType::ElGamal)
            .expect("key generation")
    }

    async fn open(core: &LocalCore, style: DatagramStyle) -> Arc<dyn DatagramSession> {
        core.datagrams()
            .expect("local carries datagrams")
            .open_datagram_session(keys(), Vec::new(), style)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn repliable_carries_the_sender_raw_does_not() {
        let core = LocalCore::new();
        let a = open(&core, DatagramStyle::Repliable).await;
        let b = open(&core, DatagramStyle::Raw).await;
        a.send_to(b.destination(), DatagramStyle::Repliable, 5, 6, b"hi")
            .await
            .unwrap();
        let got = b.recv().await.unwrap();
        assert_eq!(got.from.as_ref(), Some(a.destination()));
        assert_eq!(
            (got.style, got.from_port, got.to_port, &got.payload[..]),
            (DatagramStyle::Repliable, 5, 6, &b"hi"[..])
        );
        b.send_to(a.destination(), DatagramStyle::Raw, 0, 0, b"raw")
            .await
            .unwrap();
        let got = a.recv().await.unwrap();
        assert_eq!((got.from, got.style), (None, DatagramStyle::Raw));
        assert_eq!(&got.payload[..], b"raw");
    }

    #[tokio::test]
    async fn oversize_is_refused_not_truncated() {
        let core = LocalCore::new();
        let a = open(&core, DatagramStyle::Repliable).await;
        assert_eq!(a.max_payload(), LOCAL_MAX_DATAGRAM);
        let big = vec![0u8; LOCAL_MAX_DATAGRAM + 1];
        assert_eq!(
            a.send_to(a.destination(), DatagramStyle::Raw, 0, 0, &big)
                .await,
            Err(DatagramError::Oversize {
                size: LOCAL_MAX_DATAGRAM + 1,
                max: LOCAL_MAX_DATAGRAM
            })
        );
        let full = vec![7u8; LOCAL_MAX_DATAGRAM];
        a.send_to(a.destination(), DatagramStyle::Raw, 0, 0, &full)
            .await
            .unwrap();
        assert_eq!(a.recv().await.unwrap().payload.len(), LOCAL_MAX_DATAGRAM);
    }

    #[tokio::test]
    async fn b32_lookup_finds_datagram_sessions_and_close_ends_recv() {
        let core = LocalCore::new();
        let a = open(&core, DatagramStyle::Repliable).await;
        let b32 = a.destination().b32();
        assert_eq!(&a.lookup(&b32).await.unwrap(), a.destination());
        assert_eq!(a.lookup("nobody.i2p").await, Err(DatagramError::NotFound));
        a.close().await;
        assert_eq!(a.recv().await, Err(DatagramError::Closed));
        assert!(a.lookup(&b32).await.is_err());
    }

    #[tokio::test]
    async fn duplicate_destination_is_refused() {
        let core = LocalCore::new();
        let k = keys();
        let dg = core.datagrams().unwrap();
        let _a = dg
            .open_datagram_session(k.clone(), Vec::new(), DatagramStyle::Raw)
            .await
            .unwrap();
        assert_eq!(
            dg.open_datagram_session(k, Vec::new(), DatagramStyle::Raw)
                .await
                .unwrap_err(),
            CoreError::DuplicateDestination
        );
    }

    #[tokio::test]
    async fn faults_lose_and_delay() {
        let core = LocalCore::new();
        let a = open(&core, DatagramStyle::Repliable).await;
        let b = open(&core, DatagramStyle::Repliable).await;
        core.set_datagram_faults(DatagramFaults {
            loss_per_million: 1_000_000,
            delay: Duration::ZERO,
        });
        a.send_to(b.destination(), DatagramStyle::Raw, 0, 0, b"x")
            .await
            .unwrap();
        assert_eq!(core.datagrams_lost(), 1);
        core.set_datagram_faults(DatagramFaults {
            loss_per_million: 500_000,
            delay: Duration::ZERO,
        });
        for _ in 0..1000 {
            a.send_to(b.destination(), DatagramStyle::Raw, 0, 0, b"x")
                .await
                .unwrap();
        }
        let lost = core.datagrams_lost() - 1;
        assert!((350..650).contains(&lost), "lost {lost} of 1000 at 50 %");
        core.set_datagram_faults(DatagramFaults {
            loss_per_million: 0,
            delay: Duration::from_secs(5),
        });
        let c = open(&core, DatagramStyle::Repliable).await;
        tokio::time::pause();
        a.send_to(c.destination(), DatagramStyle::Raw, 0, 0, b"late")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let got = c.recv().await.unwrap();
        assert_eq!(&got.payload[..], b"late");
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn sending_to_nobody_is_lost_not_an_error() {
        let core = LocalCore::new();
        let a = open(&core, DatagramStyle::Repliable).await;
        let nobody = keys().destination().clone();
        a.send_to(&nobody, DatagramStyle::Repliable, 0, 0, b"x")
            .await
            .unwrap();
        assert_eq!(core.datagrams_lost(), 1);
    }
}
