//! A throwaway certificate authority for tests of TLS servers on loopback: an EC CA and server
//! certificates for IP 127.0.0.1 signed by it, made with the real `openssl` (the CA valid ten
//! years like k3s's, certificates 2 days unless asked otherwise).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors of the test CA.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("openssl {args}: {stderr}")]
    Openssl { args: String, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The CA in `dir` (`ca.crt`, `ca.key`); certificates it issues land beside it.
pub struct TestCa {
    pub dir: PathBuf,
    /// `ca.crt`, PEM.
    pub ca_pem: String,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), PkiError> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|source| PkiError::Io {
            what: "spawn openssl".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PkiError::Openssl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

const EXT_USAGE: &str =
    "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n";

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    pub fn new(dir: &Path) -> Result<TestCa, PkiError> {
        let io = |what: &str| {
            let what = format!("{what} in {}", dir.display());
            move |source| PkiError::Io { what, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create the CA directory"))?;
        let mut args = vec!["req", "-x509"];
        args.extend(EC_KEY);
        args.extend([
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            // Ten years, as k3s's own CAs: the CA is never the certificate a check trips on.
            "3650",
            "-subj",
            "/CN=ffe test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args)?;
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).map_err(io("read ca.crt"))?;
        Ok(TestCa {
            dir: dir.to_path_buf(),
            ca_pem,
        })
    }

    /// A new key pair and a certificate for IP 127.0.0.1 signed by this CA:
    /// (`<name>.crt`, `<name>.key`) in the CA's directory. Each call makes a different one.
    pub fn issue(&self, name: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        self.issue_for(name, &[])
    }

    /// Like [`issue`](Self::issue), valid for 127.0.0.1 and each of `ips` too (a lab host's
    /// address, for servers its peers reach).
    pub fn issue_for(
        &self,
        name: &str,
        ips: &[std::net::Ipv4Addr],
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        self.issue_valid(name, ips, 2)
    }

    /// Like [`issue_for`](Self::issue_for), valid for `days` days from now.
    pub fn issue_valid(
        &self,
        name: &str,
        ips: &[std::net::Ipv4Addr],
        days: u32,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        let days = days.to_string();
        let ext = format!("{name}.ext.cnf");
        let mut sans = String::from("IP:127.0.0.1");
        for ip in ips {
            sans.push_str(&format!(",IP:{ip}"));
        }
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={sans}\n{EXT_USAGE}"),
        )
        .map_err(|source| PkiError::Io {
            what: format!("write {ext}"),
            source,
        })?;
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req"];
        args.extend(EC_KEY);
        args.extend([
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&self.dir, &args)?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
        )?;
        Ok((self.dir.join(crt), self.dir.join(key)))
    }
}
