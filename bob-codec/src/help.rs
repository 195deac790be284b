//! Help texts of both dialects, as data.
//!
//! [`commands`] is the reply to a bare `help`, [`text`] the reply to `help <command>`
//! (both without the leading `OK `). The texts are byte-exact copies of what Java BOB
//! (`DoCMDS.C_ALL`) and i2pd (`BOB_HELP_*`) send, typos included.
//!
//! bob-server's own extension commands ([`EXTENSIONS`]) have help texts in both dialects'
//! styles, answered by `help <command>`; they are left out of the `COMMANDS:` list so
//! that list stays byte-identical to the reference servers'.

use crate::Dialect;

/// Java BOB: `(command, help text)` in the order of its `COMMANDS:` list.
const JAVA: &[(&str, &str)] = &[
    ("help", "help <command> * Get help on a command."),
    (
        "clear",
        "clear * Clear the current nickname out of the list.",
    ),
    (
        "getdest",
        "getdest * Return the destination for the current nickname.",
    ),
    (
        "getkeys",
        "getkeys * Return the keypair for the current nickname.",
    ),
    (
        "getnick",
        "getnick tunnelname * Set the nickname from the database.",
    ),
    (
        "inhost",
        "inhost hostname | IP * Set the inbound hostname or IP.",
    ),
    (
        "inport",
        "inport port_number * Set the inbound port number nickname listens on.",
    ),
    ("list", "list * List all tunnels."),
    ("lookup", "lookup * Lookup an i2p address."),
    (
        "newkeys",
        "newkeys * Generate a new keypair for the current nickname.",
    ),
    (
        "option",
        "option I2CPoption=something * Set an I2CP option. NOTE: Don't use any spaces.",
    ),
    (
        "outhost",
        "outhost hostname | IP * Set the outbound hostname or IP.",
    ),
    (
        "outport",
        "outport port_number * Set the outbound port that nickname contacts.",
    ),
    (
        "quiet",
        "quiet True | False * Don't send to the application the incoming destination.",
    ),
    ("quit", "quit * Quits this session with BOB."),
    (
        "setkeys",
        "setkeys BASE64_keypair * Sets the keypair for the current nickname.",
    ),
    ("setnick", "setnick nickname * Create a new nickname."),
    ("show", "show * Display the status of the current nickname."),
    (
        "showprops",
        "showprops * Display the properties of the current nickname.",
    ),
    ("start", "start * Start the current nickname tunnel."),
    (
        "status",
        "status nickname * Display status of a nicknamed tunnel.",
    ),
    ("stop", "stop * Stops the current nicknamed tunnel."),
    ("verify", "verify BASE64_key * Verifies BASE64 destination."),
    ("visit", "visit * Thread dump to wrapper.log."),
    ("zap", "zap * Shuts down BOB."),
];

/// i2pd: `(command, help text)` in `std::map` (sorted) order.
const I2PD: &[(&str, &str)] = &[
    (
        "clear",
        "clear - Clear the current nickname out of the list.",
    ),
    (
        "getdest",
        "getdest - Return the destination for the current nickname.",
    ),
    (
        "getkeys",
        "getkeys - Return the keypair for the current nickname.",
    ),
    (
        "getnick",
        "getnick <TUNNELNAME> - Sets the nickname from the database.",
    ),
    ("help", "help <COMMAND> - Get help on a command."),
    (
        "inhost",
        "inhost <HOSTNAME|IP> - Set the inbound hostname or IP.",
    ),
    (
        "inport",
        "inport <PORT_NUMBER> - Set the inbound port number nickname listens on.",
    ),
    ("list", "list - List all tunnels."),
    ("lookup", "lookup <I2P_HOSTNAME> - Look up an I2P hostname."),
    (
        "newkeys",
        "newkeys - Generate a new keypair for the current nickname.",
    ),
    (
        "option",
        "option <KEY>=<VALUE> - Set an option. NOTE: Don't use any spaces.",
    ),
    (
        "outhost",
        "outhost <HOSTNAME|IP> - Set the outhound hostname or IP.",
    ),
    (
        "outport",
        "outport <PORT_NUMBER> - Set the outbound port that nickname contacts.",
    ),
    (
        "quiet",
        "quiet <True|False> - Whether to send the incoming destination.",
    ),
    ("quit", "quit - Quits this session with BOB."),
    (
        "setkeys",
        "setkeys <BASE64_KEYPAIR> - Sets the keypair for the current nickname.",
    ),
    ("setnick", "setnick <NICKNAME> - Creates a new nickname."),
    (
        "settunneltype",
        "settunneltype <socks|httpproxy> - Sets socks or http proxy tunnel type.",
    ),
    ("start", "start - Starts the current nicknamed tunnel."),
    (
        "status",
        "status <NICKNAME> - Display status of a nicknamed tunnel.",
    ),
    ("stop", "stop - Stops the current nicknamed tunnel."),
    ("zap", "zap - Shuts down BOB."),
];

const JAVA_COMMANDS: &str = "COMMANDS: help clear getdest getkeys getnick inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick show showprops start status stop verify visit zap";

const I2PD_COMMANDS: &str = "COMMANDS: clear getdest getkeys getnick help inhost inport list lookup newkeys option outhost outport quiet quit setkeys setnick settunneltype start status stop zap";

/// Extension commands of bob-server: `(command, Java-style text, i2pd-style text)`.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "stats",
        "stats [nickname] * Show the connection and byte counters of a tunnel (extension).",
        "stats [<NICKNAME>] - Show the connection and byte counters of a tunnel (extension).",
    ),
    (
        "settunneltype",
        "settunneltype tcp|udp|socks|httpproxy * Set the type of the current nickname's tunnel (extension).",
        "settunneltype <tcp|udp|socks|httpproxy> - Sets the tunnel type (extension).",
    ),
];

/// The `(command, help text)` table of a dialect, in the order its `COMMANDS:` list
/// names the commands.
pub fn entries(dialect: Dialect) -> &'static [(&'static str, &'static str)] {
    match dialect {
        Dialect::Java => JAVA,
        Dialect::I2pd => I2PD,
    }
}

/// The `OK COMMANDS: …` text (after `OK `) for `help` with no argument.
pub fn commands(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => JAVA_COMMANDS,
        Dialect::I2pd => I2PD_COMMANDS,
    }
}

/// The help text (after `OK `) for one command word (case-insensitive), `None` if the
/// dialect has no help entry for it. Extension commands ([`EXTENSIONS`]) have one in
/// both dialects.
pub fn text(dialect: Dialect, command: &str) -> Option<&'static str> {
    entries(dialect)
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(command))
        .map(|(_, text)| *text)
        .or_else(|| {
            EXTENSIONS
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(command))
                .map(|(_, java, i2pd)| match dialect {
                    Dialect::Java => *java,
                    Dialect::I2pd => *i2pd,
                })
        })
}
