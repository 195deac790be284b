//! The HTTP proxy handler (`settunneltype httpproxy`): written on the `http` branch,
//! which replaces this file. Until then every request is answered
//! `501 Not Implemented` so that the interface ([`super::ProxyContext`]) compiles
//! and is exercised.

use tokio::net::TcpStream;

use super::ProxyContext;

/// Serves one accepted connection (see the module docs of [`super`]).
pub(crate) async fn serve(socket: TcpStream, proxy: ProxyContext) {
    let reply = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    proxy.reject(socket, reply).await;
}
