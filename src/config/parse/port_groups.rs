//! The file format of ALUA target port groups (`[[target.port_group]]`).

use serde::{Deserialize, Serialize};

use super::parse_portal;
use crate::config::error::ConfigError;
use crate::config::model::{AluaState, PortGroupConfig};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortGroup {
    id: i64,
    #[serde(default)]
    portals: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    remote: bool,
}

impl RawPortGroup {
    pub(super) fn into_port_group(self, prefix: &str) -> Result<PortGroupConfig, ConfigError> {
        let id = u16::try_from(self.id)
            .ok()
            .filter(|&id| id >= 1)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("{prefix}.id"),
                    format!("must be between 1 and 65535, got {}", self.id),
                )
            })?;
        let portals = self
            .portals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                parse_portal(p)
                    .map_err(|e| ConfigError::invalid(format!("{prefix}.portals[{i}]"), e))
            })
            .collect::<Result<_, _>>()?;
        let state = match self.state.as_deref() {
            None => AluaState::default(),
            Some(s) => AluaState::ALL
                .into_iter()
                .find(|a| a.as_str() == s)
                .ok_or_else(|| {
                    let allowed: Vec<_> = AluaState::ALL.iter().map(|a| a.as_str()).collect();
                    ConfigError::invalid(
                        format!("{prefix}.state"),
                        format!("expected one of {}, got {s:?}", allowed.join(", ")),
                    )
                })?,
        };
        Ok(PortGroupConfig {
            id,
            portals,
            state,
            remote: self.remote,
        })
    }

    pub(super) fn from_port_group(g: &PortGroupConfig) -> RawPortGroup {
        RawPortGroup {
            id: g.id.into(),
            portals: g.portals.iter().map(ToString::to_string).collect(),
            state: Some(g.state.as_str().to_string()),
            remote: g.remote,
        }
    }
}
