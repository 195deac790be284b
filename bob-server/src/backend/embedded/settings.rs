//! The embedded router's settings as one layer: `--router-KEY` flags, `BOB_ROUTER_KEY`
//! variables and the `[embedded-router]` table of the config file (`KEY = …`).
//!
//! The struct is both the clap argument group (flattened into `bob-server`'s flags; with
//! the `cli` feature) and the serde table, so the three spellings cannot drift apart.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "cli")]
use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};

use super::{EmbeddedConfig, RouterKind, defaults};

/// One layer of the embedded router's settings; `None` is "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouterSettings {
    /// Embedded router: its directory (keys, netDb); default STATE_DIR/router, else
    /// $XDG_DATA_HOME/bob-server/router
    #[cfg_attr(
        feature = "cli",
        arg(long = "router-dir", value_name = "DIR", env = "BOB_ROUTER_DIR")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,

    /// Embedded router: NTCP2 port (0 = pick one on first start and keep it) [default: 0]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-ntcp2-port",
            value_name = "PORT",
            env = "BOB_ROUTER_NTCP2_PORT"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntcp2_port: Option<u16>,

    /// Embedded router: IPv4 address to publish (none: a hidden, outbound-only router)
    #[cfg_attr(
        feature = "cli",
        arg(long = "router-host", value_name = "IPV4", env = "BOB_ROUTER_HOST")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Ipv4Addr>,

    /// Embedded router: also run SSU2 (UDP) on PORT (0 = pick one) [default: off]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-ssu2-port",
            value_name = "PORT",
            env = "BOB_ROUTER_SSU2_PORT"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssu2_port: Option<u16>,

    /// Embedded router: reseed from a .su3 bundle, a routerInfo file, or a directory of
    /// them (repeatable; BOB_ROUTER_RESEED_FILE takes several separated by ':')
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-reseed-file",
            value_name = "PATH",
            env = "BOB_ROUTER_RESEED_FILE",
            value_delimiter = ':'
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseed_file: Option<Vec<PathBuf>>,

    /// Embedded router: HTTPS reseed hosts (repeatable; variable: separated by spaces)
    /// [default: emissary's list]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-reseed-host",
            value_name = "URL",
            env = "BOB_ROUTER_RESEED_HOST",
            value_delimiter = ' '
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseed_host: Option<Vec<String>>,

    /// Embedded router: PEM file of CA certificates trusted for the --router-reseed-host
    /// hosts besides the system's (a private network's own reseed server)
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-reseed-ca",
            value_name = "FILE",
            env = "BOB_ROUTER_RESEED_CA"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseed_ca: Option<PathBuf>,

    /// Embedded router: reseed over HTTPS when the netDb is small [default: true]
    #[cfg_attr(feature = "cli", arg(
        long = "router-net-reseed",
        env = "BOB_ROUTER_NET_RESEED",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_reseed: Option<bool>,

    /// Embedded router: "small" for the HTTPS reseed, in known routers [default: 25]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-reseed-threshold",
            value_name = "N",
            env = "BOB_ROUTER_RESEED_THRESHOLD"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseed_threshold: Option<usize>,

    /// Embedded router / devnet: I2P network id (2 = the real network; other ids are
    /// private and allow loopback addresses) [default: 2; devnet: random]
    #[cfg_attr(
        feature = "cli",
        arg(long = "router-net-id", value_name = "ID", env = "BOB_ROUTER_NET_ID")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_id: Option<u8>,

    /// Embedded router: act as a floodfill [default: false]
    #[cfg_attr(feature = "cli", arg(
        long = "router-floodfill",
        env = "BOB_ROUTER_FLOODFILL",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floodfill: Option<bool>,

    /// Embedded router: most transit tunnels carried for others [default: 1000]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-transit-tunnels",
            value_name = "N",
            env = "BOB_ROUTER_TRANSIT_TUNNELS"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit_tunnels: Option<usize>,

    /// Embedded router / devnet: seconds a graceful router shutdown may take [default: 30]
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "router-shutdown-grace",
            value_name = "SECS",
            env = "BOB_ROUTER_SHUTDOWN_GRACE"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<u64>,
}

