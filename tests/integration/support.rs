//! What the tests moved here from bob-server's `tests/` share beyond `bob-testkit`
//! (used as `crate::support`): the bob-server specific helpers.

use bob_server::tunnel::Endpoint;
pub(crate) use bob_testkit::{DEADLINE, free_port, pattern, within};
use keytools::{CryptoType, PrivateKeys, SigType};

/// The application behind a server tunnel that is not quiet: reads the peer line (sent
/// on the channel), then echoes every byte after it.
pub(crate) async fn echo_app() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    bob_testkit::echo_app(false).await
}

/// Fresh Ed25519/ElGamal keys.
pub(crate) fn keys() -> PrivateKeys {
    PrivateKeys::generate(SigType::Ed25519, CryptoType::ElGamal).expect("key generation")
}

/// `127.0.0.1:port` as a tunnel endpoint.
pub(crate) fn local(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".to_owned(),
        port,
    }
}
