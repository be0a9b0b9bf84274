//! The one error type of this crate.

use std::fmt;

/// A spec format: what was being parsed or rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecFormat {
    /// YAML, as `doctl apps create --spec` reads it.
    Yaml,
    /// JSON, as the API sends and receives it.
    Json,
}

impl fmt::Display for SpecFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecFormat::Yaml => "YAML",
            SpecFormat::Json => "JSON",
        })
    }
}

/// Why a spec could not be built, parsed, rendered or accepted.
///
/// Validation errors name the field in App Platform's dotted style without indices
/// (`services.health_check.port`, `workers.envs.key`, `name`) and the rule it broke; App
/// Platform's API words the same thing as
/// `error validating app spec field "<field>": <reason>`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A field breaks one of App Platform's rules (or one of this crate's template rules).
    #[error("field \"{field}\": {reason}")]
    Invalid {
        /// Dotted field path without indices, e.g. `services.health_check.port`.
        field: String,
        /// The rule, stated with the offending value.
        reason: String,
    },
    /// The text is not a spec in the given format.
    #[error("parsing app spec {format}")]
    Parse {
        /// The format being parsed.
        format: SpecFormat,
        /// What the parser reported (position and field when it knows them).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The spec could not be rendered.
    #[error("rendering app spec as {format}")]
    Render {
        /// The format being rendered.
        format: SpecFormat,
        /// What the serializer reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl SpecError {
    /// A validation error on `field` (dotted, no indices) breaking the rule `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn parse(
        format: SpecFormat,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SpecError::Parse {
            format,
            source: Box::new(source),
        }
    }

    pub(crate) fn render(
        format: SpecFormat,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SpecError::Render {
            format,
            source: Box::new(source),
        }
    }

    /// The offending field for a validation error (`services.health_check.port`); `None` for
    /// parse and render errors, which have no single field.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { field, .. } => Some(field),
            SpecError::Parse { .. } | SpecError::Render { .. } => None,
        }
    }

    /// The rule that was broken, or what the parser or serializer reported.
    pub fn reason(&self) -> String {
        match self {
            SpecError::Invalid { reason, .. } => reason.clone(),
            SpecError::Parse { source, .. } | SpecError::Render { source, .. } => {
                source.to_string()
            }
        }
    }

    /// Whether this is a validation error (the API answers those with 400).
    pub fn is_invalid(&self) -> bool {
        matches!(self, SpecError::Invalid { .. })
    }

    /// The message App Platform's API gives for this error:
    /// `error validating app spec field "<field>": <reason>` for validation errors, and
    /// `parsing app spec <format>: <reason>` otherwise.
    pub fn api_message(&self) -> String {
        match self {
            SpecError::Invalid { field, reason } => {
                format!("error validating app spec field \"{field}\": {reason}")
            }
            other => format!("{other}: {}", other.reason()),
        }
    }
}
