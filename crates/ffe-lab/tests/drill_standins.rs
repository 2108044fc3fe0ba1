//! The lab pieces `ffe-ha drill` runs against, each checked on its own (needs root; nginx,
//! OpenBao, Patroni + PostgreSQL from scripts/install-deps.sh):
//! - the Kubernetes API stand-in's deletable pods (`RecordedApi::start_with_pods`,
//!   `deletions`): the answers a real client gets over TLS with the kubeconfig's certificate;
//! - `BaoCluster::stop`: a graceful (SIGTERM) stop of a member, which comes back sealed;
//! - `PgLab::stop_patroni` and `PgLab::primary_service` (the `<cluster>-primary` Service
//!   stand-in): the service reaches the leader, and the new leader after a graceful stop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ffe_lab::kube_api::{recorded, RecordedApi};
use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::pki::TestCa;
use ffe_lab::postgres::{pg_connect, query_one, PgLab, DB};
use ffe_lab::vault::{BaoCluster, BaoSpec};
use serde_json::{json, Value};

fn lab(hosts: &[&str]) -> Lab {
    Lab::create(LabSpec {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The kubeconfig's client certificate and key as files curl can use.
fn client_files(kubeconfig: &Path, dir: &Path) -> (String, String) {
    use base64::Engine;
    let kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let user = &kc["users"][0]["user"];
    let mut out = vec![];
    for (field, file) in [
        ("client-certificate-data", "client.crt"),
        ("client-key-data", "client.key"),
    ] {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(user[field].as_str().unwrap())
            .unwrap();
        let p = dir.join(file);
        std::fs::write(&p, pem).unwrap();
        out.push(p.display().to_string());
    }
    (out[0].clone(), out[1].clone())
}

/// `curl -X method url` pinned to the API's CA, with the client certificate when given:
/// (HTTP status, body); status 0 when there was no HTTP answer.
fn curl(
    api: &RecordedApi,
    ca: &Path,
    cert: Option<&(String, String)>,
    method: &str,
    path: &str,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "--max-time", "5", "-X", method])
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "\n%{http_code}"]);
    if let Some((crt, key)) = cert {
        cmd.args(["--cert", crt, "--key", key]);
    }
    if method == "DELETE" {
        // What client-go sends for a graceful delete with default options.
        cmd.args(["-H", "Content-Type: application/json", "--data"])
            .arg(r#"{"kind":"DeleteOptions","apiVersion":"v1"}"#);
    }
    let out = cmd
        .arg(format!("{}{path}", api.endpoint()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn api_pods_answer_get_and_delete_and_deletions_are_listed() {
    let lab = lab(&["dk-master-1"]);
    let ca = TestCa::new(&lab.dir().join("api-ca")).unwrap();
    let mut pod = recorded::pod(
        "ffe-data",
        "ffe-pg-db-abcd-0",
        json!({"postgres-operator.crunchydata.com/role": "primary"}),
        "dk-master-1",
        "10.42.1.5",
    );
    // Characters nginx's `return` text would interpolate or un-escape: the answer must still be
    // this value.
    pod["metadata"]["annotations"] =
        json!({"lab.ffe/odd": "cost: $5 'quoted' \"double\" back\\slash\nnewline ${x}"});
    let path = "/api/v1/namespaces/ffe-data/pods/ffe-pg-db-abcd-0";

    // Names that cannot be a pod's are refused before nginx gets them.
    let bad = RecordedApi::start_with_pods(
        &lab,
        "dk-master-1",
        &ca,
        &[],
        &[("ffe-data", "x; return 200", pod.to_string())],
    );
    assert!(bad.is_err(), "a pod name with '; ' was accepted");

    let api = RecordedApi::start_with_pods(
        &lab,
        "dk-master-1",
        &ca,
        &[("/api/v1/nodes", "{}".into())],
        &[("ffe-data", "ffe-pg-db-abcd-0", pod.to_string())],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let files = tempfile::tempdir().unwrap();
    let cert = client_files(api.kubeconfig(), files.path());
    let ca_file = files.path().join("ca.crt");
    std::fs::write(&ca_file, api.ca_pem()).unwrap();

    assert!(api.deletions().is_empty());
    let (status, body) = curl(&api, &ca_file, Some(&cert), "GET", path);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), pod);

    let (status, body) = curl(&api, &ca_file, Some(&cert), "DELETE", path);
    let answered = SystemTime::now();
    assert_eq!(status, 200, "{body}");
    let deleted: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], json!(30));
    let ts = deleted["metadata"]["deletionTimestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let mut unmarked = deleted.clone();
    let meta = unmarked["metadata"].as_object_mut().unwrap();
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("deletionTimestamp");
    assert_eq!(unmarked, pod, "the DELETE answer is not the recorded Pod");

    // nginx writes the log line after the answer: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut d = api.deletions();
    while d.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        d = api.deletions();
    }
    assert_eq!(d.len(), 1, "{d:?}\n{}", api.access_log());
    assert_eq!(
        (d[0].namespace.as_str(), d[0].pod.as_str()),
        ("ffe-data", "ffe-pg-db-abcd-0")
    );
    let skew = match answered.duration_since(d[0].at) {
        Ok(after) => after,
        Err(before) => before.duration(),
    };
    assert!(skew < Duration::from_secs(1), "logged {skew:?} from now");

    // The pod is still there (the test plays the kubelet), other methods are refused.
    assert_eq!(curl(&api, &ca_file, Some(&cert), "GET", path).0, 200);
    let (status, body) = curl(&api, &ca_file, Some(&cert), "PUT", path);
    assert_eq!(status, 405, "{body}");
    let st: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        (
            st["kind"].as_str(),
            st["reason"].as_str(),
            st["code"].as_u64()
        ),
        (Some("Status"), Some("MethodNotAllowed"), Some(405))
    );
    // The existing routes are unchanged: a recorded list cannot be deleted.
    assert_eq!(
        curl(&api, &ca_file, Some(&cert), "DELETE", "/api/v1/nodes").0,
        405
    );
    // Without the client certificate: refused (nginx answers 400 where kube-apiserver 401s).
    let (status, body) = curl(&api, &ca_file, None, "DELETE", path);
    assert_eq!(status, 400, "{body}");
    // Only the one DELETE answered 200 is listed.
    assert_eq!(api.deletions().len(), 1, "{}", api.access_log());
}

