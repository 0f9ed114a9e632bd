use mazurka::distributed;

#[distributed(ref = "/accounts/{id}")]
fn account() {}

#[distributed(ref = "/unions/{id}")]
pub union Bits {
    pub a: u32,
    pub b: f32,
}

fn main() {
    account();
    let _ = Bits { a: 0 };
}
