// Enums, generic types (a ref type only for value arguments), placeholders named like keywords,
// and `#[derive]` before or after the attribute.
#![deny(warnings)]

use mazurka::{distributed, Ref, Session};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[distributed(ref = "/lights/{type}/{accountId}")]
pub enum Light {
    Red,
    Green,
}

#[distributed(ref = "/boxes/{id}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Boxed<T> {
    pub value: T,
}

async fn constructors<T>(session: &Session, value: T) -> mazurka::Result<Ref<Boxed<T>>>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let _: Ref<Light> = Light::zref(session, "traffic", 1, Light::Red).await?;
    Boxed::zref(session, "b", Boxed { value }).await
}

fn main() {
    let _ = constructors::<u8>;
    assert_eq!(Light::znode_path("a", "b").unwrap(), "/lights/a/b");
    assert_eq!(Boxed::<String>::znode_path(1).unwrap(), "/boxes/1");
}
