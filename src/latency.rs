//! The latency monitor behind `LATENCY LATEST | HISTORY | RESET | GRAPH | DOCTOR`: per event
//! (`command`, `fast-command`, `aof-write`, `aof-fsync-always`, `expire-cycle`), the last 160
//! seconds that had a spike of at least `latency-monitor-threshold` milliseconds (one sample
//! per second: the worst), and the worst spike ever, as Redis 7.0 keeps them.
//!
//! Whoever times an operation calls [`LatencyMonitor::sample`] with its duration; with the
//! threshold at 0 (off, the default) that costs one relaxed load and a compare. Times are Unix
//! seconds of the server clock, passed in by the caller. A leaf module: it depends on nothing
//! else in the crate, so the persistence writer and the command layer can both feed it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

/// One second's worst spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Unix seconds.
    pub time: u64,
    /// Milliseconds.
    pub latency_ms: u64,
}

/// One event's samples, oldest first, and its all-time worst.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Series {
    /// At most [`SAMPLES`], oldest first.
    pub samples: std::collections::VecDeque<Sample>,
    /// The worst spike since the event was first (or last reset) seen, in milliseconds.
    pub max_ms: u64,
}

impl Series {
    /// The newest sample.
    pub fn latest(&self) -> Sample {
        self.samples.back().copied().unwrap_or_default()
    }

    fn add(&mut self, time: u64, latency_ms: u64) {
        self.max_ms = self.max_ms.max(latency_ms);
        if let Some(last) = self.samples.back_mut() {
            if last.time == time {
                last.latency_ms = last.latency_ms.max(latency_ms);
                return;
            }
        }
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { time, latency_ms });
    }
}

/// Every event's series and the threshold.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// `latency-monitor-threshold` in milliseconds (0 = off).
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl LatencyMonitor {
    /// A monitor with `threshold_ms` (0 = off).
    pub fn new(threshold_ms: u64) -> LatencyMonitor {
        LatencyMonitor {
            threshold_ms: AtomicU64::new(threshold_ms),
            events: Mutex::default(),
        }
    }

    /// `latency-monitor-threshold` (`CONFIG SET`).
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// The threshold in milliseconds (0 = off).
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Records `event` lasting `nanos` at `now_secs` if monitoring is on and it lasted at
    /// least the threshold (Redis's `latencyAddSampleIfNeeded`, in whole milliseconds).
    #[inline]
    pub fn sample(&self, event: &'static str, nanos: u64, now_secs: u64) {
        let threshold = self.threshold_ms.load(Ordering::Relaxed);
        if threshold == 0 {
            return;
        }
        let ms = nanos / 1_000_000;
        if ms >= threshold {
            self.events
                .lock()
                .entry(event)
                .or_default()
                .add(now_secs, ms);
        }
    }

    /// Every event with its series, by name.
    pub fn events(&self) -> Vec<(&'static str, Series)> {
        self.events
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// One event's series (names compare ignoring case, as Redis's dictionary does).
    pub fn series(&self, event: &[u8]) -> Option<(&'static str, Series)> {
        self.events
            .lock()
            .iter()
            .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(event))
            .map(|(k, v)| (*k, v.clone()))
    }

    /// Forgets `event` (all events with `None`); returns how many were forgotten.
    pub fn reset(&self, event: Option<&[u8]>) -> usize {
        let mut events = self.events.lock();
        let before = events.len();
        match event {
            None => events.clear(),
            Some(e) => events.retain(|k, _| !k.as_bytes().eq_ignore_ascii_case(e)),
        }
        before - events.len()
    }
}

/// Redis's doctor statistics of one series at `now_secs`: (samples, average ms, mean absolute
/// deviation ms, seconds per spike).
pub fn stats(series: &Series, now_secs: u64) -> (usize, u64, u64, f64) {
    let n = series.samples.len();
    if n == 0 {
        return (0, 0, 0, 0.0);
    }
    let sum: u64 = series.samples.iter().map(|s| s.latency_ms).sum();
    let avg = sum / n as u64;
    let mad = series
        .samples
        .iter()
        .map(|s| s.latency_ms.abs_diff(avg))
        .sum::<u64>()
        / n as u64;
    let oldest = series
        .samples
        .iter()
        .map(|s| s.time)
        .min()
        .unwrap_or(now_secs);
    let period = now_secs.saturating_sub(oldest).max(1);
    (n, avg, mad, period as f64 / n as f64)
}

/// The label of a sample `elapsed` seconds old: `12s`, `3m`, `5h`, `2d`.
fn age_label(elapsed: u64) -> String {
    match elapsed {
        e if e < 60 => format!("{e}s"),
        e if e < 3600 => format!("{}m", e / 60),
        e if e < 86_400 => format!("{}h", e / 3600),
        e => format!("{}d", e / 86_400),
    }
}

