use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed(ref = "/accounts/{id")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Unclosed;

#[distributed(ref = "/accounts/{}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Unnamed;

#[distributed(ref = "/accounts/{account-id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct NotAnIdentifier;

#[distributed(ref = "/accounts/id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Unmatched;

#[distributed(ref = "/accounts/{self}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Keyword;

fn main() {
    let _ = (Unclosed, Unnamed, NotAnIdentifier, Unmatched, Keyword);
}
