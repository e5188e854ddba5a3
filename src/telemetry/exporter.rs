//! The HTTP exporter: listeners on a thread of their own with a small single-threaded tokio
//! runtime. It reads the registry directly and never touches Python.
//!
//! Bounded by construction: request headers (16 KiB buffer), header read time, connection
//! lifetime, TLS handshake time and the number of concurrent connections. When every slot is
//! taken, a new client makes room by closing the connection idle longest (the one whose last
//! request started earliest, or that never finished one), and is itself served one request in
//! triage: health probes are answered, anything else gets 503 with `Retry-After`. Triage allows a
//! couple of seconds for the request and has its own bound; past it a newcomer gets an immediate
//! 503 (TLS clients: a closed connection). So slow, idle or numerous clients cannot lock health
//! probes out, and memory stays bounded by the two limits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::auth::BasicAuth;
use super::control::{self, Control};
use super::health::ReportContext;
use super::logging;
use super::ops::Queue;
use super::registry::Registry;
use super::routes::{self, AuthGate, Listener, ServerState};
use super::tls;
use super::types::GaugeF;
use super::webconfig::WebConfig;
use crate::errors::CoreError;

/// Largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections the kernel queues before `accept`. The usual 128 overflows under a burst of
/// clients, and an overflow drops the SYN: the client retries after a full second.
const BACKLOG: u32 = 1024;

/// Longest a connection in triage may take to send its request (and its TLS handshake).
const TRIAGE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Fewest connections triage serves at once (else four times `max_connections`). Each holds at
/// most [`TRIAGE_HEAD_BYTES`] of request head: 32 MiB for 4096.
const TRIAGE_MIN: usize = 4096;

/// Largest request head triage reads (hyper's smallest allowed buffer): a probe's head is small.
const TRIAGE_HEAD_BYTES: usize = 8 * 1024;

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
    /// Serve the control endpoints (`/admin/reload`, `/interventions`; see [`super::control`]).
    pub control: bool,
    /// Serve beyond loopback without authentication (refused otherwise; counted in
    /// `exporter_insecure_listeners`).
    pub insecure: bool,
    /// Answer the liveness and readiness probes (`/health/live`, `/livez`, `/health/ready`,
    /// `/readyz`) without credentials when basic auth is on (every other path keeps asking).
    pub open_probes: bool,
}

/// Connections served at once by default: 1024, or half the open-files limit if that is lower
/// (every connection holds a descriptor, and a process out of them cannot accept a probe).
pub fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| super::process::parse_max_fds(&l))
        .map_or(usize::MAX, |n| (n / 2.0) as usize);
    limit.clamp(16, 1024)
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1".into(),
            port: 8000,
            safety_port: None,
            web: WebConfig::default(),
            max_connections: default_max_connections(),
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
            memory_limit_bytes: None,
            control: false,
            insecure: false,
            open_probes: false,
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
    control: Arc<Control>,
    /// `exporter_insecure_listeners` and this exporter's share of it (withdrawn on drop).
    insecure: (GaugeF, f64),
}

fn io_err(what: String, e: &std::io::Error) -> CoreError {
    CoreError::Exporter {
        message: format!("{what}: {e}"),
        errno: e.raw_os_error(),
    }
}

