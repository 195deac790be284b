//! `bob-keygen`: I2P key generation, key info, verification, b32 and vanity search.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("bob-keygen is being written (keytools helper)")
}
