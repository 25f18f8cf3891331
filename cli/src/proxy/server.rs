//! The listener: HTTP/1.1 connections served by hyper, each request handed to its route's
//! `TwilioSignatureLayer` + forwarder, one log line and one count per request, and the drain on SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::{Layer, Service};
use twilio_signature::{Secret, Validator};
use twilio_signature_tower::idempotency::{Idempotency, MemoryStore, RedisStore, RetryAnswer};
use twilio_signature_tower::{PeerAddr, TwilioSignature, TwilioSignatureLayer};

use super::config::{self, Settings};
use super::deadline::Deadline;
use super::forward::{self, Arrived, Forward, Passed};
use super::log::{self, Access};
use super::metrics::{Metrics, Reason};
use super::pool::Pool;
use super::{admin, Failure};

/// What the client gets back: the layer's response (the forwarder's body, or a refusal's text), or the
/// proxy's own answer (no route).
type Body = Either<twilio_signature_tower::ResponseBody<forward::Body>, Full<Bytes>>;

/// Extra time given to requests in flight at shutdown, past the upstream timeout.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The layer's refusal line (`twilio webhook refused: ...`), put in the refusal's extensions.
#[derive(Clone, Debug)]
struct Refused(String);

struct Route {
    prefix: String,
    /// Shown in log lines.
    upstream: String,
    service: TwilioSignature<Forward, Vec<Secret>>,
}

/// What the App of every thread shares: the counters, the tunnel tracker (each WebSocket tunnel holds
/// a sender while it runs, so that shutdown can wait for it) and the retry store.
#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    tunnels: mpsc::WeakSender<()>,
    retries: Idempotency,
}

pub struct App {
    routes: Vec<Route>,
    metrics: Arc<Metrics>,
    body_timeout: Duration,
}

impl App {
    fn new(settings: &Settings, shared: &Shared) -> Result<Self, Failure> {
        let mut routes = Vec::with_capacity(settings.routes.len());
        for route in &settings.routes {
            let usage = |e: twilio_signature_tower::ConfigError| Failure::usage(e.to_string());
            let mut layer =
                TwilioSignatureLayer::new(Validator::with_secrets(route.secrets.clone()))
                    .trusted_proxies(&settings.trusted_proxies)
                    .map_err(usage)?
                    .body_limit(settings.body_limit)
                    // The refusal line goes into the request's own log line instead of a second one.
                    .on_reject(|_, rejection| {
                        let mut response = rejection.response();
                        response
                            .extensions_mut()
                            .insert(Refused(rejection.to_string()));
                        response
                    })
                    .idempotency(shared.retries.clone());
            if let Some(base_url) = &route.base_url {
                layer = layer.base_url(base_url).map_err(usage)?;
            }
            let forward = Forward {
                route: Arc::new(forward::Route {
                    upstream: route.upstream.clone(),
                    key_id: route.key_id.clone(),
                    pool: Pool::new(route.upstream.address()),
                    timeout: settings.upstream_timeout,
                    metrics: Arc::clone(&shared.metrics),
                    tunnels: shared.tunnels.clone(),
                }),
            };
            routes.push(Route {
                prefix: route.prefix.clone(),
                upstream: route.upstream.authority.to_string(),
                service: layer.layer(forward),
            });
        }
        Ok(Self {
            routes,
            metrics: Arc::clone(&shared.metrics),
            body_timeout: settings.body_timeout,
        })
    }

    pub fn upstreams(settings: &Settings) -> Vec<String> {
        let mut addresses: Vec<String> = settings
            .routes
            .iter()
            .map(|r| r.upstream.address())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let mut request = request.map(|body| Deadline::new(body, self.body_timeout));
        let arrived = Instant::now();
        let method = request.method().clone();
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        request.extensions_mut().insert(PeerAddr(peer));
        request.extensions_mut().insert(Arrived(arrived));
        let path = request.uri().path();
        let answer = |status: StatusCode, reason: Reason, detail: &'static str| {
            self.metrics.request(reason);
            Access {
                peer,
                method: method.as_str(),
                target: &target,
                status: status.as_u16(),
                outcome: reason.outcome(),
                reason: reason.label(),
                upstream: None,
                verified: None,
                upstream_time: None,
                total_time: arrived.elapsed(),
                detail: Some(detail),
            }
            .log();
            let mut response =
                Response::new(Either::Right(Full::new(Bytes::from(format!("{detail}\n")))));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        };
        if let Some((status, reason, detail)) = refused_before_routing(&request) {
            return Ok(answer(status, reason, detail));
        }
        let Some(route) = self
            .routes
            .iter()
            .find(|r| config::matches(&r.prefix, path))
        else {
            return Ok(answer(
                StatusCode::NOT_FOUND,
                Reason::NoRoute,
                "no route in --config takes this path",
            ));
        };
        // The forwarder is always ready, and so is the layer in front of it.
        let mut service = route.service.clone();
        let Ok(response) = service.call(request).await;
        let refusal = response.extensions().get::<Refused>().map(|r| r.0.as_str());
        let status = response.status().as_u16();
        let passed = response.extensions().get::<Passed>();
        let retry = response
            .extensions()
            .get::<RetryAnswer>()
            .map(|answer| match answer {
                RetryAnswer::Replayed => Reason::Replayed,
                RetryAnswer::StillRunning => Reason::StillRunning,
                // `RetryAnswer` may grow: what the layer adds later counts as the store's.
                _ => Reason::StoreUnavailable,
            });
        let (reason, detail) = if let Some(passed) = passed {
            (passed.reason, passed.detail.as_deref())
        } else if let Some(retry) = retry {
            (retry, None)
        } else {
            self.metrics.verify(arrived.elapsed());
            (Reason::of_refusal(status, refusal), refusal)
        };
        self.metrics.request(reason);
        Access {
            peer,
            method: method.as_str(),
            target: &target,
            status,
            outcome: reason.outcome(),
            reason: reason.label(),
            upstream: Some(&route.upstream),
            verified: passed.and_then(|p| p.verified.to_str().ok()),
            upstream_time: passed.and_then(|p| p.upstream_time),
            total_time: arrived.elapsed(),
            detail,
        }
        .log();
        Ok(response.map(Either::Left))
    }
}

