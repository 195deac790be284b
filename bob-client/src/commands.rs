//! The typed commands: one method per BOB command, each sending it and reading its
//! reply (a second `impl` block of [`Client`], kept apart from the line handling in the
//! crate root).

use bob_codec::types::{Host, Nickname, Port, TunnelOption};
use bob_codec::{Command, Operand, Reply, TunnelCounters, TunnelStatus};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Client, ClientError, Result};

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// `setnick NAME`: creates the tunnel entry and selects it.
    ///
    /// (On Java BOB and bob-server an inactive entry of that name is replaced; use
    /// [`Client::exists`] first to avoid that.)
    ///
    /// # Errors
    /// [`ClientError::Server`], e.g. `tunnel is active`.
    pub async fn setnick(&mut self, name: &Nickname) -> Result<()> {
        self.ok(&Command::SetNick(Operand::Valid(name.clone())))
            .await
            .map(drop)
    }

    /// `getnick NAME`: selects an existing tunnel.
    ///
    /// # Errors
    /// [`ClientError::Server`] when there is no such tunnel.
    pub async fn getnick(&mut self, name: &Nickname) -> Result<()> {
        self.ok(&Command::GetNick(Operand::Valid(name.clone())))
            .await
            .map(drop)
    }

    /// Whether a tunnel of that name exists (`status NAME` answers `OK`).
    ///
    /// # Errors
    /// Transport and protocol errors only.
    pub async fn exists(&mut self, name: &Nickname) -> Result<bool> {
        match self
            .call(&Command::Status(Operand::Valid(name.clone())))
            .await?
        {
            Reply::Ok(_) => Ok(true),
            Reply::Error(_) => Ok(false),
            Reply::Data(_) => Err(ClientError::Protocol(
                "unexpected DATA reply to status".into(),
            )),
        }
    }

    /// `newkeys [SIG [CRYPTO]]`: new keys for the selected tunnel; returns its base64
    /// destination. The types are the i2pd extension (a number or a name).
    ///
    /// # Errors
    /// [`ClientError::BadRequest`] for a crypto type without a signature type or a type
    /// holding whitespace; [`ClientError::Server`].
    pub async fn newkeys(
        &mut self,
        sig_type: Option<&str>,
        crypto_type: Option<&str>,
    ) -> Result<String> {
        self.ok(&Command::NewKeys {
            sig_type: sig_type.map(str::to_owned),
            crypto_type: crypto_type.map(str::to_owned),
        })
        .await
    }

    /// `setkeys BLOB`: sets the selected tunnel's private keys (base64); returns its
    /// destination.
    ///
    /// # Errors
    /// [`ClientError::Server`] for keys the server refuses.
    pub async fn setkeys(&mut self, keys_base64: &str) -> Result<String> {
        self.ok(&Command::SetKeys(Some(keys_base64.to_owned())))
            .await
    }

    /// `getdest`: the selected tunnel's base64 destination.
    ///
    /// # Errors
    /// [`ClientError::Server`] when no tunnel is selected or it has no keys.
    pub async fn getdest(&mut self) -> Result<String> {
        self.ok(&Command::GetDest).await
    }

    /// `getkeys`: the selected tunnel's private keys (base64). Handle with care.
    ///
    /// # Errors
    /// [`ClientError::Server`] when no tunnel is selected or it has no keys.
    pub async fn getkeys(&mut self) -> Result<String> {
        self.ok(&Command::GetKeys).await
    }

    /// `inhost HOST`.
    ///
    /// # Errors
    /// [`ClientError::Server`].
    pub async fn inhost(&mut self, host: &Host) -> Result<()> {
        self.ok(&Command::InHost(Operand::Valid(host.clone())))
            .await
            .map(drop)
    }

    /// `inport PORT`.
    ///
    /// # Errors
    /// [`ClientError::Server`].
    pub async fn inport(&mut self, port: Port) -> Result<()> {
        self.ok(&Command::InPort(Operand::Valid(port)))
            .await
            .map(drop)
    }

    /// `outhost HOST`.
    ///
    /// # Errors
    /// [`ClientError::Server`].
    pub async fn outhost(&mut self, host: &Host) -> Result<()> {
        self.ok(&Command::OutHost(Operand::Valid(host.clone())))
            .await
            .map(drop)
    }

    /// `outport PORT`.
    ///
    /// # Errors
    /// [`ClientError::Server`].
    pub async fn outport(&mut self, port: Port) -> Result<()> {
        self.ok(&Command::OutPort(Operand::Valid(port)))
            .await
            .map(drop)
    }

    /// `quiet true|false`.
    ///
    /// # Errors
    /// [`ClientError::Server`].
    pub async fn quiet(&mut self, quiet: bool) -> Result<()> {
        self.ok(&Command::Quiet(Some(quiet.to_string())))
            .await
            .map(drop)
    }

    /// `option KEY=VALUE` (one pair per line, as Java BOB reads it).
    ///
    /// # Errors
    /// [`ClientError::Server`], e.g. too many options.
    pub async fn option(&mut self, option: &TunnelOption) -> Result<()> {
        self.ok(&Command::Option(Operand::Valid(vec![option.clone()])))
            .await
            .map(drop)
    }

    /// `start` the selected tunnel.
    ///
    /// # Errors
    /// [`ClientError::Server`], e.g. incomplete settings or a port in use.
    pub async fn start(&mut self) -> Result<()> {
        self.ok(&Command::Start).await.map(drop)
    }

    /// `stop` the selected tunnel.
    ///
    /// # Errors
    /// [`ClientError::Server`] when it is not running.
    pub async fn stop(&mut self) -> Result<()> {
        self.ok(&Command::Stop).await.map(drop)
    }

    /// `clear`: removes the selected (inactive) tunnel.
    ///
    /// # Errors
    /// [`ClientError::Server`] when it is active or none is selected.
    pub async fn clear(&mut self) -> Result<()> {
        self.ok(&Command::Clear).await.map(drop)
    }

    /// `list`: every tunnel's status record.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] for a record that does not parse.
    pub async fn list(&mut self) -> Result<Vec<TunnelStatus>> {
        self.send(&Command::List).await?;
        let mut tunnels = Vec::new();
        loop {
            match self.read_reply().await? {
                reply @ Reply::Data(_) => tunnels.push(
                    TunnelStatus::from_reply(&reply)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?,
                ),
                Reply::Ok(_) => return Ok(tunnels),
                Reply::Error(text) => {
                    return Err(ClientError::Server {
                        command: "list",
                        text,
                    });
                }
            }
        }
    }

    /// `status NAME`: one tunnel's status record.
    ///
    /// # Errors
    /// [`ClientError::Server`] when there is no such tunnel.
    pub async fn status(&mut self, name: &Nickname) -> Result<TunnelStatus> {
        let text = self
            .ok(&Command::Status(Operand::Valid(name.clone())))
            .await?;
        TunnelStatus::from_reply(&Reply::Ok(Some(text)))
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `show`: the selected tunnel's status record (Java BOB, bob-server).
    ///
    /// # Errors
    /// [`ClientError::Server`] when none is selected.
    pub async fn show(&mut self) -> Result<TunnelStatus> {
        let text = self.ok(&Command::Show).await?;
        TunnelStatus::from_reply(&Reply::Ok(Some(text)))
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `showprops`: the selected tunnel's properties, as the server prints them.
    ///
    /// # Errors
    /// [`ClientError::Server`] when none is selected.
    pub async fn showprops(&mut self) -> Result<String> {
        self.ok(&Command::ShowProps).await
    }

    /// `stats [NAME]` (bob-server extension): a tunnel's counters; without a name, the
    /// selected tunnel's.
    ///
    /// # Errors
    /// [`ClientError::Server`] (other servers do not know `stats`).
    pub async fn stats(&mut self, name: Option<&Nickname>) -> Result<TunnelCounters> {
        let text = self
            .ok(&Command::Stats(
                name.cloned().map_or(Operand::Missing, Operand::Valid),
            ))
            .await?;
        TunnelCounters::from_reply(&Reply::Ok(Some(text)))
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `lookup NAME`: the base64 destination of an I2P name.
    ///
    /// # Errors
    /// [`ClientError::Server`] when it is not found.
    pub async fn lookup(&mut self, name: &str) -> Result<String> {
        self.ok(&Command::Lookup(Some(name.to_owned()))).await
    }

    /// `verify DEST`: whether the server reads `dest` as a base64 destination.
    ///
    /// # Errors
    /// Transport and protocol errors only.
    pub async fn verify(&mut self, dest: &str) -> Result<bool> {
        Ok(self
            .call(&Command::Verify(Some(dest.to_owned())))
            .await?
            .is_ok())
    }

    /// `help [COMMAND]`: the server's help text.
    ///
    /// # Errors
    /// [`ClientError::Server`] for an unknown command (bob-server, i2pd; Java BOB does
    /// not answer at all, so set a timeout).
    pub async fn help(&mut self, command: Option<&str>) -> Result<String> {
        self.ok(&Command::Help(command.map(str::to_owned))).await
    }

    /// `quit`: ends the session (reads the `OK Bye!`).
    ///
    /// # Errors
    /// Transport and protocol errors.
    pub async fn quit(mut self) -> Result<()> {
        self.ok(&Command::Quit).await.map(drop)
    }

    /// `zap`: shuts the server down.
    ///
    /// # Errors
    /// Transport and protocol errors.
    pub async fn zap(mut self) -> Result<()> {
        self.ok(&Command::Zap).await.map(drop)
    }
}
