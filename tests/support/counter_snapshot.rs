//! A real ZooKeeper server whose chosen directories have their child counter where a test wants
//! it — 2^31 − 1 and beyond cannot be reached by creating children in a test's lifetime.
//!
//! The counter (the parent's `cversion`) is what the server appends to a sequential child's name.
//! [`server_with_counters`] writes a snapshot with ZooKeeper's own classes (`CounterSnapshot.java`,
//! run by `java` from source: Java 11+ with the `jdk.compiler` module, which Debian's
//! `default-jre-headless` ships) and starts a test kit server on it. Nothing is simulated: the
//! server then numbers children exactly as it would after 2^31 creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mazurka::testkit::ZkServer;

/// The snapshot writer's source, compiled and run by `java` at test time.
const SOURCE: &str = include_str!("CounterSnapshot.java");

/// ZooKeeper's jars, looked up as the test kit looks them up: `ZOOKEEPER_HOME` (its `lib/` and
/// `zookeeper-*.jar`), else `/usr/share/zookeeper/lib`, else Debian's `/usr/share/java`.
fn zookeeper_classpath() -> String {
    let jars = |dir: &Path, only_zookeeper: bool| -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut jars: Vec<String> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jar"))
            .filter(|p| {
                !only_zookeeper
                    || p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("zookeeper"))
            })
            .map(|p| p.display().to_string())
            .collect();
        jars.sort();
        jars
    };
    let home = std::env::var_os("ZOOKEEPER_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/share/zookeeper")).filter(|h| h.join("lib").is_dir()));
    match home {
        Some(home) => {
            let mut all = jars(&home.join("lib"), false);
            all.extend(jars(&home, true));
            all.join(":")
        }
        None => "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar".to_owned(),
    }
}

fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join("bin").join("java"))
        .filter(|java| java.is_file())
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// Starts a standalone server on `data` (an empty directory that must outlive it) whose `dirs`
/// exist, persistent and empty, each with its child counter at `cversion`: their next
/// sequential child is numbered `cversion`.
pub fn server_with_counters(data: &Path, cversion: i32, dirs: &[&str]) -> ZkServer {
    let source = data.join("CounterSnapshot.java");
    std::fs::write(&source, SOURCE).expect("write CounterSnapshot.java");
    let output = Command::new(java())
        .arg("-cp")
        .arg(zookeeper_classpath())
        .arg(&source)
        .arg(data)
        .arg(cversion.to_string())
        .args(dirs)
        .stdout(Stdio::null())
        .output()
        .expect("run java (install default-jre-headless, or run `cargo xtask setup`)");
    assert!(
        output.status.success(),
        "writing the snapshot failed ({}); a `java` able to run a source file needs the \
         jdk.compiler module (Debian: default-jre-headless has it; elsewhere install a JDK):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(&source).expect("remove CounterSnapshot.java");
    ZkServer::builder()
        .config("dataDir", data.display().to_string())
        .start()
        .expect("start a server on the snapshot")
}