/// What is refused before a route is chosen, whatever the route.
fn refused_before_routing<B>(request: &Request<B>) -> Option<(StatusCode, Reason, &'static str)> {
    // A path the app could resolve to another route than the one chosen here (a dot segment, an
    // encoded slash or backslash) is refused before any route or secret is picked: with several
    // routes, a token of one would otherwise reach another's handler.
    if let Some(detail) = config::ambiguous(request.uri().path()) {
        return Some((StatusCode::BAD_REQUEST, Reason::BadRequest, detail));
    }
    // A tunnel to wherever the client names is not a webhook: Twilio sends GET and POST (and
    // WebSocket handshakes, which are GETs).
    if request.method() == Method::CONNECT {
        return Some((
            StatusCode::METHOD_NOT_ALLOWED,
            Reason::RefusedOther,
            "CONNECT is not forwarded",
        ));
    }
    None
}

/// Serves until SIGTERM or Ctrl-C, then drains.
///
/// One single-threaded tokio runtime per CPU, each with its own upstream connection pool, the way nginx
/// runs one event loop per worker: a request, its upstream connection and its response stay on one
/// thread (no wake-ups across threads). This thread accepts and hands the connections out in turn, and
/// also watches the signals and serves the admin listener.
pub fn serve(settings: &Settings) -> Result<(), Failure> {
    log::init(settings.log_format);
    let cannot_listen =
        |e: std::io::Error| Failure::usage(format!("cannot listen on {}: {e}", settings.listen));
    let listener = std::net::TcpListener::bind(settings.listen).map_err(cannot_listen)?;
    listener.set_nonblocking(true).map_err(cannot_listen)?;
    let local = listener.local_addr().map_err(cannot_listen)?;
    let metrics = Arc::new(Metrics::default());
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (stop, stopping) = watch::channel(false);
    let (tunnels, mut tunnels_closed) = mpsc::channel::<()>(1);
    let runtime =
        runtime().map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    let (retries, redis) = retry_store(settings, &runtime)?;
    let shared = Shared {
        metrics: Arc::clone(&metrics),
        tunnels: tunnels.downgrade(),
        retries,
    };
    let workers = start_workers(settings, threads - 1, &shared, &stopping)?;
    let app = Arc::new(App::new(settings, &shared)?);
    drop(shared);
    let served = runtime.block_on(async move {
        log::buffered();
        let listener = TcpListener::from_std(listener).map_err(cannot_listen)?;
        let admin = match settings.admin_listen {
            Some(address) => {
                Some(admin::start(address, App::upstreams(settings), redis, &metrics).await?)
            }
            None => None,
        };
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| Failure::usage(format!("cannot watch SIGTERM: {e}")))?;
        log::note(
            "INFO",
            &format!(
                "listening on {local}{} ({threads} threads); routes: {}",
                admin.map(|a| format!(", admin on {a}")).unwrap_or_default(),
                describe_routes(settings)
            ),
        );
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        let mut next = 0;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: wait instead of spinning.
                            log::note("WARN", &format!("accept failed: {e}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    // In turn: this thread, then each worker.
                    next = (next + 1) % threads;
                    let handed = match (next, stream.into_std()) {
                        (0, Ok(stream)) => Err(stream),
                        (i, Ok(stream)) => workers[i - 1].send((stream, peer)).map_err(|e| e.0 .0),
                        (_, Err(_)) => continue,
                    };
                    if let Err(stream) = handed {
                        if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                            let app = Arc::clone(&app);
                            tokio::spawn(connection(app, stream, peer, stopping.clone(), open.clone()));
                        }
                    }
                }
                _ = terminate.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        // New connections are refused from here on; those open finish their request in flight.
        drop(listener);
        drop(workers);
        drop(stopping);
        drop(open);
        log::note(
            "INFO",
            "shutting down: no new connections; waiting for requests in flight",
        );
        let _ = stop.send(true);
        drop(tunnels);
        let drain = settings.upstream_timeout + DRAIN_GRACE;
        let drained = async {
            stop.closed().await;
            // This runtime's own connections are among those just waited for.
            let _ = all_closed.recv().await;
            let _ = tunnels_closed.recv().await;
        };
        finish(drain, drained).await;
        Ok(())
    });
    log::flush();
    served
}

