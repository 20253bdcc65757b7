//! `[schemas]`: where wire-format schemas come from.

use std::path::PathBuf;

use serde::Deserialize;

use super::Invalid;
use crate::decode::{SchemaRegistry, SchemaSource};

/// Schemas for Confluent wire-format messages: a directory or a
/// registry, not both. With neither, wire-format messages are refused.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    /// A directory of `<id>.avsc` files or Rubin's `vM_m/` layout.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A Confluent-API schema registry (`GET /schemas/ids/{id}`), as
    /// `http://host:port` or `https://host/prefix`. Each schema is fetched
    /// once per process; it must be Avro and self-contained.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// User name for the registry's HTTP basic auth.
    #[serde(default)]
    pub registry_username: Option<String>,
    /// Password for the registry's basic auth; write `"${ENV_VAR}"` to
    /// keep it out of the file.
    #[serde(default)]
    pub registry_password: Option<String>,
}

impl std::fmt::Debug for SchemasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemasConfig")
            .field("dir", &self.dir)
            .field("registry_url", &self.registry_url)
            .field("registry_username", &self.registry_username)
            .field(
                "registry_password",
                &self.registry_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl SchemasConfig {
    /// Where wire-format schema ids are looked up (the config is
    /// validated: at most one of `dir` and `registry_url` is set).
    pub fn source(&self) -> SchemaSource {
        if let Some(url) = &self.registry_url {
            let mut registry = SchemaRegistry::new(url);
            if let Some(user) = &self.registry_username {
                registry =
                    registry.with_basic_auth(user, self.registry_password.as_deref().unwrap_or(""));
            }
            SchemaSource::Registry(registry)
        } else if let Some(dir) = &self.dir {
            SchemaSource::Dir(dir.clone())
        } else {
            SchemaSource::None
        }
    }

    /// The rules between these keys.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        if self.dir.is_some() && self.registry_url.is_some() {
            return Err(Invalid::new(
                "schemas.dir",
                "set together with schemas.registry_url; keep one of them".into(),
            ));
        }
        if let Some(url) = &self.registry_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Invalid::new(
                "schemas.registry_url",
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        if self.registry_url.is_none()
            && (self.registry_username.is_some() || self.registry_password.is_some())
        {
            return Err(Invalid::new(
                "schemas.registry_username",
                "registry credentials are set but schemas.registry_url is not: set it, or remove them".into(),
            ));
        }
        if self.registry_password.is_some() && self.registry_username.is_none() {
            return Err(Invalid::new(
                "schemas.registry_username",
                "schemas.registry_password is set without a user name: set schemas.registry_username too".into(),
            ));
        }
        Ok(())
    }
}
