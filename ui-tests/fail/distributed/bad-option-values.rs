use mazurka::distributed;
use serde::{Deserialize, Serialize};

const PATH: &str = "/accounts/{id}";

#[distributed(ref = PATH)]
#[derive(Clone, Serialize, Deserialize)]
pub struct NotALiteral;

#[distributed(ref = "/a", codec = "yaml")]
#[derive(Clone, Serialize, Deserialize)]
pub struct UnknownCodec;

#[distributed(ref = "/b", codec = "jsn")]
#[derive(Clone, Serialize, Deserialize)]
pub struct MisspelledCodec;

#[distributed(ref = "/c", crate = "not a path")]
#[derive(Clone, Serialize, Deserialize)]
pub struct BadCrate;

#[distributed(ref)]
#[derive(Clone, Serialize, Deserialize)]
pub struct NoValue;

fn main() {
    let _ = (NotALiteral, UnknownCodec, MisspelledCodec, BadCrate, NoValue);
}
