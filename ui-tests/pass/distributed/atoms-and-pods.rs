// `atom = …` gives `zatom`/`open_zatom` (an `Atom<T>`), `pod = …` gives `zpod`/`open_zpod` (a `Pod<T>`).
#![deny(warnings)]

use mazurka::{distributed, Atom, Json, Pod, Session};
use serde::{Deserialize, Serialize};

#[distributed(atom = "/counters/{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Counter(u64);

#[distributed(pod = "/documents/{id}", codec = "json")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Document(String);

async fn constructors(session: &Session) -> mazurka::Result<()> {
    let hits: Atom<Counter> = Counter::zatom(session, "home", Counter(0)).await?;
    hits.swap(|c| Counter(c.0 + 1)).await?;
    let _: Atom<Counter> = Counter::open_zatom(session, "home").await?;
    let doc: Pod<Document, Json> = Document::zpod(session, 7, Document(String::new())).await?;
    doc.edit(|d, _token| d.0.push('!')).await?;
    let _: Pod<Document, Json> = Document::open_zpod(session, 7).await?;
    Ok(())
}

fn main() {
    let _ = constructors;
    assert_eq!(Counter::znode_path("home").unwrap(), "/counters/home");
}
