//! Fuzz entry points: each takes arbitrary bytes, must never panic on them, and asserts the
//! invariants that must hold whatever they say (a failed assertion is a finding). The cargo-fuzz
//! targets in `fuzz/` call these; the unit tests below run them over a seed corpus so every build
//! exercises them.
//!
//! * [`fuzz_http_request`]: raw bytes on one exporter connection (with and without basic auth, main
//!   and safety listener): no panic, no hang, every answer a well-formed HTTP/1.1 response, never
//!   a 5xx other than 503.
//! * [`fuzz_web_config`]: the web-config YAML parser and the `Authorization` header parser.
//! * [`fuzz_constraint_config`]: constraint configuration trees built from the bytes: either a
//!   `ConfigError` or a set that steps with finite rewards, costs and readings.
//! * [`fuzz_process_model`]: every env with options, seeds, autoreset modes, shields and actions
//!   from the bytes: non-finite actions are refused, finite ones never produce NaN or inf; then a
//!   tampered snapshot is restored and stepped (errors allowed, panics not).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::envs::{self, Config, ConfigValue};
use crate::errors::CoreError;
use crate::safety::config::{self, Value};
use crate::safety::{ConstraintSet, Shield};
use crate::telemetry::auth::{self, BasicAuth};
use crate::telemetry::control::Control;
use crate::telemetry::exporter::serve_http;
use crate::telemetry::health::ReportContext;
use crate::telemetry::registry::Registry;
use crate::telemetry::routes::{AuthGate, Listener, ServerState};
use crate::telemetry::webconfig;
use crate::vector::{Autoreset, VecCore};

/// Reads typed values off the input; past its end every read is zero.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    fn u64(&mut self) -> u64 {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(self.take(8)) {
            *d = *s;
        }
        u64::from_le_bytes(w)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }

    /// A number biased towards the interesting ones: specials, small integers, raw bit patterns.
    fn number(&mut self) -> f64 {
        const SPECIAL: [f64; 14] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e308,
            -1e308,
            5e-324,
            1e9,
            4_294_967_296.0,
            f64::EPSILON,
        ];
        match self.u8() % 4 {
            0 => self.pick(&SPECIAL),
            1 => f64::from_bits(self.u64()),
            2 => f64::from(self.u8()) - 8.0,
            _ => f64::from(self.u16()) / 100.0,
        }
    }

    /// An action element: mostly within (a little beyond) [-1, 1], sometimes any bit pattern.
    fn action(&mut self) -> f64 {
        match self.u8() % 16 {
            0 => f64::from_bits(self.u64()),
            1 => self.number(),
            _ => f64::from(self.u16()) / 65535.0 * 2.4 - 1.2,
        }
    }
}

// ------------------------------------------------------------------------------------ HTTP

struct Http {
    rt: tokio::runtime::Runtime,
    open: Arc<ServerState>,
    locked: Arc<ServerState>,
}

fn http() -> Option<&'static Http> {
    static HTTP: std::sync::OnceLock<Option<Http>> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let registry = Arc::new(Registry::try_new(64).ok()?);
        // User alice, password "pw", at bcrypt's cheapest cost so authenticated inputs stay fast.
        let hash = bcrypt::hash("pw", 4).ok()?;
        let state = |users: &[(&str, &str)]| {
            let users = users
                .iter()
                .map(|(u, h)| ((*u).to_string(), (*h).to_string()))
                .collect();
            Arc::new(ServerState {
                registry: registry.clone(),
                auth: BasicAuth::new(&users).map(Arc::new),
                headers: Vec::new(),
                report: ReportContext {
                    memory_limit_bytes: Some(1 << 30),
                    exporter_listeners: Some(vec!["http://127.0.0.1:0".into()]),
                },
                gate: AuthGate::default(),
                encoder: Arc::default(),
                control: Arc::new(Control::new(false)),
                open_probes: false,
            })
        };
        Some(Http {
            open: state(&[]),
            locked: state(&[("alice", &hash)]),
            rt,
        })
    })
    .as_ref()
}

/// First byte: bit 0 basic auth on (user alice, password pw), bit 1 the safety listener; the rest
/// goes on the wire.
pub fn fuzz_http_request(data: &[u8]) {
    check_responses(&exchange(data));
}