/// The retry store every route and thread shares: Redis with `--redis` (its connection's task runs on
/// `runtime`, this thread's), else one in this process. The Redis store is also returned for /readyz.
fn retry_store(
    settings: &Settings,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Idempotency, Option<RedisStore>), Failure> {
    let Some(url) = &settings.redis else {
        return Ok((Idempotency::new(MemoryStore::new()), None));
    };
    let _context = runtime.enter();
    let store = RedisStore::open(url)
        .map_err(|e| Failure::usage(format!("--redis: {e} (redis://HOST:PORT/DB expected)")))?;
    Ok((Idempotency::new(store.clone()), Some(store)))
}

/// `count` worker threads, each running [`worker`] on its own runtime; returns where to hand each one
/// its connections.
fn start_workers(
    settings: &Settings,
    count: usize,
    shared: &Shared,
    stopping: &watch::Receiver<bool>,
) -> Result<Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>, Failure> {
    let mut workers = Vec::with_capacity(count);
    for _ in 0..count {
        let app = Arc::new(App::new(settings, shared)?);
        let (handoff, connections) = mpsc::unbounded_channel();
        let stopping = stopping.clone();
        std::thread::Builder::new()
            .name("twsig-proxy".into())
            .spawn(move || match runtime() {
                Ok(runtime) => runtime.block_on(worker(connections, app, stopping)),
                Err(e) => log::note("ERROR", &format!("cannot start a worker runtime: {e}")),
            })
            .map_err(|e| Failure::usage(format!("cannot start a worker thread: {e}")))?;
        workers.push(handoff);
    }
    Ok(workers)
}

/// Waits for `drained` (requests in flight, then WebSocket tunnels such as a Media Streams call) for at
/// most `drain`, and says how it ended.
async fn finish(drain: Duration, drained: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(drain, drained).await.is_err() {
        log::note(
            "WARN",
            &format!("requests or WebSocket tunnels still open after {drain:?}: closing them"),
        );
    } else {
        log::note(
            "INFO",
            "shut down: every request in flight and WebSocket tunnel finished",
        );
    }
}

/// A runtime for one thread. Its log lines are written each time the thread runs out of work (see
/// [`log::buffered`]).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(log::flush)
        .build()
}

fn describe_routes(settings: &Settings) -> String {
    let routes: Vec<String> = settings
        .routes
        .iter()
        .map(|r| {
            format!(
                "{} -> http://{}{} ({} secret(s){})",
                if r.prefix.is_empty() { "/" } else { &r.prefix },
                r.upstream.authority,
                r.upstream.prefix,
                r.secrets.len(),
                r.base_url
                    .as_deref()
                    .map(|b| format!(", base URL {b}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    routes.join("; ")
}

/// A worker thread's runtime: serves the connections handed to it until the acceptor stops, then
/// until the process ends (each connection holds a `stopping` receiver and each tunnel a sender, which
/// the main thread waits for, within a bound).
async fn worker(
    mut connections: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    app: Arc<App>,
    stopping: watch::Receiver<bool>,
) {
    log::buffered();
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    while let Some((stream, peer)) = connections.recv().await {
        if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
            let app = Arc::clone(&app);
            tokio::spawn(connection(
                app,
                stream,
                peer,
                stopping.clone(),
                open.clone(),
            ));
        }
    }
    drop(stopping);
    drop(open);
    let _ = all_closed.recv().await;
    // Keeps this runtime running its WebSocket tunnels: the main thread ends the process once they
    // are done too, or at the end of the drain.
    std::future::pending::<()>().await;
}

/// One client connection: requests in turn until it closes, or until shutdown lets the one in flight
/// finish.
async fn connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    // The connection's lines are written before `_open` says it has closed (shutdown waits for that
    // and then ends the process).
    let _flush = FlushOnDrop;
    let service = service_fn(move |request| Arc::clone(&app).handle(peer, request));
    let connection = http1::Builder::new()
        // The request's header names reach the upstream as the client wrote them.
        .preserve_header_case(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Writes the thread's pending log lines when dropped.
struct FlushOnDrop;

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        log::flush();
    }
}
