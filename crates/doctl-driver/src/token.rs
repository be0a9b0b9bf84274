//! A DigitalOcean API token that never shows itself.

use std::fmt;

/// A DigitalOcean API token.
///
/// `Debug` and `Display` print `[REDACTED]`; only [`Token::expose`] gives the value, for the
/// one place that must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// The token's value, to put in a request or a child's environment. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug_and_display() {
        let token = Token::new("dop_v1_secret");
        assert_eq!(format!("{token:?}"), "Token([REDACTED])");
        assert_eq!(token.to_string(), "[REDACTED]");
        assert_eq!(token.expose(), "dop_v1_secret");
    }
}