/// What the server answers to `data` (flags byte first) before the connection closes.
fn exchange(data: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(h) = http() else {
        panic!("the fuzz server could not start")
    };
    let mut b = Bytes(data);
    let flags = b.u8();
    let request = b.0;
    let state = if flags & 1 == 1 { &h.locked } else { &h.open };
    let kind = if flags & 2 == 2 {
        Listener::Safety
    } else {
        Listener::Main
    };
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
    let out = h.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let serve = serve_http(
            server,
            peer,
            state.clone(),
            kind,
            Duration::from_secs(1),
            true,
            std::sync::Arc::new(|| {}),
        );
        let talk = async move {
            // The server may answer and close before reading everything: write errors are fine.
            let _ = client.write_all(request).await;
            let _ = client.shutdown().await;
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
            out
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(serve, talk).1
        })
        .await
    });
    out.unwrap_or_else(|_| panic!("the connection hung on {request:?}"))
}

/// The first response on the connection is `HTTP/1.x <status>` (1.0 answers a 1.0 request), never
/// a server error but 503.
fn check_responses(out: &[u8]) {
    if out.is_empty() {
        return; // closed without an answer (e.g. an incomplete request)
    }
    let head = String::from_utf8_lossy(&out[..out.len().min(64)]);
    assert!(
        out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {head:?}"
    );
    let status = std::str::from_utf8(&out[9..12.min(out.len())]).unwrap_or("");
    let code: u16 = status.parse().unwrap_or(0);
    assert!((100..600).contains(&code), "bad status line {head:?}");
    assert!(code < 500 || code == 503, "server error {head:?}");
}

// ------------------------------------------------------------------------------- web config

/// The web-config parser on arbitrary text, and the `Authorization` header parser on the bytes.
pub fn fuzz_web_config(data: &[u8]) {
    if let Some((user, pass)) = auth::parse_header(data) {
        // What parses re-encodes to a header that parses to the same pair.
        use base64::Engine;
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let again = auth::parse_header(format!("Basic {enc}").as_bytes());
        assert_eq!(again, Some((user, pass)));
    }
    let text = String::from_utf8_lossy(data);
    match webconfig::parse(&text, Path::new("/etc/neorl")) {
        Ok(cfg) => {
            if let Some(t) = &cfg.tls {
                assert!(t.min_version <= t.max_version);
                assert!(t.cert_file.is_absolute() && t.key_file.is_absolute());
            }
            for (k, v) in &cfg.headers {
                assert!(hyper::header::HeaderName::from_bytes(k.as_bytes()).is_ok());
                assert!(hyper::header::HeaderValue::from_str(v).is_ok());
            }
            if let Some(a) = BasicAuth::new(&cfg.users) {
                assert_ne!(a.check_cached(Some(data)), Some(true));
            }
        }
        Err(e) => assert!(
            matches!(&e, CoreError::Config { field, .. } if field == "web_config_file"),
            "{e:?}"
        ),
    }
}

// ------------------------------------------------------------------------- constraint config

const KEYS: &[&str] = &[
    "name", "signal", "kind", "limit", "low", "high", "terms", "b", "type", "severity", "weight",
    "scale", "penalty", "deadband", "on_delay", "defaults", "x", "",
];
const WORDS: &[&str] = &[
    "upper", "lower", "band", "abs", "rate", "linear", "info", "warning", "critical", "x", "",
];

fn value(b: &mut Bytes<'_>, names: &[&str], depth: u32) -> Value {
    let word = |b: &mut Bytes<'_>| -> String {
        match b.u8() % 3 {
            0 => b.pick(names).to_string(),
            1 => b.pick(WORDS).to_string(),
            _ => {
                String::from_utf8_lossy(b.take(usize::from(b.0.first().copied().unwrap_or(0) % 8)))
                    .into_owned()
            }
        }
    };
    let key = |b: &mut Bytes<'_>| -> String {
        if b.u8() % 2 == 0 {
            b.pick(KEYS).to_string()
        } else {
            b.pick(names).to_string()
        }
    };
    match (b.u8() % 8, depth) {
        (0, _) => Value::Null,
        (1, _) => Value::Bool(b.u8() % 2 == 1),
        (2, _) | (4..=7, 4..) => Value::Num(b.number()),
        (3, _) => Value::Str(word(b)),
        (4, _) => Value::List(
            (0..b.u8() % 4)
                .map(|_| value(b, names, depth + 1))
                .collect(),
        ),
        _ => Value::Map(
            (0..b.u8() % 5)
                .map(|_| (key(b), value(b, names, depth + 1)))
                .collect(),
        ),
    }
}