#[test]
fn a_stopped_bao_member_exits_on_sigterm_and_comes_back_sealed() {
    let lab = lab(&["dv-0"]);
    let spec = BaoSpec {
        performance_multiplier: 1,
        audit_file_path: None,
    };
    let c = BaoCluster::create(&lab, &["dv-0"], spec).unwrap();
    c.start(0).unwrap();
    let init = c.init(0, 1, 1).unwrap();
    c.unseal(0, &init.keys_base64, Duration::from_secs(60))
        .unwrap();
    c.wait_converged(Duration::from_secs(60)).unwrap();
    let pid = c.pid(0).unwrap();

    let t = Instant::now();
    c.stop(0).unwrap_or_else(|e| panic!("{e}"));
    let took = t.elapsed();
    eprintln!("bao stop took {took:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "PID {pid} left"
    );
    assert!(c.pid(0).is_none());
    assert!(c.health(0).is_none(), "still answering after stop");
    // SIGTERM, not SIGKILL: OpenBao logs its orderly shutdown.
    let log = std::fs::read_to_string(c.member(0).unwrap().log()).unwrap();
    assert!(
        log.contains("==> OpenBao shutdown triggered"),
        "no graceful shutdown in the log:\n{}",
        c.logs(20)
    );
    c.stop(0).unwrap(); // not running: nothing to do

    c.start(0).unwrap();
    let h = c.health(0).unwrap();
    assert!(h.initialized && h.sealed, "{h:?}");
    c.unseal(0, &init.keys_base64, Duration::from_secs(60))
        .unwrap();
    assert_eq!(c.wait_converged(Duration::from_secs(60)).unwrap(), 0);
}

/// PostgreSQL's SSLRequest (what the drill's probe sends, no credentials): the one-byte answer.
fn ssl_request(addr: SocketAddr) -> Result<u8, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).map_err(|e| e.to_string())?;
    Ok(b[0])
}

/// `inet_server_addr()` through the service, i.e. which member it reached.
fn reached(addr: SocketAddr) -> Option<String> {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    let mut c = pg_connect(ip, addr.port(), DB).ok()?;
    query_one(
        &mut c,
        "SELECT host(inet_server_addr()) || ' ' || pg_is_in_recovery()",
    )
    .ok()
}

/// Who holds Patroni's leader key in etcd (empty: nobody).
fn leader_key(c: &PgLab) -> String {
    let key = format!("/service/{}/leader", ffe_lab::postgres::SCOPE);
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.etcd_endpoints().join(",")))
        .args(["get", &key, "--print-value-only"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn primary_service_follows_the_leader_through_a_graceful_patroni_stop() {
    let c = PgLab::create(&["dp1", "dp2"], &[]).unwrap_or_else(|e| panic!("{e:#}"));
    let leader = c.start_patroni_all().unwrap_or_else(|e| panic!("{e:#}"));
    c.create_database(&leader).unwrap();
    c.wait_streaming(&leader, 1).unwrap();
    let svc = c.primary_service().unwrap();
    assert_eq!(c.primary_service().unwrap(), svc, "not idempotent");
    assert!(svc.ip().is_loopback());

    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        match reached(svc) {
            Some(r) => break r,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            None => panic!("the service never reached the leader"),
        }
    };
    assert_eq!(first, format!("{} false", leader.ip));
    // The lab's PostgreSQL has ssl off: 'N' (a closed connection would be an Err).
    assert_eq!(ssl_request(svc), Ok(b'N'));

    assert_eq!(
        leader_key(&c),
        leader.name,
        "the DCS leader key is read wrong"
    );

    let t = Instant::now();
    c.stop_patroni(&leader.name)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("stop_patroni took {:?}", t.elapsed());
    // Stopped, not crashed: Patroni deleted its leader key on the way out (a crashed leader's
    // key stays until its ttl, 20 s, runs out) and no PostgreSQL of that host answers.
    assert_ne!(leader_key(&c), leader.name, "{}", c.patroni_logs());
    assert!(TcpStream::connect_timeout(
        &SocketAddr::from((leader.ip, ffe_lab::postgres::PG_PORT)),
        Duration::from_millis(300)
    )
    .is_err());

    // Probe as the drill does (every 250 ms) until the other member answers as primary.
    let other = c.db_nodes().iter().find(|n| n.name != leader.name).unwrap();
    let (t, mut refused, mut answered) = (Instant::now(), 0, 0);
    let back = loop {
        match ssl_request(svc) {
            Ok(_) => answered += 1,
            Err(_) => refused += 1,
        }
        if let Some(r) = reached(svc).filter(|r| r.ends_with("false")) {
            break r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no new primary through the service: {}",
            c.patroni_logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "new primary through the service after {:?} ({refused} probes closed, {answered} answered)",
        t.elapsed()
    );
    assert_eq!(back, format!("{} false", other.ip));
    assert_eq!(ssl_request(svc), Ok(b'N'));
    // A stopped member is not found by a second stop.
    c.stop_patroni(&leader.name).unwrap();
}
