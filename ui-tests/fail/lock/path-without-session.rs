use mazurka::lock;

async fn demo() -> mazurka::Result<u32> {
    lock!("/locks/a" => { 1 })
}

fn main() {}
