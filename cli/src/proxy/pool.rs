//! The upstream's keep-alive HTTP/1.1 connections, one pool per route and runtime thread (each thread
//! serves its own client connections, the way an nginx worker keeps its own upstream keep-alive cache).
//!
//! A connection is hyper's `client::conn::http1`: its [`SendRequest`] handle waits here between
//! requests, its connection task runs on the thread that opened it. A handle goes back into the pool as
//! soon as the response head arrives, and is taken again only once hyper says it is ready (the previous
//! response read to its end). hyper-util's general-purpose pool did the same with a shared map keyed by
//! scheme and authority, a checkout future and a waiter list per request: a tenth of the proxy's own work
//! per webhook, for a pool that here always has one key and one thread.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept per route and thread beyond those in use; more are closed when returned.
const MAX_IDLE: usize = 256;

/// A connection unused for this long is closed at the next checkout (hyper-util's pool closed them
/// after the same time, and nginx's upstream `keepalive_timeout` defaults to it): the pool shrinks
/// back after a burst.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Keep-alive connections to one upstream, for one thread.
#[derive(Debug)]
pub struct Pool {
    /// `HOST:PORT` to connect to.
    address: String,
    /// [`IDLE_TIMEOUT`] (shorter in tests).
    idle_timeout: Duration,
    /// Handles of open connections, busy or idle (hyper's `is_ready` tells which), each with when it
    /// was last handed back.
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
}

/// Why the upstream gave no response.
#[derive(Debug)]
pub enum Failed {
    Connect(std::io::Error),
    Http(hyper::Error),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Http(e) => write!(f, "{e}"),
        }
    }
}

impl StdError for Failed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect(e) => e.source(),
            Self::Http(e) => e.source(),
        }
    }
}

impl Pool {
    pub fn new(address: String) -> Self {
        Self {
            address,
            idle_timeout: IDLE_TIMEOUT,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (origin-form, with its Host header) on an idle connection, or on a new one. A
    /// request that a pooled connection closed before sending (the upstream's keep-alive timeout)
    /// is sent again on a new connection; one that was sent is never sent twice.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Failed> {
        loop {
            let (mut sender, pooled) = match self.checkout() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(Failed::Http(error.into_error())),
                },
            }
        }
    }

    /// A connection ready for a request; closed ones, and ready ones idle for [`IDLE_TIMEOUT`], are
    /// dropped on the way (dropping the handle closes the connection).
    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|(sender, used)| {
            let expired = sender.is_ready() && now.duration_since(*used) > self.idle_timeout;
            !sender.is_closed() && !expired
        });
        let ready = idle.iter().rposition(|(sender, _)| sender.is_ready())?;
        Some(idle.swap_remove(ready).0)
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failed> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(Failed::Connect)?;
        let _ = stream.set_nodelay(true);
        // The request's header names go out as the client wrote them (the server side keeps their
        // case). The response's reach the client in lower case, as over HTTP/2: keeping their case
        // too cost a tenth of the proxy's own work per request, for names no client may rely on.
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(Failed::Http)?;
        // Runs until the upstream or the proxy closes the connection; upgrades become tunnels.
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A keep-alive upstream (hyper's server) answering `200 ok`; counts the connections it accepts.
    async fn upstream() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let ok = hyper::service::service_fn(|_| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), ok),
                );
            }
        });
        (address, accepted)
    }

    async fn get(pool: &Pool) -> u16 {
        let request = Request::get("/")
            .header("host", "upstream")
            .body(Full::default())
            .unwrap();
        let response = pool.send(request).await.unwrap();
        let status = response.status().as_u16();
        // Read to the end, so that hyper makes the connection ready again.
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
        status
    }

    #[tokio::test]
    async fn a_connection_is_reused_until_it_has_been_idle_too_long() {
        let (address, accepted) = upstream().await;
        let mut pool = Pool::new(address);
        pool.idle_timeout = Duration::from_millis(200);
        for _ in 0..5 {
            assert_eq!(get(&pool).await, 200);
            tokio::task::yield_now().await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "five requests, one connection"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(get(&pool).await, 200);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "idle too long: a new connection"
        );
        assert_eq!(
            pool.idle.lock().unwrap().len(),
            1,
            "the old one was dropped"
        );
    }
}
