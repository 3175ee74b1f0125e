//! What a run costs the processes under test: CPU seconds from `/proc/PID/stat` (user + system,
//! reaped children included) and resident memory from `/proc/PID/status`. Linux only; a few
//! fields each, so parsed here rather than pulling in a `/proc` crate.

use serde::{Deserialize, Serialize};

/// A process to watch, by a name for the report.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = String;

    /// `name=pid`, e.g. `kafka=1234`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pid) = s
            .split_once('=')
            .ok_or_else(|| format!("expected name=pid, got {s:?}"))?;
        let pid = pid
            .parse()
            .map_err(|_| format!("pid in {s:?} is not a number"))?;
        Ok(Watched {
            name: name.to_owned(),
            pid,
        })
    }
}

/// CPU time used so far by `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| anyhow::anyhow!("reading /proc/{pid}/stat (is the process running?): {e}"))?;
    let ticks = parse_cpu_ticks(&stat)
        .ok_or_else(|| anyhow::anyhow!("unexpected format of /proc/{pid}/stat"))?;
    // SAFETY: sysconf only reads a constant of the running system.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / per_sec as f64)
}

/// utime + stime + cutime + cstime, in clock ticks, from the text of `/proc/PID/stat`.
/// Children count once reaped: the transcribe stage runs ffmpeg and pocketsphinx as
/// subprocesses, and their CPU is the stage's cost.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 to 17 of the line; `rest` starts at field 3.
    (11..=14).map(|k| fields.get(k)?.parse::<u64>().ok()).sum()
}

/// A `kB` field of `/proc/PID/status` (`VmHWM`, `VmRSS`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| anyhow::anyhow!("reading /proc/{pid}/status: {e}"))?;
    parse_status_kb(&status, field)
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// A snapshot of every watched process.
#[derive(Debug, Clone)]
pub struct Snapshot(Vec<(Watched, f64, u64)>);

/// Take CPU and RSS of every watched process now.
pub fn snapshot(watched: &[Watched]) -> anyhow::Result<Snapshot> {
    watched
        .iter()
        .map(|w| {
            Ok((
                w.clone(),
                cpu_seconds(w.pid)?,
                status_bytes(w.pid, "VmRSS")?,
            ))
        })
        .collect::<anyhow::Result<_>>()
        .map(Snapshot)
}

/// One process's cost over a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    pub name: String,
    pub pid: u32,
    pub cpu_seconds: f64,
    pub cpu_ms_per_message: f64,
    /// Cores busy on average over the window.
    pub cores: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    /// VmHWM: the most resident memory the process ever had.
    pub peak_rss_mib: f64,
}

/// The cost between two snapshots, per message.
pub fn between(
    before: &Snapshot,
    after: &Snapshot,
    messages: u64,
    seconds: f64,
) -> anyhow::Result<Vec<Cost>> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    before
        .0
        .iter()
        .zip(&after.0)
        .map(|((w, cpu0, rss0), (_, cpu1, rss1))| {
            let cpu = cpu1 - cpu0;
            Ok(Cost {
                name: w.name.clone(),
                pid: w.pid,
                cpu_seconds: cpu,
                cpu_ms_per_message: cpu * 1000.0 / messages.max(1) as f64,
                cores: cpu / seconds.max(1e-9),
                rss_before_mib: mib(*rss0),
                rss_after_mib: mib(*rss1),
                peak_rss_mib: mib(status_bytes(w.pid, "VmHWM")?),
            })
        })
        .collect()
}

/// The cost table for the terminal.
pub fn table(costs: &[Cost]) -> String {
    let mut out = String::from(
        "| process | CPU s | CPU ms/msg | cores | RSS before MiB | RSS after MiB | peak RSS MiB |\n|---|---|---|---|---|---|---|\n",
    );
    for c in costs {
        out.push_str(&format!(
            "| {} | {:.2} | {:.3} | {:.2} | {:.0} | {:.0} | {:.0} |\n",
            c.name,
            c.cpu_seconds,
            c.cpu_ms_per_message,
            c.cores,
            c.rss_before_mib,
            c.rss_after_mib,
            c.peak_rss_mib
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "42 (java (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 30 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        let with_children = "7 (smsflow) S 1 7 7 0 -1 0 0 0 0 0 250 75 140 10 20 0 30 0 1 2 3";
        assert_eq!(
            parse_cpu_ticks(with_children),
            Some(475),
            "reaped children count"
        );
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_bytes_and_this_process_has_some() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
        let me = std::process::id();
        assert!(status_bytes(me, "VmHWM").unwrap() > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }
}
