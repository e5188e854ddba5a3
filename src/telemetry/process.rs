//! The Linux process collector: `process_*` metrics read from `/proc/self`, as Prometheus' own
//! clients expose them (names and meaning follow client_golang's process collector).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One reading of the process' resources.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_memory_bytes: f64,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: f64,
    /// Start time, seconds since the unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Soft limit on open file descriptors (`None`: unlimited or unknown).
    pub max_fds: Option<f64>,
}

/// How long a reading serves scrapes: `/proc` reads cost tens of microseconds each (more with many
/// threads), so at 100 scrapes a second they would dominate the scrape; process metrics at one
/// second's resolution lose nothing.
const MAX_AGE: Duration = Duration::from_secs(1);

/// The current process' stats, at most [`MAX_AGE`] old; `None` where `/proc` is unreadable.
pub fn read() -> Option<ProcessStats> {
    static LAST: Mutex<Option<(Instant, ProcessStats)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, s)) = *last {
        if at.elapsed() < MAX_AGE {
            return Some(s);
        }
    }
    let s = read_now()?;
    *last = Some((Instant::now(), s));
    Some(s)
}

/// The boot time line of `/proc/stat` (constant while the machine runs).
fn boot_stat() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        text.lines()
            .find(|l| l.starts_with("btime "))
            .map(str::to_string)
    })
    .as_deref()
}

/// Reads the current process' stats from `/proc` now.
pub fn read_now() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = boot_stat()?;
    let mut s = parse_stat(&stat, boot, clock_ticks(), page_size())?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| parse_max_fds(&l));
    Some(s)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> f64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as f64
    } else {
        4096.0
    }
}

/// Parses `/proc/self/stat` (see proc(5)) and the `btime` line of `/proc/stat`.
fn parse_stat(stat: &str, proc_stat: &str, ticks: f64, page: f64) -> Option<ProcessStats> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field k of proc(5) is f[k - 3].
    let num = |k: usize| -> Option<f64> { f.get(k - 3)?.parse::<f64>().ok() };
    let btime = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        start_time_seconds: btime + num(22)? / ticks,
        virtual_memory_bytes: num(23)?,
        resident_memory_bytes: num(24)? * page,
        open_fds: 0.0,
        max_fds: None,
    })
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
pub fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
}

/// Writes the `process_*` families for `stats`.
pub fn encode(
    stats: &ProcessStats,
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let cpu = ConstCounter::new(stats.cpu_seconds);
    cpu.encode(encoder.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        None,
        MetricType::Counter,
    )?)?;
    let gauges = [
        (
            "process_open_fds",
            "Number of open file descriptors.",
            Some(stats.open_fds),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            stats.max_fds,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Some(stats.virtual_memory_bytes),
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Some(stats.resident_memory_bytes),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Some(stats.start_time_seconds),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            ConstGauge::new(v).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        // Fields 14, 15 = 250, 50 ticks; 22 = 1000 ticks; 23 = vsize; 24 = rss pages.
        let mut fields: Vec<String> = (3..=52).map(|k| k.to_string()).collect();
        fields[14 - 3] = "250".into();
        fields[15 - 3] = "50".into();
        fields[22 - 3] = "1000".into();
        fields[23 - 3] = "123456".into();
        fields[24 - 3] = "10".into();
        let stat = format!("42 (a) b (c)) {}", fields.join(" "));
        let s = parse_stat(&stat, "cpu 1 2\nbtime 1700000000\n", 100.0, 4096.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_memory_bytes, 123_456.0);
        assert_eq!(s.resident_memory_bytes, 40_960.0);
        assert!(parse_stat("garbage", "", 100.0, 4096.0).is_none());
    }

    #[test]
    fn parses_the_fd_limit() {
        let l = "Limit Soft Hard Units\nMax open files            1024                 1048576              files\n";
        assert_eq!(parse_max_fds(l), Some(1024.0));
        assert_eq!(
            parse_max_fds("Max open files unlimited unlimited files"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let s = read_now().unwrap();
        assert!(s.resident_memory_bytes > 1e5 && s.open_fds >= 3.0 && s.start_time_seconds > 1e9);
        assert_eq!(read(), read());
    }
}
