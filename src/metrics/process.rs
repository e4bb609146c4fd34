//! The standard `process_*` metrics (CPU time, memory, file descriptors, start time) that
//! Prometheus client libraries export, read from `/proc/self` on each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` when `/metrics` is scraped (Linux only: elsewhere it exports nothing).
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of the process.
struct Reading {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    start_time_seconds: i64,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

#[cfg(target_os = "linux")]
fn read() -> Option<Reading> {
    use procfs::process::{LimitValue, Process};
    let me = Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()?;
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Some(Reading {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: int(stat.rss.saturating_mul(procfs::page_size())),
        virtual_bytes: int(stat.vsize),
        start_time_seconds: int(boot + (stat.starttime as f64 / ticks) as u64),
        open_fds: me
            .fd_count()
            .ok()
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        max_fds: me
            .limits()
            .ok()
            .and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(v) => Some(int(v)),
                LimitValue::Unlimited => None,
            }),
    })
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<Reading> {
    None
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(r) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(r.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(r.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(r.virtual_bytes),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                Some(r.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                r.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                r.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
