//! `bob-server`: the BOB control server.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("bob-server is being written")
}
