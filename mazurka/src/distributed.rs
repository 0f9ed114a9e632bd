//! What `#[distributed]` implements: a type whose values live in znodes at a templated path.

use std::fmt::Display;

use crate::codec::Codec;
use crate::error::Result;
use crate::path::ZnodePath;
use crate::stm::Value;

/// A type whose values live in ZooKeeper, at paths built from a template such as
/// `"/accounts/{id}"`. Implemented by [`#[distributed]`](macro@crate::distributed), together with
/// typed constructors (`T::zref(&session, id, initial)`, `T::open_zref(&session, id)`) and an
/// inherent `T::znode_path(id)`; implement it by hand only to use a type in code generic over
/// distributed types.
///
/// ```
/// use mazurka::{distributed, Distributed};
/// use serde::{Deserialize, Serialize};
///
/// #[distributed(ref = "/bank/{bank}/accounts/{id}")]
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Account {
///     balance: i64,
/// }
///
/// fn describe<T: Distributed>() -> String {
///     format!("{} ({})", T::ZNODE_TEMPLATE, T::PLACEHOLDERS.join(", "))
/// }
/// assert_eq!(describe::<Account>(), "/bank/{bank}/accounts/{id} (bank, id)");
///
/// let path = Account::znode_path_from(&[("bank", &"north"), ("id", &42)])?;
/// assert_eq!(path, "/bank/north/accounts/42");
/// # Ok::<(), mazurka::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a #[distributed] type",
    label = "not #[distributed]",
    note = "add `#[distributed(ref = \"/path/{{id}}\")]` to the definition of `{Self}`"
)]
pub trait Distributed: Value {
    /// The path template, as written in the attribute: `{name}` placeholders, `{{`/`}}` for
    /// literal braces. Checked at compile time.
    const ZNODE_TEMPLATE: &'static str;

    /// The placeholder names, each once, in order of first appearance: the order of the typed
    /// constructors' parameters.
    const PLACEHOLDERS: &'static [&'static str];

    /// How values are encoded in their znodes ([`Bincode`](crate::Bincode) unless
    /// `codec = "json"`).
    type Codec: Codec;

    /// The path for these placeholder values, given by name (each rendered with [`Display`]).
    ///
    /// # Errors
    /// [`Error::InvalidPath`](crate::Error::InvalidPath) as
    /// [`ZnodePath::from_template`]: [`PathRule::BadParameter`](crate::PathRule::BadParameter)
    /// when a value does not render to one valid path segment,
    /// [`PathRule::BadTemplate`](crate::PathRule::BadTemplate) when the names do not match the
    /// placeholders.
    fn znode_path_from(params: &[(&str, &dyn Display)]) -> Result<ZnodePath> {
        template_path(Self::ZNODE_TEMPLATE, params)
    }
}

/// Fills in `template` with `params` (rendered with [`Display`]) and checks the result.
pub(crate) fn template_path(template: &str, params: &[(&str, &dyn Display)]) -> Result<ZnodePath> {
    let rendered: Vec<(&str, String)> = params
        .iter()
        .map(|(name, value)| (*name, value.to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = rendered
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    ZnodePath::from_template(template, &pairs)
}
