//! `k3s-standin`: the ffe-lab k3s STAND-IN (not k3s). Multi-call by argv[0]; every call is
//! recorded. See `ffe_lab::standin` for the behaviour.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ffe_lab::standin::{self, HostEnv, Invocation, Settings, StandinRecord};

fn main() {
    let ts_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_else(|| "k3s".to_string());
    let program = Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "k3s".to_string());
    let inv = Invocation {
        program,
        args: argv.collect(),
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
    };
    let root = Path::new("/");
    let settings = match Settings::locate(root) {
        Ok(mut s) => {
            if let Some(v) = standin::embedded_version() {
                s.version = v;
            }
            s
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let host = HostEnv {
        root: root.to_path_buf(),
        hostname: standin::current_hostname(),
        address: standin::current_address(),
        settings,
    };
    let outcome = standin::run(&inv, &host, &mut std::io::stdin());
    let record = StandinRecord {
        ts_ns,
        host: host.hostname.clone(),
        program: inv.program.clone(),
        argv: inv.args.clone(),
        env: standin::sanitize_env(&inv.env),
        config_yaml: outcome.config_yaml.clone(),
        exit_code: outcome.exit_code,
        message: outcome.message.clone(),
        stdin: outcome.stdin.clone(),
        files: outcome.files.clone(),
        warnings: outcome.warnings.clone(),
    };
    let mut code = outcome.exit_code;
    if let Err(e) = standin::append_record(&host.settings.records_dir, &record) {
        eprintln!("k3s stand-in: cannot write record: {e}");
        code = if code == 0 { 1 } else { code };
    }
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    std::process::exit(code);
}
