//! Bootstrap benchmark: wall time of `terraform apply` of the `ha` environment on ffe-lab hosts
//! for 3 servers + {2, 5, 10} agents (each size FFE_BENCH_RUNS times, interleaved, after a warm-up
//! apply; medians and the 3 + 10 / 3 + 2 ratio; with the CPU time the whole machine spent and the
//! processes it started meanwhile), of a no-op `terraform plan` (with refresh, and without it:
//! Terraform's own evaluation) on 3 + 3, and of a rolling upgrade (one minor) of 3 + 3.
//! k3s is the lab's stand-in (its own work is small: files and a datastore): this measures our
//! orchestration (terraform, the provider, SSH sessions, uploads, waits) on lab hosts that all
//! share this machine's CPUs, not k3s. Prints one JSON document.
//! Run: `bench/bootstrap` (needs root).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::Env;

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// Machine-wide CPU time used (user + system + irq, all cores) and processes started since boot,
/// from /proc/stat: every lab host shares this machine, so an apply's cost shows here whole.
fn machine_counters() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let busy = stat
        .lines()
        .next()
        .map(|cpu| {
            let v: Vec<f64> = cpu
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // idle and iowait are not work
            v.iter().sum::<f64>() - v.get(3).unwrap_or(&0.0) - v.get(4).unwrap_or(&0.0)
        })
        .unwrap_or(0.0);
    let processes = stat
        .lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (busy / ticks_per_second, processes)
}

/// One lab apply of 3 servers + `agents` from empty: wall time, machine CPU, processes started.
fn apply_once(agents: usize) -> serde_json::Value {
    let env = Env::new(3, agents);
    env.tfvars(agents, "");
    let (cpu0, procs0) = machine_counters();
    let (out, secs) = timed(|| env.apply());
    let (cpu1, procs1) = machine_counters();
    assert!(
        out.status.success(),
        "apply failed:\n{}",
        support::text(&out)
    );
    serde_json::json!({
        "apply_seconds": secs,
        "machine_cpu_seconds": ((cpu1 - cpu0) * 100.0).round() / 100.0,
        "processes_started": procs1.saturating_sub(procs0),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    // Each size is applied FFE_BENCH_RUNS times (default 3), the sizes interleaved so that a
    // slow minute of the machine hits every size alike, after one warm-up apply that is not
    // counted (the first apply after a build pays for cold caches).
    let runs: usize = std::env::var("FFE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let sizes = [2usize, 5, 10];
    apply_once(2);
    let mut by_size: Vec<Vec<serde_json::Value>> = vec![vec![]; sizes.len()];
    for _ in 0..runs {
        for (i, agents) in sizes.iter().enumerate() {
            by_size[i].push(apply_once(*agents));
        }
    }
    let seconds = |runs: &[serde_json::Value]| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| r["apply_seconds"].as_f64())
            .collect()
    };
    let applies: Vec<serde_json::Value> = sizes
        .iter()
        .zip(&by_size)
        .map(|(agents, runs)| {
            serde_json::json!({
                "servers": 3,
                "agents": agents,
                "median_apply_seconds": median(seconds(runs)),
                "runs": runs,
            })
        })
        .collect();
    let ratio = median(seconds(&by_size[2])) / median(seconds(&by_size[0]));
    let env = Env::new(3, 3);
    env.tfvars(3, "");
    env.apply_ok();
    let mut plans = vec![];
    for _ in 0..3 {
        let ((code, out), secs) = timed(|| env.plan_exit());
        assert_eq!(code, 0, "not a no-op plan:\n{out}");
        plans.push(secs);
    }
    plans.sort_by(f64::total_cmp);
    let mut evals = vec![];
    for _ in 0..3 {
        let (out, secs) = timed(|| {
            env.terraform(&[
                "plan",
                "-detailed-exitcode",
                "-input=false",
                "-refresh=false",
            ])
        });
        assert_eq!(out.status.code(), Some(0), "{}", support::text(&out));
        evals.push(secs);
    }
    evals.sort_by(f64::total_cmp);
    // Rolling upgrade v1.33 -> v1.34: servers one at a time, then agents in batches, drained.
    let old_bin = ffe_lab::standin_binary().unwrap().display().to_string();
    env.upgrade_k3s_tfvars(&old_bin, "v1.34.1+k3s1", "v1.33", "v1.34");
    let (out, upgrade_secs) = timed(|| env.apply());
    assert!(
        out.status.success(),
        "upgrade failed:\n{}",
        support::text(&out)
    );
    let report = serde_json::json!({
        "benchmark": "bootstrap",
        "k3s": "ffe-lab stand-in; figures are orchestration only, every lab host sharing this machine's CPUs",
        "apply": applies,
        "apply_3_plus_10_over_3_plus_2": (ratio * 1000.0).round() / 1000.0,
        "noop_plan_3_plus_3_seconds": { "runs": plans, "median": plans[1] },
        "noop_plan_without_refresh_3_plus_3_seconds": { "runs": evals, "median": evals[1] },
        "rolling_upgrade_3_plus_3_seconds": upgrade_secs,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}
