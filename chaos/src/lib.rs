//! Mazurka's own fault campaign, Jepsen-style: worker **processes** contend for a lock while a
//! nemesis pauses (SIGSTOP), kills (SIGKILL), cuts, stalls and expires them and kills the
//! ensemble's leader; a checker then reads every worker's log and the servers' final state and
//! reports each broken promise it can prove. A run is reproducible from its seed (the fault
//! schedule and the workers' choices).
//!
//! The parts, for reuse by campaigns of other primitives:
//! * core: [`event`] (the JSON-lines log), [`procs`] (worker processes and signals),
//!   [`cluster`] (servers and per-worker proxies), [`nemesis`] (seeded fault schedule),
//!   [`observer`] (the controller's watch on a lock directory), [`zk`] (the controller's reads),
//!   [`campaign`] (the controller loop);
//! * per primitive: [`workload`] (what a worker does) and [`check`] (what is checked).
//!
//! Run it with `cargo xtask chaos --secs N [--seed S] [--workers N] [--ensemble] [--workload
//! lock|rwlock|stm]`; a short run is an integration test of this crate. The `stm` workload
//! ([`workload::stm`], [`check::stm`], [`stm_read`]) tries refs and atoms the way a database is
//! tried: transfers with audits, a contended counter, write-skew pairs, lost commit replies.

pub mod campaign;
pub mod check;
pub mod cluster;
pub mod event;
pub mod nemesis;
pub mod observer;
pub mod procs;
pub mod stm_read;
pub mod workload;
pub mod zk;

pub use campaign::{run, Config, Report};

/// Why a campaign could not run (violations are not errors: they are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// A ZooKeeper server, ensemble or proxy could not be started or controlled.
    #[error("server: {0} (is Java and ZooKeeper installed? run `cargo xtask setup`)")]
    Server(String),
    /// The controller's own ZooKeeper client failed.
    #[error("controller's ZooKeeper client: {0}")]
    Zk(String),
    /// A worker process could not be started or talked to.
    #[error("worker process: {0} (is the chaos-worker binary built?)")]
    Spawn(String),
    /// A signal could not be sent.
    #[error("signal: {0}")]
    Signal(String),
    /// The run's directory or log could not be written.
    #[error("output: {0}")]
    Io(String),
    /// Something that should have happened did not, in time.
    #[error("timed out: {0}")]
    Timeout(String),
}
