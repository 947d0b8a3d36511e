//! Scheduler options: the text after `-s NAME` options (`"table_size=65537,port"`), parsed once
//! when a service is created, never on the packet path.

use std::fmt;

/// A parsed option list: `key=value` pairs and bare flags, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    items: Vec<(String, Option<String>)>,
}

/// Why an option list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(pub String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

impl Options {
    /// Parse `"a=1,b,c=x"`. Empty items are ignored; keys use `[a-z0-9_-]`.
    pub fn parse(text: &str) -> Result<Self, OptionError> {
        let mut items = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                None => (item, None),
            };
            let valid = !key.is_empty()
                && key.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                return Err(OptionError(format!("bad scheduler option name {key:?}")));
            }
            items.push((key.to_string(), value));
        }
        Ok(Self { items })
    }

    /// Is the bare flag (or key) present?
    pub fn has(&self, key: &str) -> bool {
        self.items.iter().any(|(k, _)| k == key)
    }

    /// The value of `key=value`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A numeric option, with its default when absent.
    pub fn get_u64(&self, key: &str, default: u64) -> Result<u64, OptionError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| OptionError(format!("scheduler option {key}={v} is not a number"))),
        }
    }

    /// Refuse any option not in `known`, so a typo is an error rather than silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), OptionError> {
        match self
            .items
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) if known.is_empty() => Err(OptionError(format!(
                "unknown scheduler option {k:?}: this scheduler takes none"
            ))),
            Some((k, _)) => Err(OptionError(format!(
                "unknown scheduler option {k:?}; known: {}",
                known.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_flags() {
        let o = Options::parse("table_size=65537, port ,,fallback").unwrap();
        assert_eq!(o.get("table_size"), Some("65537"));
        assert!(o.has("port"));
        assert!(o.has("fallback"));
        assert_eq!(o.get_u64("table_size", 1).unwrap(), 65537);
        assert_eq!(o.get_u64("missing", 7).unwrap(), 7);
        assert!(o.only(&["table_size", "port", "fallback"]).is_ok());
        assert!(o.only(&["port"]).is_err());
    }

    #[test]
    fn refuses_bad_names_and_numbers() {
        assert!(Options::parse("Bad=1").is_err());
        assert!(Options::parse("=1").is_err());
        let o = Options::parse("n=abc").unwrap();
        assert!(o.get_u64("n", 0).is_err());
        assert_eq!(Options::parse("").unwrap(), Options::default());
    }
}
