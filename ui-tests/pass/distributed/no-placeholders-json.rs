// Without placeholders the constructors take no parameters; `codec = "json"` picks `Ref<T, Json>`.
#![deny(warnings)]

use mazurka::{distributed, Json, Ref, Session};
use serde::{Deserialize, Serialize};

#[distributed(ref = "/app/config", codec = "json")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub name: String,
}

#[distributed(codec = "bincode", ref = "/app/{{literal}}/{n}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Braces(u32);

async fn constructors(session: &Session) -> mazurka::Result<()> {
    let config: Ref<Config, Json> = Config::zref(session, Config { name: "x".into() }).await?;
    let again: Ref<Config, Json> = Config::open_zref(session).await?;
    let _: Ref<Braces> = Braces::zref(session, 1, Braces(0)).await?;
    assert_eq!(config.deref()?.name, again.deref()?.name);
    Ok(())
}

fn main() {
    let _ = constructors;
    assert_eq!(Config::znode_path().unwrap(), "/app/config");
    assert_eq!(Braces::znode_path(3).unwrap(), "/app/{literal}/3");
}