/// `LATENCY GRAPH`'s text: a title line, a rule of 80 dashes, then a filled sparkline of the
/// samples four rows high (`_o#` for the three steps in a row, `|` below the top), with each
/// sample's age written vertically under it; 80 samples per block.
pub fn graph(event: &str, series: &Series, now_secs: u64) -> String {
    const COLS: usize = 80;
    const ROWS: usize = 4;
    const FILL: &[u8; 3] = b"_o#";
    let values: Vec<u64> = series.samples.iter().map(|s| s.latency_ms).collect();
    let labels: Vec<String> = series
        .samples
        .iter()
        .map(|s| age_label(now_secs.saturating_sub(s.time)))
        .collect();
    let (min, max) = (
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    );
    let mut out = format!(
        "{event} - high {max} ms, low {min} ms (all time high {} ms)\n{}\n",
        series.max_ms,
        "-".repeat(COLS)
    );
    let range = if max == min { 1.0 } else { (max - min) as f64 };
    let steps = FILL.len() * ROWS;
    for (block, start) in (0..values.len()).step_by(COLS).enumerate() {
        if block > 0 {
            out.push('\n');
        }
        let end = (start + COLS).min(values.len());
        let step_of = |v: u64| -> usize {
            let s = ((v - min) as f64 * steps as f64 / range) as usize;
            s.min(steps - 1)
        };
        for row in 0..ROWS {
            let line: String = values[start..end]
                .iter()
                .map(|&v| {
                    let idx = step_of(v) as i64 - ((ROWS - row - 1) * FILL.len()) as i64;
                    match idx {
                        i if i < 0 => ' ',
                        i if (i as usize) < FILL.len() => FILL[i as usize] as char,
                        _ => '|',
                    }
                })
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
        // One blank row, then the labels written downwards.
        let tallest = labels[start..end]
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        out.push_str(&" ".repeat(end - start));
        out.push('\n');
        for ch in 0..tallest {
            let line: String = labels[start..end]
                .iter()
                .map(|l| l.as_bytes().get(ch).map_or(' ', |&b| b as char))
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn samples_below_the_threshold_or_with_monitoring_off_are_ignored() {
        let m = LatencyMonitor::new(0);
        m.sample("command", 500 * MS, 10);
        assert!(m.events().is_empty(), "off");
        m.set_threshold_ms(100);
        m.sample("command", 99 * MS, 10);
        assert!(m.events().is_empty(), "below");
        m.sample("command", 100 * MS, 10);
        assert_eq!(m.events().len(), 1, "at the threshold");
    }

    #[test]
    fn one_sample_per_second_keeps_the_worst_and_the_all_time_high() {
        let m = LatencyMonitor::new(1);
        m.sample("command", 5 * MS, 10);
        m.sample("command", 9 * MS, 10);
        m.sample("command", 3 * MS, 10);
        m.sample("command", 2 * MS, 11);
        let (_, s) = m.series(b"COMMAND").expect("case-insensitive");
        assert_eq!(
            s.samples.iter().copied().collect::<Vec<_>>(),
            vec![
                Sample {
                    time: 10,
                    latency_ms: 9
                },
                Sample {
                    time: 11,
                    latency_ms: 2
                }
            ]
        );
        assert_eq!(s.max_ms, 9);
        assert_eq!(
            s.latest(),
            Sample {
                time: 11,
                latency_ms: 2
            }
        );
    }

    #[test]
    fn the_series_keeps_the_newest_160_seconds() {
        let m = LatencyMonitor::new(1);
        for t in 0..200 {
            m.sample("aof-write", (t + 1) * MS, 1000 + t);
        }
        let (_, s) = m.series(b"aof-write").unwrap();
        assert_eq!(s.samples.len(), SAMPLES);
        assert_eq!(s.samples[0].time, 1040);
        assert_eq!(s.max_ms, 200);
    }

    #[test]
    fn reset_forgets_one_event_or_all() {
        let m = LatencyMonitor::new(1);
        m.sample("command", MS, 1);
        m.sample("fast-command", MS, 1);
        m.sample("expire-cycle", MS, 1);
        assert_eq!(m.reset(Some(b"nope")), 0);
        assert_eq!(m.reset(Some(b"Command")), 1);
        assert_eq!(m.reset(None), 2);
        assert!(m.events().is_empty());
    }

    #[test]
    fn stats_are_redis_doctor_figures() {
        let m = LatencyMonitor::new(1);
        m.sample("command", 10 * MS, 100);
        m.sample("command", 20 * MS, 101);
        m.sample("command", 30 * MS, 102);
        let (_, s) = m.series(b"command").unwrap();
        let (n, avg, mad, period) = stats(&s, 106);
        assert_eq!((n, avg, mad), (3, 20, 6));
        assert!((period - 2.0).abs() < 1e-9, "{period}");
    }

    #[test]
    fn the_graph_draws_a_filled_sparkline_with_age_labels() {
        let m = LatencyMonitor::new(1);
        m.sample("command", 10 * MS, 100);
        m.sample("command", 40 * MS, 101);
        let (_, s) = m.series(b"command").unwrap();
        let g = graph("command", &s, 110);
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(
            lines[0],
            "command - high 40 ms, low 10 ms (all time high 40 ms)"
        );
        assert_eq!(lines[1], "-".repeat(80));
        // The low sample sits on the bottom row, the high one fills the column.
        assert_eq!(&lines[2..6], &[" #", " |", " |", "_|"]);
        assert_eq!(&lines[6..], &["  ", "19", "0s", "s "]);
    }
}
