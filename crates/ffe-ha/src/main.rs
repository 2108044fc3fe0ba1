//! The ffe-ha operations CLI. Its subcommands (preflight, verify, drill, backup verify, status)
//! arrive with the CLI issue; until then it only reports its version.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ffe-ha",
    version,
    about = "Operations CLI for the ffe-ha platform"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!("ffe-ha {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