/// A constraint configuration built from the bytes, for an env the first byte picks.
pub fn fuzz_constraint_config(data: &[u8]) {
    let mut b = Bytes(data);
    let id = b.pick(&envs::IDS);
    let Ok(model) = envs::make(id, Vec::new()) else {
        panic!("{id} without options must build")
    };
    let spec = model.spec();
    let defaults = ConstraintSet::defaults(spec);
    let mut names: Vec<&str> = spec.signals.iter().map(|s| s.name).collect();
    names.extend(defaults.constraints.iter().map(|c| c.name.as_str()));
    let tree = value(&mut b, &names, 0);
    let signals: Vec<&str> = spec.signals.iter().map(|s| s.name).collect();
    let set = match config::build(&tree, &signals, &defaults) {
        Ok(set) => set,
        Err(e) => {
            assert!(matches!(e, CoreError::Config { .. }), "{e:?}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let shield = b.pick(&[Shield::Off, Shield::Clip, Shield::Predictive]);
    run_batch(model, set, shield, Autoreset::NextStep, &mut b, 200, true);
}

// ---------------------------------------------------------------------------- process models

fn option_value(b: &mut Bytes<'_>) -> ConfigValue {
    match b.u8() % 4 {
        0 => ConfigValue::Bool(b.u8() % 2 == 1),
        1 => ConfigValue::List((0..b.u8() % 4).map(|_| b.number()).collect()),
        _ => ConfigValue::Number(b.number()),
    }
}

const OPTIONS: &[&str] = &[
    "horizon",
    "noise",
    "x0_spread",
    "setpoints",
    "setpoint",
    "stationary_setpoint",
    "days",
    "summer",
    "outdoor_mean",
    "outdoor_amplitude",
    "solar_peak",
    "internal_gains",
    "load_step",
    "disturbance_rate",
    "initial_load",
    "bogus",
];

/// An env with options, batch size, autoreset mode, shield, seed and actions from the bytes.
pub fn fuzz_process_model(data: &[u8]) {
    let mut b = Bytes(data);
    let id = b.pick(&envs::IDS);
    let cfg: Config = (0..b.u8() % 3)
        .map(|_| (b.pick(OPTIONS).to_string(), option_value(&mut b)))
        .collect();
    let model = match envs::make(id, cfg) {
        Ok(m) => m,
        Err(e) => {
            assert!(matches!(e, CoreError::Config { .. }), "{e:?}");
            return;
        }
    };
    let set = ConstraintSet::defaults(model.spec());
    let shield = b.pick(&[Shield::Off, Shield::Clip, Shield::Predictive]);
    let mode = b.pick(&[
        Autoreset::NextStep,
        Autoreset::SameStep,
        Autoreset::Disabled,
    ]);
    run_batch(model, set, shield, mode, &mut b, 400, false);
}

/// Steps a small batch on actions from the bytes, checking every output; then restores a
/// snapshot with one tampered value and steps on (errors allowed, panics not).
fn run_batch(
    model: Box<dyn envs::ProcessModel>,
    set: ConstraintSet,
    shield: Shield,
    mode: Autoreset,
    b: &mut Bytes<'_>,
    max_steps: usize,
    finite_actions: bool,
) {
    let n = 1 + usize::from(b.u8() % 3);
    let ad = model.spec().act_dim();
    let Ok(mut core) = VecCore::new(model, n, mode, None) else {
        panic!("a batch of {n} must build")
    };
    core.set_safety(set, shield).expect("small batch");
    let seed = b.u64();
    let Ok(first) = core.reset(Some(&vec![Some(seed); n]), None) else {
        panic!("reset must succeed")
    };
    assert!(
        first.obs.iter().all(|x| x.is_finite()),
        "non-finite first observation"
    );
    let mut steps = 0;
    while !b.is_empty() && steps < max_steps {
        steps += 1;
        let acts: Vec<f64> = (0..n * ad)
            .map(|_| {
                let a = b.action();
                if finite_actions && !a.is_finite() {
                    0.0
                } else {
                    a
                }
            })
            .collect();
        match core.step(&acts) {
            Ok(out) => {
                assert!(
                    acts.iter().all(|a| a.is_finite()),
                    "non-finite action taken"
                );
                assert!(
                    out.obs.iter().all(|x| x.is_finite()),
                    "non-finite observation"
                );
                assert!(out.action.iter().all(|x| x.is_finite()));
                for r in &out.rows() {
                    assert!(r.reward.is_finite() && r.cost.is_finite() && r.cost >= 0.0);
                    assert!(r.episode_return.is_finite());
                }
                let rd = &out.readings;
                assert!(rd.values.iter().chain(&rd.margins).all(|x| !x.is_nan()));
            }
            Err(CoreError::InvalidAction { env, element, .. }) => {
                let k = acts.iter().position(|a| !a.is_finite());
                assert_eq!(
                    k.map(|k| (Some(k / ad), Some(k % ad))),
                    Some((env, element))
                );
            }
            Err(CoreError::ResetNeeded(_)) => {
                assert_eq!(mode, Autoreset::Disabled);
                let done = core.snapshot().done;
                assert!(core.reset(None, Some(&done)).is_ok());
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    // A tampered snapshot (a pickle edited by hand): refused, or restored and stepped without panic.
    let mut snap = core.snapshot();
    if !snap.states.is_empty() {
        let i = usize::from(b.u16()) % snap.states.len();
        snap.states[i] = b.number();
        snap.elapsed[0] = u32::from(b.u16());
        if core.restore(&snap).is_ok() {
            for _ in 0..3 {
                let _ = core.step(&vec![b.action().clamp(-1.0, 1.0); n * ad]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic corpus: hand-written inputs plus pseudo-random ones.
    fn corpus(seed: u64, count: usize, len: usize) -> Vec<Vec<u8>> {
        let mut rng = crate::rng::Rng::from_seed(seed);
        (0..count)
            .map(|_| {
                (0..1 + rng.next_u64() as usize % len)
                    .map(|_| rng.next_u64() as u8)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn http_requests() {
        for req in [
            &b"\x00GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x00GET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
            b"\x02GET /safety/metrics HTTP/1.1\r\n\r\n",
            b"\x01GET /metrics HTTP/1.1\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n",
            b"\x01GET /metrics HTTP/1.1\r\nAuthorization: Basic !!\r\n\r\n",
            b"\x00POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"\x00GET /health/detailed?x=%ff HTTP/1.0\r\n\r\n",
            b"\x00\xff\xfe garbage\r\n\r\n",
            b"\x00GET / HTTP/1.1\r\nHost: x\r\n",
        ] {
            fuzz_http_request(req);
        }
        let mut big = b"\x00GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(40_000, b'a');
        fuzz_http_request(&big);
        for input in corpus(1, 100, 200) {
            fuzz_http_request(&input);
        }
    }

    #[test]
    fn the_harness_reaches_the_handlers() {
        let ok = |data: &[u8], status: &str| {
            let out = exchange(data);
            assert!(
                out.starts_with(format!("HTTP/1.1 {status}").as_bytes()),
                "{out:?}"
            );
        };
        ok(b"\x00GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", "200");
        ok(b"\x01GET /metrics HTTP/1.1\r\n\r\n", "401");
        ok(
            b"\x01GET /metrics HTTP/1.1\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n",
            "200",
        );
        ok(b"\x00DELETE /metrics HTTP/1.1\r\n\r\n", "405");
    }

    #[test]
    fn web_configs() {
        for text in [
            "",
            "basic_auth_users:\n  a: '$2b$04$8CbAqAbDlSdG9bNV.9IxkeaX3lwtFXEvPyNdPStTEM7ykAYT3bAoG'\n",
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
            "http_server_config:\n  headers:\n    X-A: b\n",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "Basic YWxpY2U6cHc=",
            "a: &a [*a]",
        ] {
            fuzz_web_config(text.as_bytes());
        }
        for input in corpus(2, 300, 300) {
            fuzz_web_config(&input);
        }
    }

    #[test]
    fn constraint_configs() {
        for input in corpus(3, 400, 120) {
            fuzz_constraint_config(&input);
        }
    }

    #[test]
    fn process_models() {
        for id in 0..envs::IDS.len() as u8 {
            // Every env, no options, in-range actions for a few hundred steps.
            let mut input = vec![id, 0, 0, 0, 1];
            input.extend((0..3000u32).map(|i| (i * 37 % 251) as u8));
            fuzz_process_model(&input);
        }
        for input in corpus(4, 300, 400) {
            fuzz_process_model(&input);
        }
    }
}
