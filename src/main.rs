use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use taskrobust::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (e.g. `| head`) is not an error worth a panic.
            let _ = stdout.write_all(output.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let line = failure.message.replace('\n', " ");
            eprintln!("taskrobust: error: {line}");
            ExitCode::from(failure.status.clamp(1, 255) as u8)
        }
    }
}
