//! Join secrets: the server token, a separate agent token, and the cluster CA hash that turns
//! them into k3s's secure form `K10<sha256 of the cluster CA>::<user>:<secret>`.
//!
//! A joining node given the secure form refuses a server whose CA does not hash to the value in
//! the token, so a node cannot be talked into joining an impostor. Agents get the agent token
//! (user `node`), which cannot join a server, so an agent's disk never holds the server secret.

use serde_yaml_ng::Value;

/// The cluster's join secrets. `ca_hash` is known once the first server has started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSecrets {
    pub server: String,
    pub agent: String,
    pub ca_hash: Option<String>,
}

/// `K10<hash>::<user>:<secret>` split into its parts.
fn parse_full(token: &str) -> Option<(&str, &str, &str)> {
    let rest = token.strip_prefix("K10")?;
    let (hash, creds) = rest.split_once("::")?;
    let (user, secret) = creds.split_once(':')?;
    Some((hash, user, secret))
}

/// The secret of a token in either form.
pub fn secret_of(token: &str) -> &str {
    parse_full(token).map_or(token, |(_, _, s)| s)
}

/// A sha256 in hex, as k3s writes the CA hash.
fn is_ca_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The CA hash of the full token k3s writes to `server/token` on a server.
pub fn ca_hash_of_server_token_file(text: &str) -> Result<String, String> {
    let token = text.trim();
    match parse_full(token) {
        Some((hash, "server", _)) if is_ca_hash(hash) => Ok(hash.to_string()),
        _ => Err(
            "the server's token file is not a full k3s server token (K10<64 hex>::server:<secret>)"
                .into(),
        ),
    }
}

impl JoinSecrets {
    /// Fresh secrets: 256 random bits each.
    pub fn generate() -> Self {
        JoinSecrets {
            server: random_hex(),
            agent: random_hex(),
            ca_hash: None,
        }
    }

    /// From the `token` / `agent_token` kept in Terraform state (either form). State written
    /// before agent tokens existed has none: `agent` is empty until [`Self::fill_missing`].
    pub fn from_state(token: &str, agent_token: Option<&str>) -> Self {
        let ca_hash = parse_full(token)
            .map(|(h, _, _)| h.to_string())
            .filter(|h| is_ca_hash(h));
        JoinSecrets {
            server: secret_of(token).to_string(),
            agent: agent_token.map(secret_of).unwrap_or_default().to_string(),
            ca_hash,
        }
    }

    /// A cluster created without an agent token keeps running without one: k3s keeps the agent
    /// password in its bootstrap data, and adding one to running servers leaves that out of sync
    /// (k3s rotates it only with `k3s token rotate`). Without an agent token k3s's agent password
    /// is the server secret, so agents join with `K10<CA>::node:<server secret>`, and no
    /// `agent-token` key is written (see [`Self::has_agent_token`]).
    pub fn fill_missing(&mut self) {
        if self.agent.is_empty() {
            self.agent = self.server.clone();
        }
    }

    /// The cluster was bootstrapped with a separate agent token.
    pub fn has_agent_token(&self) -> bool {
        !self.agent.is_empty() && self.agent != self.server
    }

    /// Everything a node's config depends on is known (so config hashes can be planned).
    pub fn is_complete(&self) -> bool {
        !self.server.is_empty() && !self.agent.is_empty() && self.ca_hash.is_some()
    }

    /// From the first server's config.yaml (an interrupted create): `token` and `agent-token`.
    /// `Ok(None)` when the file is empty or names no token.
    pub fn from_config(text: &str) -> Result<Option<Self>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let y: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("config.yaml is not valid YAML: {e}"))?;
        let get = |k: &str| y.get(k).and_then(|t| t.as_str()).map(str::to_string);
        Ok(get("token").map(|t| {
            let mut s = Self::from_state(&t, get("agent-token").as_deref());
            s.fill_missing();
            s
        }))
    }

    /// What a joining server is given: the secure form once the CA hash is known.
    pub fn server_join_token(&self) -> String {
        self.full("server", &self.server)
    }

    /// What an agent is given.
    pub fn agent_join_token(&self) -> String {
        self.full("node", &self.agent)
    }

    fn full(&self, user: &str, secret: &str) -> String {
        match &self.ca_hash {
            Some(h) => format!("K10{h}::{user}:{secret}"),
            None => secret.to_string(),
        }
    }
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn secure_forms_once_the_ca_is_known() {
        let mut s = JoinSecrets {
            server: "srv".into(),
            agent: "agt".into(),
            ca_hash: None,
        };
        assert_eq!(s.server_join_token(), "srv");
        s.ca_hash = Some(HASH.into());
        assert_eq!(s.server_join_token(), format!("K10{HASH}::server:srv"));
        assert_eq!(s.agent_join_token(), format!("K10{HASH}::node:agt"));
    }

    #[test]
    fn state_round_trip_and_old_state_gets_an_agent_token() {
        let s = JoinSecrets::from_state(&format!("K10{HASH}::server:srv"), Some("agt"));
        assert_eq!(s.server, "srv");
        assert_eq!(s.agent, "agt");
        assert_eq!(s.ca_hash.as_deref(), Some(HASH));
        assert!(s.is_complete());
        let mut old = JoinSecrets::from_state("srv", None);
        assert_eq!(old.ca_hash, None);
        assert!(old.agent.is_empty() && !old.is_complete());
        old.fill_missing();
        // No agent token is added to a running cluster: agents use the server secret as k3s does.
        assert_eq!(old.agent, "srv");
        assert!(!old.has_agent_token());
        assert!(JoinSecrets::generate().has_agent_token());
    }

    #[test]
    fn server_token_file_gives_the_ca_hash_or_an_error() {
        assert_eq!(
            ca_hash_of_server_token_file(&format!("K10{HASH}::server:x\n")).as_deref(),
            Ok(HASH)
        );
        assert!(ca_hash_of_server_token_file("K10abc::server:x").is_err());
        assert!(ca_hash_of_server_token_file(&format!("K10{HASH}::node:x")).is_err());
        assert!(ca_hash_of_server_token_file("plain").is_err());
    }

    #[test]
    fn config_reading_never_guesses() {
        assert_eq!(JoinSecrets::from_config(""), Ok(None));
        assert_eq!(JoinSecrets::from_config("node-name: m0\n"), Ok(None));
        assert!(JoinSecrets::from_config("token: [unclosed").is_err());
        let s = JoinSecrets::from_config("token: srv\nagent-token: agt\n")
            .unwrap()
            .unwrap();
        assert_eq!((s.server.as_str(), s.agent.as_str()), ("srv", "agt"));
    }
}
