//! One worker process of a fault campaign (started by the controller, never by hand).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = mazurka_chaos::workload::WorkerArgs::parse(&args)
        .and_then(|args| mazurka_chaos::workload::run_worker(&args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chaos-worker: {message}");
            ExitCode::FAILURE
        }
    }
}
