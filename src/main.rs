//! The `mooring` binary: parses the command line and hands over to [`mooring::cli`].

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = mooring::cli::Cli::parse();
    mooring::cli::set_colour(cli.no_color);
    mooring::cli::init_logging(cli.log_format);
    let code = mooring::cli::execute(cli).await;
    std::process::exit(code);
}
