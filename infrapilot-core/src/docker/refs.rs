//! Validated references to Docker objects and the small values Docker commands carry.

use std::fmt;
use std::str::FromStr;

use crate::values::{ValueError, string_value_serde};

fn check_name(field: &str, input: &str, max: usize, extra: &str) -> Result<(), ValueError> {
    let err = |reason: String| ValueError::new(field, input, reason);
    let mut chars = input.chars();
    match chars.next() {
        None => return Err(err("must not be empty".to_owned())),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(err("must start with a letter or digit".to_owned()));
        }
        Some(_) => {}
    }
    if let Some(bad) =
        chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c) || extra.contains(*c)))
    {
        let allowed = if extra.is_empty() {
            "letters, digits, '_', '.' and '-'".to_owned()
        } else {
            let listed: Vec<String> = extra.chars().map(|c| format!("'{c}'")).collect();
            format!("letters, digits, '_', '.', '-' and {}", listed.join(", "))
        };
        return Err(err(format!("contains {bad:?}; only {allowed} are allowed")));
    }
    if input.len() > max {
        return Err(err(format!("must be at most {max} characters long")));
    }
    Ok(())
}

macro_rules! object_ref {
    ($(#[$doc:meta])* $ty:ident, $tyname:literal, $field:literal, $max:literal, $extra:literal, $schema:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Validates a reference; a leading `/` (as Docker reports container names) is dropped.
            pub fn parse(input: &str) -> Result<Self, ValueError> {
                let trimmed = input.strip_prefix('/').unwrap_or(input);
                check_name($field, trimmed, $max, $extra).map_err(|e| e.at($field))?;
                Ok(Self(trimmed.to_owned()))
            }

            /// The reference as Docker takes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        string_value_serde!($ty, $tyname, $schema);
    };
}

object_ref!(
    /// A container by id (full or a unique prefix) or by name: `[A-Za-z0-9][A-Za-z0-9_.-]*`,
    /// at most 128 characters.
    ContainerRef,
    "ContainerRef",
    "container",
    128,
    "",
    "A container id (or unique id prefix) or name"
);

object_ref!(
    /// A network by id (or unique prefix) or name, at most 128 characters.
    NetworkRef,
    "NetworkRef",
    "network",
    128,
    "",
    "A network id (or unique id prefix) or name"
);

object_ref!(
    /// A volume name, at most 255 characters.
    VolumeRef,
    "VolumeRef",
    "volume",
    255,
    "",
    "A volume name"
);

object_ref!(
    /// An image by id (`sha256:…` or a prefix) or reference (`registry:5000/team/app:1.2@sha256:…`),
    /// at most 255 characters.
    ImageRef,
    "ImageRef",
    "image",
    255,
    "/:@",
    "An image id or reference (repository[:tag][@digest])"
);

object_ref!(
    /// A compose project name, as in the `com.docker.compose.project` label, at most 128
    /// characters.
    ProjectName,
    "ProjectName",
    "project",
    128,
    "",
    "A compose project name"
);

#[cfg(feature = "openapi")]
mod openapi_impls {
    use super::{ContainerRef, ImageRef, NetworkRef, ProjectName, VolumeRef};

    macro_rules! string_schema {
        ($($ty:ident),*) => {$(
            impl utoipa::PartialSchema for $ty {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .into()
                }
            }
            impl utoipa::ToSchema for $ty {}
        )*};
    }
    string_schema!(ContainerRef, NetworkRef, VolumeRef, ImageRef, ProjectName);
}

/// The longest argument of an exec command, bytes.
pub const MAX_EXEC_ARG: usize = 4096;
/// The most arguments an exec command may have.
pub const MAX_EXEC_ARGS: usize = 128;

/// A command to execute in a container: the argument vector handed to Docker as is (no shell
/// is involved unless the user names one as the first argument).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecCommand(Vec<String>);

