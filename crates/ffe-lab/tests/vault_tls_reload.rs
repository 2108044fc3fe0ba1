//! The Vault members' tls-reload sidecar (terraform/modules/vault, chart value
//! `server.extraContainers`), run as rendered against a real OpenBao server: Vault reads its TLS
//! certificate at start and on SIGHUP only, so without the sidecar a certificate cert-manager
//! renews would never be served. Needs root (a private PID namespace stands in for the pod's
//! shared process namespace).
//!
//! The script, its environment and its mount come from a Terraform render of the module. The
//! one substitution: `TLS_DIR` points at this test's directory instead of the pod's Secret
//! mount (the script's other inputs are used as rendered, the check interval rendered short).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// modules/vault rendered for OpenBao (the pins of terraform/environments/ha), with a 1-second
/// check interval.
fn render() -> Value {
    let arguments = r#"
  distribution            = "openbao"
  chart_version           = "0.29.2"
  chart_repo              = "https://openbao.github.io/openbao-helm"
  image_tag               = "2.6.2"
  namespace               = "vault"
  cert_manager_namespace  = "cert-manager"
  member_ips              = ["10.210.9.10", "10.210.9.11", "10.210.9.12"]
  loadbalancer_annotation = "kube-vip.io/loadbalancerIPs"
  data_storage_class      = "ffe-fast-retain"
  backup_storage_class    = "ffe-backup"
  backup_retention_days   = 7
  tls_reload_check_seconds = 1"#;
    ffe_lab::terraform::render_module(&repo().join("terraform/modules/vault"), arguments)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What the kubelet does when a Secret volume changes: the new files appear at once (rename).
fn install(pki: &Path, tls: &Path, name: &str) {
    for (from, to) in [("crt", "tls.crt"), ("key", "tls.key")] {
        let tmp = tls.join(format!(".{to}.new"));
        std::fs::copy(pki.join(format!("{name}.{from}")), &tmp).unwrap();
        std::fs::rename(&tmp, tls.join(to)).unwrap();
    }
}

/// SHA-256 fingerprint of a PEM certificate (`openssl x509 -fingerprint`), from `pem`.
fn fingerprint(pem: impl Into<Stdio>) -> Option<String> {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(pem)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The fingerprint of the certificate 127.0.0.1:`port` serves.
fn served(port: u16) -> Option<String> {
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let fp = fingerprint(s_client.stdout.take()?);
    let _ = s_client.wait();
    fp
}

/// The fingerprint of certificate file `path`.
fn of_file(path: &Path) -> String {
    fingerprint(std::fs::File::open(path).unwrap()).unwrap()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pod: a PID namespace (like `shareProcessNamespace`) holding the server and the sidecar.
struct Pod(Child);

impl Drop for Pod {
    fn drop(&mut self) {
        // unshare --kill-child passes this on to the namespace's first process, whose death ends
        // every process in the namespace
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_renewed_certificate_is_served_once_the_sidecar_signals_the_server() {
    let out = render();
    let sidecars = out["chart_values"]["server"]["extraContainers"]
        .as_array()
        .expect("server.extraContainers");
    assert_eq!(out["chart_values"]["server"]["shareProcessNamespace"], true);
    let sidecar = sidecars
        .iter()
        .find(|c| c["name"] == "tls-reload")
        .expect("a tls-reload sidecar");
    let command: Vec<&str> = sidecar["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    let env: std::collections::BTreeMap<&str, &str> = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    // it watches the server's own certificate mount, read-only
    let mount = &sidecar["volumeMounts"][0];
    assert_eq!(mount["mountPath"].as_str(), Some(env["TLS_DIR"]));
    assert_eq!(mount["readOnly"], true);
    let server_volumes = out["chart_values"]["server"]["volumeMounts"]
        .as_array()
        .unwrap();
    assert!(
        server_volumes
            .iter()
            .any(|m| m["name"] == mount["name"] && m["mountPath"] == mount["mountPath"]),
        "the sidecar must see the server's certificate mount: {server_volumes:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let (pki_dir, tls) = (tmp.path().join("pki"), tmp.path().join("tls"));
    std::fs::create_dir_all(&pki_dir).unwrap();
    std::fs::create_dir_all(&tls).unwrap();
    let ca = ffe_lab::pki::TestCa::new(&pki_dir).unwrap();
    let (cert_a, _) = ca.issue("a").unwrap();
    let (cert_b, _) = ca.issue("b").unwrap();
    let (a, b) = (of_file(&cert_a), of_file(&cert_b));
    assert_ne!(a, b);
    install(&pki_dir, &tls, "a");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = tmp.path().join("server.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\ndisable_mlock = true\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{d}/tls.crt\"\n  tls_key_file = \"{d}/tls.key\"\n}}\n",
            d = tls.display()
        ),
    )
    .unwrap();
    let bao = ffe_lab::vault::bao_binary().unwrap();
    // An operator's CLI in the pod (`kubectl exec vault-0 -- bao login`, waiting at its prompt)
    // has the server's process name: a script named like the server binary, started first so it
    // has the lower PID. The sidecar must signal the server, not it.
    let decoy = tmp.path().join("cli").join(bao.file_name().unwrap());
    std::fs::create_dir_all(decoy.parent().unwrap()).unwrap();
    std::fs::write(&decoy, "#!/bin/sh\nwhile :; do sleep 1; done\n").unwrap();
    std::fs::set_permissions(&decoy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (server_log, sidecar_log) = (
        tmp.path().join("server.log"),
        tmp.path().join("sidecar.log"),
    );
    let log = || {
        format!(
            "--- sidecar ---\n{}\n--- server ---\n{}",
            std::fs::read_to_string(&sidecar_log).unwrap_or_default(),
            std::fs::read_to_string(&server_log).unwrap_or_default()
        )
    };
    let _pod = Pod(
        Command::new("unshare")
            // --kill-child: when this process dies (Pod::drop), the namespace's first process is
            // killed, and with it every process of the namespace: nothing outlives the test
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "/bin/sh", "-c"])
            .arg(r#""$DECOY" >/dev/null 2>&1 & "$BAO" server -config="$CONFIG" >"$SERVER_LOG" 2>&1 & exec /bin/sh -c "$SIDECAR" >"$SIDECAR_LOG" 2>&1"#)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DECOY", &decoy)
            .env("BAO", &bao)
            .env("CONFIG", &config)
            .env("SERVER_LOG", &server_log)
            .env("SIDECAR_LOG", &sidecar_log)
            .env("SIDECAR", command[2])
            .env("TLS_DIR", &tls)
            .env("SERVER_COMMAND", env["SERVER_COMMAND"])
            .env("CHECK_SECONDS", env["CHECK_SECONDS"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(
        env["SERVER_COMMAND"], "bao",
        "the OpenBao image's server binary"
    );
    wait_for(
        "the server serves certificate a",
        Duration::from_secs(30),
        || served(port).as_ref() == Some(&a),
        &log,
    );

    // unchanged files: the sidecar leaves the server alone
    std::thread::sleep(Duration::from_secs(3));
    assert!(!log().contains("sent SIGHUP"), "{}", log());

    // renewal: the new certificate is served by the same server process (no restart: a
    // restarted Vault member would come back sealed)
    install(&pki_dir, &tls, "b");
    wait_for(
        "the renewed certificate b served",
        Duration::from_secs(20),
        || served(port).as_ref() == Some(&b),
        &log,
    );
    let text = log();
    assert_eq!(text.matches("sent SIGHUP to bao").count(), 1, "{text}");
    assert_eq!(
        text.matches("server started").count(),
        1,
        "the server restarted instead of reloading:\n{text}"
    );
}