impl RouterSettings {
    /// Whether nothing is set in this layer.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// This layer over `lower`, field by field.
    #[must_use]
    pub fn over(self, lower: Self) -> Self {
        Self {
            dir: self.dir.or(lower.dir),
            ntcp2_port: self.ntcp2_port.or(lower.ntcp2_port),
            host: self.host.or(lower.host),
            ssu2_port: self.ssu2_port.or(lower.ssu2_port),
            reseed_file: self.reseed_file.or(lower.reseed_file),
            reseed_host: self.reseed_host.or(lower.reseed_host),
            reseed_ca: self.reseed_ca.or(lower.reseed_ca),
            net_reseed: self.net_reseed.or(lower.net_reseed),
            reseed_threshold: self.reseed_threshold.or(lower.reseed_threshold),
            net_id: self.net_id.or(lower.net_id),
            floodfill: self.floodfill.or(lower.floodfill),
            transit_tunnels: self.transit_tunnels.or(lower.transit_tunnels),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
        }
    }

    /// Relative paths of a config file's table, taken relative to the file's directory.
    pub fn rebase(&mut self, base: &Path) {
        if let Some(d) = &mut self.dir {
            *d = base.join(&*d);
        }
        for f in self.reseed_file.iter_mut().flatten() {
            *f = base.join(&*f);
        }
        if let Some(f) = &mut self.reseed_ca {
            *f = base.join(&*f);
        }
    }

    /// The embedded configuration for `kind`; unset fields take their defaults.
    pub fn into_config(self, kind: RouterKind) -> EmbeddedConfig {
        let mut c = EmbeddedConfig::new(kind);
        c.dir = self.dir;
        c.ntcp2_port = self.ntcp2_port.unwrap_or(0);
        c.host = self.host;
        c.ssu2_port = self.ssu2_port;
        c.reseed_files = self.reseed_file.unwrap_or_default();
        c.reseed_hosts = self.reseed_host.unwrap_or_default();
        c.reseed_ca = self.reseed_ca;
        c.net_reseed = self.net_reseed.unwrap_or(true);
        c.reseed_threshold = self.reseed_threshold.unwrap_or(defaults::RESEED_THRESHOLD);
        c.net_id = self.net_id;
        c.floodfill = self.floodfill.unwrap_or(false);
        c.transit_tunnels = self.transit_tunnels.unwrap_or(defaults::TRANSIT_TUNNELS);
        c.shutdown_grace = self
            .shutdown_grace
            .map_or(defaults::SHUTDOWN_GRACE, Duration::from_secs);
        c
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        router: RouterSettings,
    }

    #[test]
    fn every_field_has_flag_variable_and_key() {
        let full = RouterSettings {
            dir: Some("d".into()),
            ntcp2_port: Some(1),
            host: Some(Ipv4Addr::LOCALHOST),
            ssu2_port: Some(2),
            reseed_file: Some(vec!["f".into()]),
            reseed_host: Some(vec!["https://x/".into()]),
            reseed_ca: Some("ca.pem".into()),
            net_reseed: Some(false),
            reseed_threshold: Some(3),
            net_id: Some(4),
            floodfill: Some(true),
            transit_tunnels: Some(5),
            shutdown_grace: Some(6),
        };
        let text = toml::to_string(&full).unwrap();
        let cmd = Cli::command();
        let mut n = 0;
        for key in text
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        {
            n += 1;
            let long = format!("router-{key}");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .unwrap_or_else(|| panic!("--{long}"));
            let var = format!("BOB_{}", long.replace('-', "_").to_uppercase());
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(var.as_str()));
        }
        assert_eq!(n, 13, "{text}");
        assert_eq!(toml::from_str::<RouterSettings>(&text).unwrap(), full);
    }

    #[test]
    fn layers_and_defaults() {
        let upper = RouterSettings {
            ntcp2_port: Some(9),
            ..RouterSettings::default()
        };
        let lower = RouterSettings {
            ntcp2_port: Some(1),
            floodfill: Some(true),
            ..RouterSettings::default()
        };
        let c = upper.over(lower).into_config(RouterKind::Embedded);
        assert_eq!(c.ntcp2_port, 9);
        assert!(c.floodfill);
        assert!(c.net_reseed);
        assert_eq!(c.shutdown_grace, defaults::SHUTDOWN_GRACE);
        let cli = Cli::try_parse_from([
            "x",
            "--router-floodfill",
            "--router-reseed-file",
            "a.su3",
            "--router-reseed-file",
            "dir",
        ])
        .unwrap();
        assert_eq!(cli.router.floodfill, Some(true));
        assert_eq!(cli.router.reseed_file.unwrap().len(), 2);
        assert!(toml::from_str::<RouterSettings>("colour = 1").is_err());
    }
}
