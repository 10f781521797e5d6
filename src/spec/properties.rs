//! Runtime properties as a Druid JVM gets them: Java properties files (full
//! `java.util.Properties.load` syntax: `=`, `:` or blanks between key and
//! value, line continuations, `\uXXXX` and other escapes, `#`/`!`
//! comments), then `-D key=value` definitions on top, later wins.
//!
//! Values are often credentials: no error here ever quotes one.

use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

pub type Properties = BTreeMap<String, String>;

/// Read a properties file into `into` (its keys replace earlier ones).
pub fn read_file(path: &Path, into: &mut Properties) -> Result<()> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    read(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        into,
    )
}

fn read(reader: impl std::io::Read, what: &str, into: &mut Properties) -> Result<()> {
    // Java reads properties files as ISO-8859-1 unless told otherwise;
    // Druid's files are UTF-8 in practice, as the crate reads them.
    match java_properties::read(reader) {
        Ok(map) => {
            into.extend(map);
            Ok(())
        }
        // The crate's message may quote the line: only its number is shown.
        Err(e) => match e.line_number() {
            Some(n) => bail!("{what}:{n}: not a valid properties line (the value is not shown)"),
            None => bail!("{what}: not a valid properties file"),
        },
    }
}

/// A `-D` definition as Java reads it: the key up to the first `=`, the
/// value after it (`-Dkey` alone is the empty value).
pub fn define(definition: &str, into: &mut Properties) -> Result<()> {
    let (key, value) = definition.split_once('=').unwrap_or((definition, ""));
    if key.trim().is_empty() {
        bail!("-D: a definition without a key");
    }
    into.insert(key.trim().to_string(), value.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Properties {
        let mut p = Properties::new();
        read(text.as_bytes(), "t", &mut p).unwrap();
        p
    }

    /// The examples of `java.util.Properties.load`'s documentation.
    #[test]
    fn the_java_documentation_examples() {
        let p = parse(
            "Truth = Beautiful\n  Truth:Beautiful\nTruth                    :Beautiful\n\
             fruits                           apple, banana, pear, \\\n\
             \x20                                 cantaloupe, watermelon, \\\n\
             \x20                                 kiwi, mango\n\
             cheeses\n",
        );
        assert_eq!(p["Truth"], "Beautiful");
        assert_eq!(
            p["fruits"],
            "apple, banana, pear, cantaloupe, watermelon, kiwi, mango"
        );
        assert_eq!(p["cheeses"], "");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn escapes_comments_and_separators() {
        let p = parse(
            "# comment\n! also a comment\nkey\\:with\\=seps = v\\u00e9\\tx\n\
             druid.metadata.storage.connector.password={\"type\":\"default\",\"password\":\"p=w\"}\n\
             empty=\n",
        );
        assert_eq!(p["key:with=seps"], "v\u{e9}\tx");
        assert_eq!(
            p["druid.metadata.storage.connector.password"],
            "{\"type\":\"default\",\"password\":\"p=w\"}"
        );
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn errors_never_show_the_value() {
        let mut p = Properties::new();
        let e = read("a=1\nsecret=hunter2\\u12".as_bytes(), "f", &mut p)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.starts_with("f:"), "{e}");
    }

    #[test]
    fn definitions_split_at_the_first_equals_and_later_wins() {
        let mut p = Properties::new();
        define("druid.kinesis.secretKey=a=b:c", &mut p).unwrap();
        define("druid.flag", &mut p).unwrap();
        define("druid.flag=x", &mut p).unwrap();
        assert_eq!(p["druid.kinesis.secretKey"], "a=b:c");
        assert_eq!(p["druid.flag"], "x");
        assert!(define("=v", &mut p).is_err());
    }
}
