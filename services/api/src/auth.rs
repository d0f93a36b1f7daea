//! Bearer-token authentication for callers and agents, with tokens loaded from files (so a
//! Kubernetes Secret mounted as a file works).
//!
//! - Callers' file: `<token> <identity>` per line.
//! - Agents' file: `<token> <cluster-id|-> <engine>` per line (`-` is the local cluster "").
//!
//! Blank lines and lines starting with `#` are ignored. Without a file the corresponding side
//! is not authenticated (development only; logged loudly at start).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use tonic::metadata::MetadataMap;
use wfe_core::Engine;

use crate::error::Error;

/// Who a caller is, as proven by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity(pub String);

/// What an agent token allows: one cluster and one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinding {
    /// Cluster id ("" = local).
    pub cluster_id: String,
    /// Engine.
    pub engine: Engine,
}

/// Callers' tokens. `None` inside means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct CallerAuth {
    tokens: Option<HashMap<String, String>>,
}

/// Agents' tokens. `None` inside means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct AgentAuth {
    tokens: Option<HashMap<String, AgentBinding>>,
}

fn lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        (!l.is_empty() && !l.starts_with('#')).then(|| (i + 1, l.split_whitespace().collect()))
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading tokens file {}", path.display()))
}

impl CallerAuth {
    /// Loads the callers' tokens file, or disables authentication without one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        Self::parse(&read(path)?).with_context(|| format!("in {}", path.display()))
    }

    /// Parses `<token> <identity>` lines.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (n, parts) in lines(text) {
            let [token, identity] = parts[..] else {
                bail!("line {n}: expected `<token> <identity>`");
            };
            tokens.insert(token.to_owned(), identity.to_owned());
        }
        Ok(Self {
            tokens: Some(tokens),
        })
    }

    /// Whether tokens are checked.
    pub fn enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// The caller's identity from `authorization: Bearer <token>`.
    pub fn authenticate(&self, md: &MetadataMap) -> Result<CallerIdentity, Error> {
        let Some(tokens) = &self.tokens else {
            return Ok(CallerIdentity("anonymous".to_owned()));
        };
        let token = bearer(md)?;
        tokens
            .get(token)
            .map(|id| CallerIdentity(id.clone()))
            .ok_or_else(|| Error::Unauthenticated("unknown bearer token".to_owned()))
    }
}

impl AgentAuth {
    /// Loads the agents' tokens file, or disables authentication without one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        Self::parse(&read(path)?).with_context(|| format!("in {}", path.display()))
    }

    /// Parses `<token> <cluster|-> <engine>` lines.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (n, parts) in lines(text) {
            let [token, cluster, engine] = parts[..] else {
                bail!("line {n}: expected `<token> <cluster-id|-> <engine>`");
            };
            let engine = Engine::parse(engine).with_context(|| format!("line {n}"))?;
            let cluster_id = if cluster == "-" {
                String::new()
            } else {
                cluster.to_owned()
            };
            tokens.insert(token.to_owned(), AgentBinding { cluster_id, engine });
        }
        Ok(Self {
            tokens: Some(tokens),
        })
    }

    /// The agent's binding, or `None` when authentication is off (any binding allowed).
    pub fn authenticate(&self, md: &MetadataMap) -> Result<Option<AgentBinding>, Error> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let token = bearer(md)?;
        tokens
            .get(token)
            .cloned()
            .map(Some)
            .ok_or_else(|| Error::Unauthenticated("unknown agent token".to_owned()))
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer(md: &MetadataMap) -> Result<&str, Error> {
    let value = md
        .get("authorization")
        .ok_or_else(|| Error::Unauthenticated("missing authorization metadata".to_owned()))?
        .to_str()
        .map_err(|_| Error::Unauthenticated("authorization metadata is not ASCII".to_owned()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            Error::Unauthenticated("authorization must be `Bearer <token>`".to_owned())
        })?;
    Ok(token.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Ok(v) = v.parse() {
            m.insert("authorization", v);
        }
        m
    }

    #[test]
    fn caller_tokens() {
        let auth = CallerAuth::parse("# c\nabc alice\n\nxyz ro-controller\n").unwrap();
        assert_eq!(auth.authenticate(&md("Bearer abc")).unwrap().0, "alice");
        assert!(matches!(
            auth.authenticate(&md("Bearer nope")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(&MetadataMap::new()),
            Err(Error::Unauthenticated(_))
        ));
        assert!(CallerAuth::parse("only-token\n").is_err());
    }

    #[test]
    fn agent_tokens() {
        let auth = AgentAuth::parse("t1 - job\nt2 east tekton\n").unwrap();
        let b = auth.authenticate(&md("Bearer t1")).unwrap().unwrap();
        assert_eq!((b.cluster_id.as_str(), b.engine), ("", Engine::Job));
        let b = auth.authenticate(&md("Bearer t2")).unwrap().unwrap();
        assert_eq!((b.cluster_id.as_str(), b.engine), ("east", Engine::Tekton));
        assert!(AgentAuth::parse("t1 - ansible\n").is_err());
    }
}
