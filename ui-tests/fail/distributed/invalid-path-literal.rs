use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed(ref = "accounts/{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Relative;

#[distributed(ref = "/accounts//{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct EmptySegment;

#[distributed(ref = "/accounts/{id}/")]
#[derive(Clone, Serialize, Deserialize)]
pub struct TrailingSlash;

#[distributed(ref = "/zookeeper/{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Reserved;

#[distributed(ref = "/")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Root;

fn main() {
    let _ = (Relative, EmptySegment, TrailingSlash, Reserved, Root);
}
