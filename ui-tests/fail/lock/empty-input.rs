use mazurka::lock;

async fn demo() -> mazurka::Result<()> {
    lock!()
}

fn main() {}
