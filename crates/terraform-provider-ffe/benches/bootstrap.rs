//! Bootstrap benchmark: wall time of `terraform apply` of the `ha` environment on ffe-lab hosts
//! for 3 servers + {2, 5, 10} agents, of a no-op `terraform plan` (with refresh, and without it:
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

fn main() {
    let mut applies = vec![];
    for agents in [2usize, 5, 10] {
        let env = Env::new(3, agents);
        env.tfvars(agents, "");
        let (out, secs) = timed(|| env.apply());
        assert!(
            out.status.success(),
            "apply failed:\n{}",
            support::text(&out)
        );
        applies.push(serde_json::json!({ "servers": 3, "agents": agents, "apply_seconds": secs }));
    }
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
        "noop_plan_3_plus_3_seconds": { "runs": plans, "median": plans[1] },
        "noop_plan_without_refresh_3_plus_3_seconds": { "runs": evals, "median": evals[1] },
        "rolling_upgrade_3_plus_3_seconds": upgrade_secs,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}
