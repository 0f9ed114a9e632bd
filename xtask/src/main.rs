//! `cargo xtask demo` and `cargo xtask test`: the two commands that set up a fresh machine (and
//! `cargo xtask chaos`, the fault campaign).
//!
//! Each installs what is missing (Java and ZooKeeper, through apt when run as root or with
//! passwordless sudo; otherwise it prints the exact command) and is safe to run twice.

use std::path::Path;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <demo|test|setup|chaos> [extra args]
  demo   install what is missing, then run the main demo (examples/bank.rs)
  test   install what is missing, then run every test of the workspace
  setup  only install what is missing
  chaos  the fault campaign: cargo xtask chaos --secs N [--seed S] [--workers N] [--ensemble]
         [--workload lock|rwlock|stm|both|all]; prints a summary, exits non-zero on violations";

/// Debian packages the tests and examples need: a JRE and ZooKeeper's jars.
const PACKAGES: &[&str] = &["default-jre-headless", "zookeeper"];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let extra: Vec<String> = args.collect();
    if let Err(message) = ensure_zookeeper() {
        eprintln!("xtask: {message}");
        return ExitCode::FAILURE;
    }
    let status = match task.as_str() {
        "setup" => return ExitCode::SUCCESS,
        "demo" => cargo(
            &[
                "run",
                "--release",
                "-p",
                "mazurka-examples",
                "--example",
                "bank",
                "--",
            ],
            &extra,
        ),
        "test" => cargo(&["test", "--workspace", "--all-targets"], &extra)
            .and_then(|()| cargo(&["test", "--workspace", "--doc"], &extra)),
        // The worker binary must exist beside the controller: build both, then run.
        "chaos" => cargo(&["build", "--release", "-p", "mazurka-chaos", "--bins"], &[]).and_then(|()| {
            cargo(
                &["run", "--release", "-p", "mazurka-chaos", "--bin", "chaos", "--"],
                &extra,
            )
        }),
        other => {
            eprintln!("xtask: unknown task {other:?}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match status {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .args(extra)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn have_java() -> bool {
    Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn have_zookeeper() -> bool {
    if let Some(home) = std::env::var_os("ZOOKEEPER_HOME") {
        return Path::new(&home).join("lib").is_dir() || Path::new(&home).is_dir();
    }
    Path::new("/usr/share/java/zookeeper.jar").is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn have_passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Java and ZooKeeper when missing; a no-op when both are there.
fn ensure_zookeeper() -> Result<(), String> {
    if have_java() && have_zookeeper() {
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y {}", PACKAGES.join(" "));
    let prefix: &[&str] = if is_root() {
        &[]
    } else if have_passwordless_sudo() {
        &["sudo", "-n"]
    } else {
        return Err(format!(
            "Java and ZooKeeper are needed to run real ZooKeeper servers for the tests and demos.\n  \
             Install them with:  sudo sh -c '{install}'\n  \
             (or point ZOOKEEPER_HOME at an unpacked ZooKeeper 3.6+ release)"
        ));
    };
    eprintln!("xtask: installing Java and ZooKeeper: {install}");
    let run = |args: &[&str]| -> Result<(), String> {
        let mut all: Vec<&str> = prefix.to_vec();
        all.extend_from_slice(args);
        let status = Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run {}: {e}", all[0]))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{}` failed ({status}); run it by hand: {install}",
                all.join(" ")
            ))
        }
    };
    run(&["apt-get", "update", "-q"])?;
    let mut install_args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install_args.extend_from_slice(PACKAGES);
    run(&install_args)?;
    if have_java() && have_zookeeper() {
        Ok(())
    } else {
        Err(format!(
            "installed {PACKAGES:?} but still cannot find java or /usr/share/java/zookeeper.jar"
        ))
    }
}
