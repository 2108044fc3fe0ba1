//! The cluster CA from a Kubernetes Secret, read with `k3s kubectl` on the first k3s server
//! that answers (the same path [`crate::manifests`] uses to reach the API).

use base64::Engine;

use super::VaultError;
use crate::k3s::ops::KUBECTL;
use crate::k3s::Node;
use crate::manifests::on_first_answering;
use crate::shell::quote;
use crate::ssh::SshPool;

/// Where the CA lives: `ca_secret = { namespace, name, key }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSecret {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl CaSecret {
    /// The kubectl command printing the key's base64 value. Dots in the key (`ca.crt`) are
    /// escaped for jsonpath.
    pub fn command(&self) -> String {
        let path = format!("jsonpath={{.data.{}}}", self.key.replace('.', "\\."));
        format!(
            "{KUBECTL} -n {} get secret {} -o {}",
            quote(&self.namespace),
            quote(&self.name),
            quote(&path)
        )
    }

    /// The PEM from kubectl's output (the base64 of the Secret's value).
    pub fn parse(&self, output: &str) -> Result<String, VaultError> {
        let b64: String = output.split_whitespace().collect();
        if b64.is_empty() {
            return Err(self.err(format!(
                "has no key {:?} (or it is empty): check `kubectl -n {} get secret {} -o yaml` and the certificate that fills it",
                self.key, self.namespace, self.name
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| self.err(format!("key {:?} is not base64 ({e})", self.key)))?;
        let pem = String::from_utf8(bytes)
            .map_err(|_| self.err(format!("key {:?} is not PEM text", self.key)))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(self.err(format!("key {:?} holds no PEM certificate", self.key)));
        }
        Ok(pem)
    }

    fn err(&self, m: String) -> VaultError {
        VaultError::CaSecret(format!("Secret {}/{} {m}", self.namespace, self.name))
    }

    /// Read the CA PEM through the first server that answers.
    pub async fn read(&self, pool: &SshPool, servers: &[Node]) -> Result<String, VaultError> {
        if servers.is_empty() {
            return Err(VaultError::CaSecret(
                "needs servers (the k3s servers to run kubectl on): set servers = ffe_k3s_cluster.<name>.servers".into(),
            ));
        }
        let out = on_first_answering(
            pool,
            servers,
            &format!("read Secret {}/{}", self.namespace, self.name),
            &self.command(),
            None,
        )
        .await
        .map_err(|e| self.err(format!("could not be read: {e}")))?
        .map_err(|last| self.err(format!("could not be read: no server answered ({last})")))?;
        self.parse(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> CaSecret {
        CaSecret {
            namespace: "vault".into(),
            name: "vault-ca".into(),
            key: "ca.crt".into(),
        }
    }

    #[test]
    fn command_escapes_the_key_and_is_valid_shell() {
        let cmd = secret().command();
        assert_eq!(
            cmd,
            r"k3s kubectl --request-timeout=30s -n vault get secret vault-ca -o 'jsonpath={.data.ca\.crt}'"
        );
        let ok = std::process::Command::new("sh")
            .args(["-n", "-c", &cmd])
            .status()
            .unwrap();
        assert!(ok.success());
        // what jsonpath receives after the shell removes the quotes
        let out = std::process::Command::new("sh")
            .args(["-c", &cmd.replace("k3s kubectl", "printf '%s\\n'")])
            .output()
            .unwrap();
        let args = String::from_utf8(out.stdout).unwrap();
        assert!(
            args.lines().any(|l| l == r"jsonpath={.data.ca\.crt}"),
            "{args}"
        );
        let odd = CaSecret {
            key: "it's".into(),
            ..secret()
        };
        let ok = std::process::Command::new("sh")
            .args(["-n", "-c", &odd.command()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    #[test]
    fn output_is_decoded_and_checked() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(secret().parse(&format!("{b64}\n")).unwrap(), pem);
        let e = secret().parse("").unwrap_err().to_string();
        assert!(
            e.starts_with("ca_secret: Secret vault/vault-ca has no key \"ca.crt\""),
            "{e}"
        );
        assert!(secret().parse("!!!").is_err());
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(secret().parse(&not_pem).is_err());
    }
}
