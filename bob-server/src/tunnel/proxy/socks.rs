//! The SOCKS handler (`settunneltype socks`); being written on the `socks` branch.

use tokio::net::TcpStream;

use super::ProxyContext;

/// Serves one accepted connection (see the module docs of [`super`]).
pub(crate) async fn serve(socket: TcpStream, proxy: ProxyContext) {
    // SOCKS5 "general failure" until the handshake lands.
    proxy.reject(socket, &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]).await;
}
