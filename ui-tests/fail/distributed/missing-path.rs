use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed]
#[derive(Clone, Serialize, Deserialize)]
pub struct Bare;

#[distributed(codec = "json")]
#[derive(Clone, Serialize, Deserialize)]
pub struct CodecOnly;

fn main() {
    let _ = (Bare, CodecOnly);
}
