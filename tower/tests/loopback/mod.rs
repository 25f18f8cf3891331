//! The server every test file starts: an axum app on a free loopback port, its events captured.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::capture;

/// Serves `app` on a free loopback port with the peer address in `ConnectInfo`.
pub async fn serve_app(app: Router) -> SocketAddr {
    capture::install();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}