impl ExecCommand {
    /// Validates an argument vector: 1 to 128 arguments, the first non-empty, none longer than
    /// 4096 bytes, none containing NUL.
    pub fn new(args: Vec<String>) -> Result<Self, ValueError> {
        let joined = || args.join(" ");
        if args.is_empty() {
            return Err(ValueError::new(
                "cmd",
                "",
                "must name a program to run, e.g. [\"sh\"]",
            ));
        }
        if args.len() > MAX_EXEC_ARGS {
            return Err(ValueError::new(
                "cmd",
                &joined(),
                format!("must have at most {MAX_EXEC_ARGS} arguments"),
            ));
        }
        if args[0].trim().is_empty() {
            return Err(ValueError::new(
                "cmd[0]",
                &args[0],
                "the program must not be empty",
            ));
        }
        for (i, arg) in args.iter().enumerate() {
            if arg.contains('\0') {
                return Err(ValueError::new(
                    format!("cmd[{i}]"),
                    arg,
                    "must not contain NUL",
                ));
            }
            if arg.len() > MAX_EXEC_ARG {
                return Err(ValueError::new(
                    format!("cmd[{i}]"),
                    arg,
                    format!("must be at most {MAX_EXEC_ARG} bytes"),
                ));
            }
        }
        Ok(Self(args))
    }

    /// The arguments.
    pub fn args(&self) -> &[String] {
        &self.0
    }
}

impl serde::Serialize for ExecCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ExecCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let args = Vec::<String>::deserialize(d)?;
        Self::new(args).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ExecCommand {
    fn schema_name() -> String {
        "ExecCommand".to_owned()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        <Vec<String>>::json_schema(generator)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ExecCommand {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            )
            .min_items(Some(1))
            .max_items(Some(MAX_EXEC_ARGS))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ExecCommand {}

/// The user an exec runs as: `name`, `uid`, `name:group` or `uid:gid`, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecUser(String);

impl ExecUser {
    /// Validates a user specification.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        check_name("user", input, 64, ":").map_err(|e| e.at("user"))?;
        Ok(Self(input.to_owned()))
    }

    /// The user as Docker takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ExecUser {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ExecUser,
    "ExecUser",
    "A user: name, uid, name:group or uid:gid"
);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ExecUser {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ExecUser {}

/// An absolute directory inside a container, at most 1024 bytes, without NUL or `..`
/// components.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerPath(String);

impl ContainerPath {
    /// Validates a path.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("workdir", input, reason);
        if !input.starts_with('/') {
            return Err(err("must be an absolute path starting with '/'"));
        }
        if input.contains('\0') {
            return Err(err("must not contain NUL"));
        }
        if input.split('/').any(|part| part == "..") {
            return Err(err("must not contain '..'"));
        }
        if input.len() > 1024 {
            return Err(err("must be at most 1024 bytes"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ContainerPath,
    "ContainerPath",
    "An absolute path inside a container"
);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ContainerPath {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ContainerPath {}

impl fmt::Display for ExecCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_accept_ids_and_names_and_refuse_anything_else() {
        assert_eq!(ContainerRef::parse("/web-1").unwrap().as_str(), "web-1");
        assert!(ContainerRef::parse("3f2a9c").is_ok());
        for bad in ["", "-x", "a b", "a/b", "a;rm -rf", "a\nb", "../x"] {
            let err = ContainerRef::parse(bad).unwrap_err();
            assert_eq!(err.field(), "container", "{bad:?}");
        }
        assert!(ImageRef::parse("registry.local:5000/team/app:1.2@sha256:abc").is_ok());
        assert!(ImageRef::parse("sha256:0123").is_ok());
        assert!(ImageRef::parse("app latest").is_err());
        assert!(VolumeRef::parse(&"v".repeat(256)).is_err());
        assert_eq!(
            ProjectName::parse("my proj").unwrap_err().field(),
            "project"
        );
    }

    #[test]
    fn exec_commands_are_argument_vectors_with_limits() {
        assert!(ExecCommand::new(vec!["sh".into(), "-c".into(), "echo $HOME; ls".into()]).is_ok());
        assert_eq!(ExecCommand::new(vec![]).unwrap_err().field(), "cmd");
        assert_eq!(
            ExecCommand::new(vec![" ".into()]).unwrap_err().field(),
            "cmd[0]"
        );
        assert_eq!(
            ExecCommand::new(vec!["a".into(), "b\0".into()])
                .unwrap_err()
                .field(),
            "cmd[1]"
        );
        assert!(ExecCommand::new(vec!["x".into(); MAX_EXEC_ARGS + 1]).is_err());
        let parsed: Result<ExecCommand, _> = serde_json::from_str("[]");
        assert!(parsed.is_err());
        assert!(ExecUser::parse("1000:1000").is_ok());
        assert!(ExecUser::parse("root;id").is_err());
        assert!(ContainerPath::parse("/srv/app").is_ok());
        assert!(ContainerPath::parse("srv").is_err());
        assert!(ContainerPath::parse("/srv/../etc").is_err());
    }
}
