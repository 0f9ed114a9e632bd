//! Procedural macros for [mazurka](https://docs.rs/mazurka). Use them through `mazurka`, which
//! re-exports them and documents them; the generated code relies on `mazurka::__private`.
//!
//! Each macro is a thin entry point here; its parser, checks and expansion live in a module of
//! its own (`parse` returns `syn::Result`, `expand` cannot fail).

mod common;
mod distributed;
mod dosync;
mod lock;

use proc_macro::TokenStream;

/// The implementation of `mazurka::lock!`; use that macro, which documents the forms.
///
/// Input: an optional `crate = <path to mazurka>;` (the `mazurka::lock!` wrapper passes
/// `$crate`; `::mazurka` otherwise), then the `lock!` arguments.
#[proc_macro]
pub fn lock(input: TokenStream) -> TokenStream {
    lock::lock(input.into()).into()
}

/// Typed constructors for values that live in znodes: `#[distributed(ref = "/accounts/{id}")]` on
/// a serde struct or enum gives it `T::zref(&session, id, initial)` and `T::open_zref(&session, id)`,
/// which return the [`Ref<T>`](https://docs.rs/mazurka/latest/mazurka/struct.Ref.html) at the path
/// with each `{placeholder}` filled in.
///
/// The type is emitted unchanged. Its values must be able to live in a ref: `Serialize`,
/// `Deserialize`, `Clone`, `Send + Sync + 'static` (derive the first three).
///
/// ```no_run
/// use mazurka::{distributed, Ref, Session};
/// use serde::{Deserialize, Serialize};
///
/// #[distributed(ref = "/bank/accounts/{id}")]
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Account {
///     pub balance: i64,
/// }
///
/// #[distributed(ref = "/bank/config", codec = "json")]
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct BankConfig {
///     pub overdraft: bool,
/// }
///
/// # async fn demo() -> mazurka::Result<()> {
/// let session = Session::connect("127.0.0.1:2181").await?;
/// // Created with this value if absent; an existing value is kept.
/// let alice: Ref<Account> = Account::zref(&session, "alice", Account { balance: 100 }).await?;
/// // Must exist.
/// let again = Account::open_zref(&session, "alice").await?;
/// assert_eq!(again.deref()?.balance, alice.deref()?.balance);
/// // No placeholders: no parameters. `codec = "json"` gives a `Ref<BankConfig, Json>`.
/// let config: Ref<BankConfig, mazurka::Json> = BankConfig::zref(&session, BankConfig { overdraft: false }).await?;
///
/// assert_eq!(Account::ZNODE_TEMPLATE, "/bank/accounts/{id}");
/// assert_eq!(Account::znode_path(42)?, "/bank/accounts/42");
/// # let _ = config; Ok(()) }
/// ```
///
/// # Options
///
/// | option | |
/// |---|---|
/// | `ref = "/path/{name}"` | the values are [`Ref`](https://docs.rs/mazurka/latest/mazurka/struct.Ref.html)s at this path template (required) |
/// | `codec = "json"` | encode values as JSON ([`Json`](https://docs.rs/mazurka/latest/mazurka/struct.Json.html)); the default is `"bincode"` |
/// | `crate = "path"` | the path to `mazurka`, if it is not `::mazurka` (a renamed dependency, a re-export) |
/// | `atom = "…"`, `pod = "…"` | reserved for atoms and pods: not available yet (a compile error) |
///
/// # Generated items
///
/// For `#[distributed(ref = "/bank/{bank}/accounts/{id}")] pub struct Account`, with the type's
/// visibility (`Display` is `std::fmt::Display`):
///
/// | item | |
/// |---|---|
/// | `pub const ZNODE_TEMPLATE: &'static str` | `"/bank/{bank}/accounts/{id}"` |
/// | `pub fn znode_path(bank: impl Display, id: impl Display) -> mazurka::Result<ZnodePath>` | the filled-in path |
/// | `pub async fn zref(session: &Session, bank: impl Display, id: impl Display, initial: Self) -> mazurka::Result<Ref<Self>>` | the ref, created with `initial` if absent (parents too) |
/// | `pub async fn open_zref(session: &Session, bank: impl Display, id: impl Display) -> mazurka::Result<Ref<Self>>` | the existing ref |
/// | `impl mazurka::Distributed for Account` | the template, the placeholder names and the codec, for generic code |
///
/// There is one parameter per distinct placeholder, in order of first appearance, named after it
/// (`{type}` gives `r#type`); a template without placeholders gives `Cfg::zref(&session, initial)`
/// and `Cfg::open_zref(&session)`. With `codec = "json"` the refs are `Ref<Self, Json>`.
///
/// # Paths
///
/// - **At compile time**, on the literal: the template's syntax (`{name}` with `name` an
///   identifier; `{{` and `}}` for literal braces) and ZooKeeper's path rules, with every
///   placeholder filled in (the rules of `mazurka::path`: absolute, no empty, `.` or `..`
///   segments, no trailing `/`, no forbidden characters, not under `/zookeeper`). The message says
///   which rule.
/// - **At run time**, each parameter, rendered with `Display`, must be exactly one valid path
///   segment (not empty, no `/`, not `.` or `..`, no forbidden character): a parameter can never
///   reach outside its place in the tree. Otherwise the constructors return
///   `Err(Error::InvalidPath { rule: PathRule::BadParameter, .. })` before sending anything.
///
/// # Errors
///
/// The generated constructors return:
/// - `Error::InvalidPath` (see above);
/// - as `Ref::new` / `Ref::open`: `Error::ZooKeeper` with `NoNode` from `open_zref` when there is
///   no value; `Error::Codec` when the value there is not a `T` written with the codec;
///   `Error::ValueTooLarge` when `initial` does not fit a znode; session errors.
///
/// # Without the macro
///
/// `#[distributed(ref = "/bank/accounts/{id}")]` on `Account` adds what this adds:
///
/// ```no_run
/// use std::fmt::Display;
/// use mazurka::{Bincode, Distributed, Ref, Session, ZnodePath};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Account { balance: i64 }
///
/// impl Account {
///     pub const ZNODE_TEMPLATE: &'static str = "/bank/accounts/{id}";
///
///     pub fn znode_path(id: impl Display) -> mazurka::Result<ZnodePath> {
///         ZnodePath::from_template(Self::ZNODE_TEMPLATE, &[("id", id.to_string().as_str())])
///     }
///
///     pub async fn zref(session: &Session, id: impl Display, initial: Self) -> mazurka::Result<Ref<Self>> {
///         Ref::new(session, Self::znode_path(id)?.into_string(), initial).await
///     }
///
///     pub async fn open_zref(session: &Session, id: impl Display) -> mazurka::Result<Ref<Self>> {
///         Ref::open(session, Self::znode_path(id)?.into_string()).await
///     }
/// }
///
/// impl Distributed for Account {
///     const ZNODE_TEMPLATE: &'static str = "/bank/accounts/{id}";
///     const PLACEHOLDERS: &'static [&'static str] = &["id"];
///     type Codec = Bincode;
/// }
/// ```
///
/// # Compile errors
///
/// Each on the offending tokens, all reported at once; the type is still emitted, and so are the
/// constructors whenever the template could be read, so one mistake does not cascade:
/// - a malformed template or a path that breaks a rule (on the literal);
/// - an unknown option (with the list of options, or "did you mean"), an option given twice, a value
///   that is not a string literal, an unknown codec;
/// - no `ref = …`; `atom`/`pod` (not available yet); a placeholder named `self` or `_`;
/// - an item that is not a struct or an enum;
/// - a type that is not a serde value (on the type's name: "the trait bound `Account: Serialize`
///   is not satisfied").
#[proc_macro_attribute]
pub fn distributed(args: TokenStream, item: TokenStream) -> TokenStream {
    distributed::distributed(args.into(), item.into()).into()
}

/// Runs an `async fn`'s body as a transaction: `#[dosync]` on
/// `async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()>`
/// makes every call one atomic, serializable unit of reads and writes of refs, committed as one
/// ZooKeeper `multi`, and rerun from the start after a conflict — as `mazurka::dosync` does for a
/// closure.
///
/// ```no_run
/// use mazurka::{distributed, dosync, Ref};
/// use serde::{Deserialize, Serialize};
///
/// #[distributed(ref = "/bank/accounts/{id}")]
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Account {
///     pub balance: i64,
/// }
///
/// /// Moves `amount` from one account to the other, atomically.
/// #[dosync]
/// pub async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()> {
///     let balance = from.get().await?.balance;
///     if balance < amount {
///         return Err(mazurka::Error::Invalid { path: from.path().to_string(), reason: "insufficient funds".into() });
///     }
///     from.alter(|a| Account { balance: a.balance - amount }).await?;
///     to.alter(|a| Account { balance: a.balance + amount }).await?;
///     Ok(())
/// }
///
/// pub struct Bank {
///     pub reserve: Ref<Account>,
/// }
///
/// impl Bank {
///     /// Methods take `&self`; options go in the attribute.
///     #[dosync(retry_limit = 50)]
///     pub async fn fund(&self, to: &Ref<Account>, amount: i64) -> mazurka::Result<i64> {
///         transfer(&self.reserve, to, amount).await?; // joins this transaction
///         Ok(self.reserve.get().await?.balance)
///     }
/// }
/// ```
///
/// # What the body may do
///
/// - The body **runs once per attempt**: keep side effects out of it (or register them with
///   `mazurka::after_commit`, which runs them once, after the commit). Reads and writes of refs
///   (`get`, `alter`, `ref_set`, `commute`, `ensure`) take part in the transaction, in the body and
///   in anything it awaits on the same task; another `#[dosync]` fn called inside joins it.
/// - `?` and `return` leave the body with the fn's return type, as without the macro. Returning
///   `Err` **aborts**: nothing is written, the error is returned, there is no retry.
/// - Every argument must be available to every attempt: each attempt gets its own copy, through
///   `Clone` — references and `Copy` values are simply copied, a `String` is cloned. Methods take
///   `&self`. `&mut` arguments, `&mut self` and `self` by value are compile errors.
///
/// # Options
///
/// | option | |
/// |---|---|
/// | `retry_limit = n` | attempts before `Error::RetryLimit` (a `u32` expression, at least 1; default 1000) |
/// | `crate = "path"` | the path to `mazurka`, if it is not `::mazurka` |
///
/// # Without the macro
///
/// `#[dosync(retry_limit = 50)]` on `transfer` above does what this does:
///
/// ```no_run
/// # use mazurka::{Ref, TxnOptions};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Account { balance: i64 }
/// pub async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()> {
///     mazurka::dosync_with(TxnOptions::default().retry_limit(50), move || {
///         // Each attempt's copies of the arguments (`Clone::clone`; here, copies).
///         let (from, to, amount) = (from, to, amount);
///         async move {
///             let result: mazurka::Result<()> = async move {
///                 // the body
///                 from.alter(|a| Account { balance: a.balance - amount }).await?;
///                 to.alter(|a| Account { balance: a.balance + amount }).await?;
///                 Ok(())
///             }
///             .await;
///             result
///         }
///     })
///     .await
/// }
/// ```
///
/// The return type may be any `Result<T, E>` whose `E` implements `From<mazurka::Error>` (the
/// transaction's own errors are returned through it): `mazurka::Result<T>`, or for instance an
/// application error with a `From<mazurka::Error>` impl.
///
/// # Errors
///
/// The body's own `Err` (the transaction is aborted); `Error::RetryLimit` after too many
/// conflicts; `Error::Invalid` if a validator refused a new value; `Error::ValueTooLarge` if the
/// writes do not fit one request; `Error::OutcomeUnknown` if a commit's reply was lost and its
/// outcome could not be decided; session errors — each converted into `E` with `From`.
///
/// # Cancel safety
///
/// As `mazurka::dosync`: dropping the future before the commit is sent discards the attempt
/// (nothing is written); dropping it while the commit is in flight leaves the outcome unknown to
/// the caller (it applies entirely or not at all).
///
/// # Compile errors
///
/// Each on the offending tokens, all reported at once:
/// - a fn that is not `async` (on `fn`), or has no body; an item that is not a fn;
/// - a return type that is not a `Result` whose error type implements `From<mazurka::Error>` (on
///   the return type), or that is missing or contains `impl Trait`;
/// - an argument that is not `Clone` (on the argument: "cannot be reused by every attempt");
///   `&mut` arguments, `&mut self`, `self` by value;
/// - an unknown option (with the list of options, or "did you mean"), an option given twice,
///   `retry_limit = 0`.
#[proc_macro_attribute]
pub fn dosync(args: TokenStream, item: TokenStream) -> TokenStream {
    dosync::dosync(args.into(), item.into()).into()
}