/// Binds and listens (inside the runtime's context: the listener registers with its reactor).
fn bind(addr: &str, port: u16) -> Result<TcpListener, CoreError> {
    let sock = (addr, port)
        .to_socket_addrs()
        .map_err(|e| CoreError::config("addr", format!("cannot resolve {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| CoreError::config("addr", format!("{addr:?} resolves to no address")))?;
    let cannot = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            io_err(format!("port {port} on {addr} is already in use"), &e)
        } else {
            io_err(format!("cannot listen on {sock}"), &e)
        }
    };
    let socket = if sock.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(cannot)?;
    // As std's TcpListener::bind does on Unix: a restart may bind while old sockets sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(cannot)?;
    socket.bind(sock).map_err(cannot)?;
    socket.listen(BACKLOG).map_err(cannot)
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("neorl-exporter")
            // The blocking pool runs bcrypt (one verification at a time, see AuthGate) and
            // encodings (one per format and scope at a time, see Encoder).
            .max_blocking_threads(4)
            .build()
            .map_err(|e| io_err("cannot start the exporter runtime".into(), &e))?;
        let listeners = {
            let _ctx = rt.enter();
            let mut l = vec![(bind(&cfg.addr, cfg.port)?, Listener::Main)];
            if let Some(p) = cfg.safety_port {
                l.push((bind(&cfg.addr, p)?, Listener::Safety));
            }
            l
        };
        let addrs = listeners
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_err("cannot read the bound address".into(), &e))?;
        control::check_exposure(cfg.control, &addrs, &cfg.web)?;
        let exposed = check_unauthenticated(&addrs, &cfg)?;
        let insecure = registry.builtins().insecure_listeners.clone();
        insecure.inc_by(exposed as f64);
        let insecure = (insecure, exposed as f64);
        let control = Arc::new(Control::new(cfg.control));
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
            gate: AuthGate::default(),
            encoder: Arc::default(),
            control: control.clone(),
            open_probes: cfg.open_probes,
        });
        let auth = state.auth.is_some();
        state
            .registry
            .builtins()
            .ops
            .set_capacity(Queue::ExporterConnections, cfg.max_connections);
        let (stop_tx, stop_rx) = watch::channel(false);
        let limits = Limits {
            sem: Arc::new(Semaphore::new(cfg.max_connections)),
            open: Arc::new(Tracker::default()),
            triage: Arc::new(Semaphore::new(
                cfg.max_connections.saturating_mul(4).max(TRIAGE_MIN),
            )),
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
                    state.control.drain(Duration::from_secs(5)).await;
                });
            })
            .map_err(|e| io_err("cannot start the exporter thread".into(), &e))?;
        logging::exporter_started(&names.join(", "), tls_on, auth);
        Ok(Self {
            addrs,
            tls: tls_on,
            stop: Some(stop_tx),
            thread: Some(thread),
            control,
            insecure,
        })
    }

    /// Listeners serving beyond loopback without authentication (allowed by `insecure`).
    pub fn insecure_listeners(&self) -> usize {
        self.insecure.1 as usize
    }

    /// The control endpoints, to attach a handler to.
    pub fn control(&self) -> &Control {
        &self.control
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
        let (gauge, share) = &self.insecure;
        if *share > 0.0 {
            gauge.dec_by(*share);
        }
    }
}

#[derive(Debug, Clone)]
struct Limits {
    sem: Arc<Semaphore>,
    open: Arc<Tracker>,
    triage: Arc<Semaphore>,
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

/// Refuses to serve beyond loopback without authentication unless `cfg.insecure` says so; returns
/// how many listeners then serve beyond loopback unauthenticated.
fn check_unauthenticated(addrs: &[SocketAddr], cfg: &ExporterConfig) -> Result<usize, CoreError> {
    if cfg.web.authenticates() {
        return Ok(0);
    }
    let exposed: Vec<&SocketAddr> = addrs.iter().filter(|a| !a.ip().is_loopback()).collect();
    match exposed.first() {
        Some(a) if !cfg.insecure => Err(CoreError::config(
            "addr",
            format!(
                "the exporter would listen on {a}, beyond loopback, without authentication: set \
                 basic_auth_users (or required client certificates) in a web config file, or say \
                 insecure=True (--insecure) to serve it unauthenticated"
            ),
        )),
        _ => Ok(exposed.len()),
    }
}

impl Conn {
    /// Counts an exporter error of `kind` in `errors_total`.
    fn error(&self, kind: &str) {
        self.state
            .registry
            .builtins()
            .ops
            .error("exporter", kind, 1);
    }
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
                ctx.error("accept");
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match ctx.limits.sem.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(tracked(permit, stream, peer, ctx.clone()));
            }
            Err(_) => {
                ctx.error("overload");
                // Room for the next newcomer; this one is triaged at once.
                ctx.limits.open.evict_idlest();
                match ctx.limits.triage.clone().try_acquire_owned() {
                    Ok(permit) => tokio::spawn(triage(permit, stream, peer, ctx.clone())),
                    Err(_) => tokio::spawn(refuse_busy(stream, ctx.tls.is_none())),
                };
            }
        }
    }
}

/// Serves one request of a connection that found every slot taken: a health probe is answered,
/// anything else gets 503.
async fn triage(
    permit: tokio::sync::OwnedSemaphorePermit,
    stream: TcpStream,
    peer: SocketAddr,
    c: Conn,
) {
    let _permit = permit;
    let _ = stream.set_nodelay(true);
    let limit = c.limits.header_timeout.min(TRIAGE_HEADER_TIMEOUT);
    let (state, kind) = (c.state.clone(), c.kind);
    let svc = service_fn(move |req| {
        let st = state.clone();
        async move { Ok::<_, Infallible>(routes::handle_when_busy(st, kind, req, peer).await) }
    });
    let builder = {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limit)
            .max_buf_size(TRIAGE_HEAD_BYTES)
            .keep_alive(false);
        b
    };
    // The whole exchange, TLS handshake included, within twice the header allowance.
    let _ = tokio::time::timeout(limit * 2, async move {
        match c.tls.clone() {
            None => {
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            }
            Some(acc) => {
                if let Ok(s) = acc.accept(stream).await {
                    let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                }
            }
        }
    })
    .await;
}

