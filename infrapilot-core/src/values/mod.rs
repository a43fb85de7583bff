//! Validated values.
//!
//! Every piece of user input that reaches a config file, a query or a log line passes through
//! one of these types first. A constructor either returns a value that is safe to use anywhere
//! or a [`ValueError`] that names the field, repeats the offending value and says why it was
//! refused. Serde deserialization goes through the same constructors, so a value cannot be
//! smuggled in through JSON.

mod cidr;
mod domain;
mod email;
mod labels;
mod upstream;

pub use cidr::Cidr;
pub use domain::Domain;
pub use email::Email;
pub use labels::{LabelKey, LabelValue, Labels};
pub use upstream::{ContainerName, Scheme, Upstream, UpstreamHost, UpstreamPath};

/// A value that was refused, with enough context for a user to fix it.
///
/// `field` starts as the kind of value (`"domain"`, `"upstream"`, …); callers that know the
/// API field name replace it with [`ValueError::at`], e.g. `domains[2]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason} (got {value:?})")]
pub struct ValueError {
    field: String,
    value: String,
    reason: String,
}

/// Longest input echoed back in an error, so a huge payload does not become a huge message.
const MAX_ECHO: usize = 128;

impl ValueError {
    /// Creates an error for `field` holding `value`, refused for `reason`.
    pub fn new(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        let value = if value.chars().count() > MAX_ECHO {
            let cut: String = value.chars().take(MAX_ECHO).collect();
            format!("{cut}…")
        } else {
            value.to_owned()
        };
        Self {
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }

    /// Renames the field, e.g. from `domain` to `domains[2]`.
    #[must_use]
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// The field (or value kind) that was refused.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The refused input, shortened to 128 characters.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the input was refused, in words a user can act on.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Implements `Serialize`/`Deserialize`/`JsonSchema` for a string-backed validated type by
/// going through its `FromStr` and `as_str`.
macro_rules! string_value_serde {
    ($ty:ty, $schema_name:literal, $description:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> String {
                $schema_name.to_owned()
            }

            fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
                schemars::schema::SchemaObject {
                    instance_type: Some(schemars::schema::InstanceType::String.into()),
                    metadata: Some(Box::new(schemars::schema::Metadata {
                        description: Some($description.to_owned()),
                        ..Default::default()
                    })),
                    ..Default::default()
                }
                .into()
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_value_serde;
