// The expansion names the runtime through `$crate`, and the standard names it needs through
// `mazurka::__private`: shadowing `mazurka`, `core`, `Ok`, `Some`, `Result`… in user code does not
// break it.
#![deny(warnings)]

mod shadowing {
    use std as mazurka;

    #[derive(Debug)]
    pub enum Outcome {
        Ok,
        Err,
        Some,
        None,
    }
    pub use Outcome::{Err, None, Ok, Some};
    pub type Result = ();
    pub mod core {}

    // `mazurka` is `std` here; the macro and its types come through `::mazurka`.
    pub async fn run(session: &::mazurka::Session) -> ::mazurka::Result<Outcome> {
        let _ = mazurka::time::Duration::from_secs(1);
        let r: Result = ();
        let _ = r;
        let a = ::mazurka::lock!(session, "/locks/shadow" => { Ok })?;
        let _ = ::mazurka::lock!(try session, "/locks/shadow" => { Err })?;
        let b = ::mazurka::lock!(try session, "/locks/shadow" => { Some } else { None })?;
        let _ = b;
        ::std::result::Result::Ok(a)
    }
}

fn main() {
    let _ = shadowing::run;
}
