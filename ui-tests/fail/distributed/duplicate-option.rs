use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed(ref = "/a/{id}", ref = "/b/{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct TwoPaths;

#[distributed(ref = "/c", codec = "json", codec = "bincode")]
#[derive(Clone, Serialize, Deserialize)]
pub struct TwoCodecs;

#[distributed(ref = "/d", pod = "/e")]
#[derive(Clone, Serialize, Deserialize)]
pub struct TwoKinds;

fn main() {
    let _ = (TwoPaths, TwoCodecs, TwoKinds);
}