/// Serves one connection in its slot until it ends or a newcomer evicts it.
async fn tracked(
    permit: tokio::sync::OwnedSemaphorePermit,
    stream: TcpStream,
    peer: SocketAddr,
    c: Conn,
) {
    let _permit = permit;
    let open = c.limits.open.clone();
    let slot = open.open();
    let ops = c.state.registry.clone();
    ops.builtins()
        .ops
        .add_to_queue(Queue::ExporterConnections, 1);
    tokio::select! {
        _ = slot.evict.notified() => {}
        _ = connection(stream, peer, c, slot.clone()) => {}
    }
    open.close(slot.id);
    ops.builtins()
        .ops
        .add_to_queue(Queue::ExporterConnections, -1);
}

/// One open connection, as the eviction policy sees it.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// Milliseconds from the tracker's epoch to the start of the last request (or the connect).
    active_ms: AtomicU64,
    evict: Notify,
}

/// The open connections (at most `max_connections`: each holds a permit).
#[derive(Debug)]
struct Tracker {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Tracker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            active_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(slot.id, slot.clone());
        slot
    }

    fn touch(&self, slot: &Slot) {
        slot.active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn close(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&id);
    }

    /// Tells the connection idle longest to close; false if none is open.
    fn evict_idlest(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let victim = open
            .values()
            .min_by_key(|s| s.active_ms.load(Ordering::Relaxed))
            .map(|s| s.id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(slot) => {
                // Stores a wake-up if the task is not waiting yet: the eviction is never lost.
                slot.evict.notify_one();
                true
            }
            None => false,
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

async fn connection(stream: TcpStream, peer: SocketAddr, c: Conn, slot: Arc<Slot>) {
    let _ = stream.set_nodelay(true);
    let lifetime = c.limits.connection_timeout;
    match c.tls.clone() {
        None => {
            let _ = tokio::time::timeout(lifetime, serve(stream, peer, c, slot)).await;
        }
        Some(acc) => {
            match tokio::time::timeout(c.limits.header_timeout, acc.accept(stream)).await {
                Ok(Ok(s)) => {
                    let _ = tokio::time::timeout(lifetime, serve(s, peer, c, slot)).await;
                }
                _ => {
                    c.error("tls");
                    logging::exporter_refused("tls handshake failed", &peer.to_string())
                }
            }
        }
    }
}

async fn serve<IO>(io: IO, peer: SocketAddr, c: Conn, slot: Arc<Slot>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let open = c.limits.open.clone();
    let on_request: Arc<dyn Fn() + Send + Sync> = Arc::new(move || open.touch(&slot));
    serve_http(
        io,
        peer,
        c.state.clone(),
        c.kind,
        c.limits.header_timeout,
        false,
        on_request,
    )
    .await;
}

/// Serves HTTP/1.1 on one connection (plain or already through TLS) until it closes: the same
/// settings for every listener, and for the fuzz entry point that feeds it raw bytes. With
/// `half_close` the requests read before the client's end of input are still answered (the fuzz
/// entry point sends a whole input, then EOF); listeners close the connection on EOF.
/// `on_request` runs as each request starts (the listener's idle-connection bookkeeping).
pub(crate) async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    state: Arc<ServerState>,
    kind: Listener,
    header_timeout: Duration,
    half_close: bool,
    on_request: Arc<dyn Fn() + Send + Sync>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state_ops = state.registry.clone();
    let svc = service_fn(move |req| {
        on_request();
        let st = state.clone();
        async move { Ok::<_, Infallible>(routes::handle(st, kind, req, peer).await) }
    });
    let ops = state_ops.builtins();
    if let Err(e) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .half_close(half_close)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), svc)
        .await
    {
        // A request hyper could not parse (or too large a head), else the connection failed.
        let kind = if e.is_parse() || e.is_parse_too_large() {
            "bad_request"
        } else {
            "connection"
        };
        ops.ops.error("exporter", kind, 1);
    }
}
