//! The HTTP exporter: listeners on a thread of their own with a small single-threaded tokio
//! runtime. It reads the registry directly and never touches Python.
//!
//! Bounded by construction: request headers (16 KiB buffer), header read time, connection
//! lifetime, TLS handshake time and the number of concurrent connections (past it, plain HTTP
//! clients get an immediate 503 and TLS clients a closed connection).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::auth::BasicAuth;
use super::health::ReportContext;
use super::logging;
use super::registry::Registry;
use super::routes::{self, Listener, ServerState};
use super::tls;
use super::webconfig::WebConfig;
use crate::errors::CoreError;

/// Largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How the exporter listens.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Host or address to bind (default `127.0.0.1`).
    pub addr: String,
    /// Port of the main listener (0: any free port).
    pub port: u16,
    /// Optional second port serving the safety families only.
    pub safety_port: Option<u16>,
    /// Web configuration (TLS, basic auth, headers).
    pub web: WebConfig,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time allowed to receive a request's headers (and the TLS handshake).
    pub header_timeout: Duration,
    /// Longest a connection may stay open.
    pub connection_timeout: Duration,
    /// Memory limit for the memory health check (`None`: detect).
    pub memory_limit_bytes: Option<u64>,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1".into(),
            port: 8000,
            safety_port: None,
            web: WebConfig::default(),
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
            memory_limit_bytes: None,
        }
    }
}

