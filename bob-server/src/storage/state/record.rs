//! The stored form of a tunnel: [`TunnelRecord`], the file formats that hold it (one
//! tunnel file, the previous version's single file), their encoding and the checks a
//! record read back must pass.

use std::path::Path;

use bob_codec::types::{Host, Nickname, OptionKey, OptionValue, Port, ValueError};
use keytools::keyfile::write_private_file;
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::tunnel::TunnelKind;

/// Format version of the legacy single file ([`LEGACY_STATE_FILE`](super::LEGACY_STATE_FILE)).
pub const LEGACY_STATE_VERSION: u32 = 1;

/// Format version written to tunnel files; files with another version are set aside.
pub const STATE_VERSION: u32 = 2;

/// One registry entry as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelRecord {
    /// the tunnel's nickname
    pub nickname: String,
    /// the private keys as I2P base64 (secret: never logged; the file is 0600)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// inbound host
    pub inhost: String,
    /// inbound port
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inport: Option<u16>,
    /// outbound host
    pub outhost: String,
    /// outbound port
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outport: Option<u16>,
    /// quiet flag
    #[serde(default)]
    pub quiet: bool,
    /// the tunnel's type (`settunneltype`); left out for BOB's TCP tunnels
    #[serde(default, skip_serializing_if = "is_tcp", with = "kind_name")]
    pub kind: TunnelKind,
    /// tunnel options in the order they were set
    #[serde(default)]
    pub options: Vec<(String, String)>,
    /// whether the tunnel was running (it is started again after a restart)
    #[serde(default)]
    pub running: bool,
}

impl std::fmt::Debug for TunnelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelRecord")
            .field("nickname", &self.nickname)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .field("inhost", &self.inhost)
            .field("inport", &self.inport)
            .field("outhost", &self.outhost)
            .field("outport", &self.outport)
            .field("quiet", &self.quiet)
            .field("kind", &self.kind)
            .field("options", &self.options)
            .field("running", &self.running)
            .finish()
    }
}

fn is_tcp(kind: &TunnelKind) -> bool {
    *kind == TunnelKind::Stream
}

/// A [`TunnelKind`] stored by its name (`udp`, `socks`, …).
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::tunnel::TunnelKind;

    pub(super) fn serialize<S: Serializer>(kind: &TunnelKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TunnelKind, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(D::Error::custom)
    }
}

/// The previous version's single file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LegacyStateFile {
    pub(super) version: u32,
    #[serde(default, rename = "tunnel")]
    pub(super) tunnels: Vec<TunnelRecord>,
}

/// One tunnel file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TunnelFile {
    pub(super) version: u32,
    pub(super) tunnel: TunnelRecord,
}

/// Only the version, read first so a file of another version is named as such.
#[derive(Deserialize)]
pub(super) struct Versioned {
    pub(super) version: u32,
}

pub(super) fn encode(record: &TunnelRecord) -> Result<String, StateError> {
    let file = TunnelFile {
        version: STATE_VERSION,
        tunnel: record.clone(),
    };
    toml::to_string(&file).map_err(|e| StateError::Encode(e.to_string()))
}

pub(super) fn parse_legacy(text: &[u8]) -> Result<Vec<TunnelRecord>, String> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let file = toml::from_str::<LegacyStateFile>(text).map_err(|e| e.to_string())?;
    if file.version != LEGACY_STATE_VERSION {
        return Err(format!("unsupported state version {}", file.version));
    }
    Ok(file.tunnels)
}

/// Writes `tunnels` in the previous version's single-file format (every record in one
/// file, rewritten whole): the baseline of the save-cost benchmark and the input of the
/// migration tests.
///
/// # Errors
/// [`StateError`] if the file cannot be written.
pub fn write_legacy_file(path: &Path, tunnels: &[TunnelRecord]) -> Result<(), StateError> {
    let file = LegacyStateFile {
        version: LEGACY_STATE_VERSION,
        tunnels: tunnels.to_vec(),
    };
    let text = toml::to_string(&file).map_err(|e| StateError::Encode(e.to_string()))?;
    write_private_file(path, text.as_bytes())?;
    Ok(())
}

/// Checks one stored entry: keys decode, ports in range, hosts and options without
/// whitespace (they came through BOB, whose operands never hold spaces).
pub(super) fn validate(record: &TunnelRecord) -> Result<(), String> {
    // The operands' own types: what a command could have stored, and nothing else
    // (an empty nickname, a control character or an oversized value is refused).
    let text = |e: ValueError| e.to_string();
    Nickname::new(record.nickname.as_str()).map_err(text)?;
    Host::new(record.inhost.as_str()).map_err(|e| format!("inhost: {e}"))?;
    Host::new(record.outhost.as_str()).map_err(|e| format!("outhost: {e}"))?;
    for port in [record.inport, record.outport].into_iter().flatten() {
        Port::new(port).map_err(text)?;
    }
    for (k, v) in &record.options {
        OptionKey::new(k.as_str()).map_err(text)?;
        OptionValue::new(v.as_str()).map_err(text)?;
    }
    if let Some(keys) = &record.keys {
        keytools::PrivateKeys::from_base64(keys).map_err(|e| format!("bad keys: {e}"))?;
    }
    if record.running && record.keys.is_none() {
        return Err("running without keys".into());
    }
    Ok(())
}
