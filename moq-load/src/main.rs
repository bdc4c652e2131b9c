//! `moq-load`: drives a MoqTransfork relay with one publisher and many subscribers for a
//! bounded time, then reports delivery, loss and end-to-end latency (and the relay's CPU and
//! memory when given its pid).
//!
//! It can also hold idle sessions (to measure what one costs the relay) and churn: workers
//! that connect, subscribe, take one frame and leave, and a worker that publishes a fresh
//! track, has it received through the relay, and leaves (scripts/soak.sh).
//!
//! Subcommands: `compare` runs the performance matrix of docs/performance.md against our relay
//! and moq-relay 0.6.15, and `floor` measures what plain QUIC streams cost (the floor a relay
//! is compared with). Without a subcommand, `moq-load URL [FLAGS]` loads one relay.

use clap::{Parser, Subcommand};

mod churn;
mod compare;
mod floor;
mod load;
mod process;
mod report;
mod table;

/// Load a MoqTransfork relay: one publisher, N subscribers, for a bounded time.
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: load::LoadArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the comparison matrix against our relay and moq-relay 0.6.15 (a fresh relay per
    /// run, each point repeated) and the plain-QUIC floor; print a markdown table.
    Compare(compare::CompareArgs),
    /// Plain quinn: one uni stream per group from a tiny server process to N clients, with
    /// 0.6.15's transport settings; reports delivery, latency and the server's CPU per GB.
    Floor(floor::FloorArgs),
    /// The server process of `floor` (started by it; not meant to be run by hand).
    #[command(hide = true)]
    FloorServer(floor::ServerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => {
            let outcome = load::run(&cli.load).await?;
            outcome.print(&cli.load);
            Ok(())
        }
        Some(Command::Compare(args)) => compare::run(args).await,
        Some(Command::Floor(args)) => {
            let outcome = floor::run(&args, &floor::server_command()?).await?;
            outcome.print_floor(&args);
            Ok(())
        }
        Some(Command::FloorServer(args)) => floor::serve(args).await,
    }
}