/// A running exporter; [`Exporter::stop`] stops it and waits; dropping it stops it without waiting.
#[derive(Debug)]
pub struct Exporter {
    addrs: Vec<SocketAddr>,
    tls: bool,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

fn io_err(what: String, e: &std::io::Error) -> CoreError {
    CoreError::Exporter {
        message: format!("{what}: {e}"),
        errno: e.raw_os_error(),
    }
}

fn bind(addr: &str, port: u16) -> Result<StdListener, CoreError> {
    let sock = (addr, port)
        .to_socket_addrs()
        .map_err(|e| CoreError::config("addr", format!("cannot resolve {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| CoreError::config("addr", format!("{addr:?} resolves to no address")))?;
    let l = StdListener::bind(sock).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            io_err(format!("port {port} on {addr} is already in use"), &e)
        } else {
            io_err(format!("cannot listen on {sock}"), &e)
        }
    })?;
    l.set_nonblocking(true)
        .map_err(|e| io_err(format!("cannot listen on {sock}"), &e))?;
    Ok(l)
}

fn header_pairs(web: &WebConfig) -> Vec<(HeaderName, HeaderValue)> {
    web.headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

impl Exporter {
    /// Binds the listeners and starts serving `registry`.
    ///
    /// Errors:
    ///     [`CoreError::Exporter`] when a port is taken or cannot be bound (with its errno);
    ///     [`CoreError::Config`] for a bad address, option or TLS file.
    pub fn start(registry: Arc<Registry>, cfg: ExporterConfig) -> Result<Self, CoreError> {
        if cfg.max_connections == 0 {
            return Err(CoreError::config("max_connections", "must be at least 1"));
        }
        if cfg.header_timeout.is_zero() || cfg.connection_timeout.is_zero() {
            return Err(CoreError::config("timeout", "must be positive"));
        }
        let acceptor = match &cfg.web.tls {
            Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let mut std_listeners = vec![(bind(&cfg.addr, cfg.port)?, Listener::Main)];
        if let Some(p) = cfg.safety_port {
            std_listeners.push((bind(&cfg.addr, p)?, Listener::Safety));
        }
        let addrs = std_listeners
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_err("cannot read the bound address".into(), &e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("neorl-exporter")
            .build()
            .map_err(|e| io_err("cannot start the exporter runtime".into(), &e))?;
        let listeners = {
            let _ctx = rt.enter();
            std_listeners
                .into_iter()
                .map(|(l, kind)| Ok((TcpListener::from_std(l)?, kind)))
                .collect::<Result<Vec<_>, std::io::Error>>()
                .map_err(|e| io_err("cannot register the listener".into(), &e))?
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let names: Vec<String> = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
        let state = Arc::new(ServerState {
            registry,
            auth: BasicAuth::new(&cfg.web.users).map(Arc::new),
            headers: header_pairs(&cfg.web),
            report: ReportContext {
                memory_limit_bytes: cfg.memory_limit_bytes,
                exporter_listeners: Some(names.clone()),
            },
        });
        let auth = state.auth.is_some();
        let (stop_tx, stop_rx) = watch::channel(false);
        let limits = Limits {
            sem: Arc::new(Semaphore::new(cfg.max_connections)),
            header_timeout: cfg.header_timeout,
            connection_timeout: cfg.connection_timeout,
        };
        let tls_on = acceptor.is_some();
        let thread = std::thread::Builder::new()
            .name("neorl-exporter".into())
            .spawn(move || {
                rt.block_on(async move {
                    for (l, kind) in listeners {
                        let ctx = Conn {
                            state: state.clone(),
                            kind,
                            tls: acceptor.clone(),
                            limits: limits.clone(),
                        };
                        tokio::spawn(accept_loop(l, ctx, stop_rx.clone()));
                    }
                    let mut stop = stop_rx;
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                });
            })
            .map_err(|e| io_err("cannot start the exporter thread".into(), &e))?;
        logging::exporter_started(&names.join(", "), tls_on, auth);
        Ok(Self {
            addrs,
            tls: tls_on,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Port of the main listener.
    pub fn port(&self) -> u16 {
        self.addrs.first().map_or(0, |a| a.port())
    }

    /// Port of the safety listener, if any.
    pub fn safety_port(&self) -> Option<u16> {
        self.addrs.get(1).map(|a| a.port())
    }

    /// Base URL of the main listener, e.g. `http://127.0.0.1:8000/`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        self.addrs
            .first()
            .map_or(String::new(), |a| format!("{scheme}://{a}/"))
    }

    /// True until [`Exporter::stop`].
    pub fn running(&self) -> bool {
        self.thread.is_some()
    }

    /// Stops serving and joins the exporter thread (bounded: open connections are dropped).
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let names: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
            logging::exporter_stopped(&names.join(", "));
        }
    }
}

impl Drop for Exporter {
    /// Signals the thread and lets it finish on its own: a drop may run where the GIL is held
    /// (Python's garbage collector), and the thread may be waiting for the GIL to log.
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        self.thread.take();
    }
}

#[derive(Debug, Clone)]
struct Limits {
    sem: Arc<Semaphore>,
    header_timeout: Duration,
    connection_timeout: Duration,
}

#[derive(Clone)]
struct Conn {
    state: Arc<ServerState>,
    kind: Listener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
}

async fn accept_loop(listener: TcpListener, ctx: Conn, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match ctx.limits.sem.clone().try_acquire_owned() {
            Ok(permit) => {
                let c = ctx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    connection(stream, peer, c).await;
                });
            }
            Err(_) => {
                let plain = ctx.tls.is_none();
                tokio::spawn(refuse_busy(stream, plain));
            }
        }
    }
}

async fn refuse_busy(stream: TcpStream, plain: bool) {
    if plain {
        let msg = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n";
        // A best-effort single write: the reply is far smaller than any socket buffer.
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.writable()).await;
        let _ = stream.try_write(msg);
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, c: Conn) {
    let _ = stream.set_nodelay(true);
    let lifetime = c.limits.connection_timeout;
    match c.tls.clone() {
        None => {
            let _ = tokio::time::timeout(lifetime, serve(stream, peer, c)).await;
        }
        Some(acc) => {
            match tokio::time::timeout(c.limits.header_timeout, acc.accept(stream)).await {
                Ok(Ok(s)) => {
                    let _ = tokio::time::timeout(lifetime, serve(s, peer, c)).await;
                }
                _ => logging::exporter_refused("tls handshake failed", &peer.to_string()),
            }
        }
    }
}

async fn serve<IO>(io: IO, peer: SocketAddr, c: Conn)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_http(
        io,
        peer,
        c.state.clone(),
        c.kind,
        c.limits.header_timeout,
        false,
    )
    .await;
}

/// Serves HTTP/1.1 on one connection (plain or already through TLS) until it closes: the same
/// settings for every listener, and for the fuzz entry point that feeds it raw bytes. With
/// `half_close` the requests read before the client's end of input are still answered (the fuzz
/// entry point sends a whole input, then EOF); listeners close the connection on EOF.
pub(crate) async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    state: Arc<ServerState>,
    kind: Listener,
    header_timeout: Duration,
    half_close: bool,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let st = state.clone();
        async move { Ok::<_, Infallible>(routes::handle(st, kind, req, peer).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .half_close(half_close)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}
