//! FHIR `string` values.

/// A trimmed domain string as a FHIR `string`: white space FHIR's JSON schema rejects
/// (`^[ \r\n\t\S]+$`: no-break, em, ideographic spaces, vertical tab, form feed, BOM…) becomes a
/// plain space, so HealthLake accepts the resource. Copies once; nothing else changes.
pub fn fhir_string(value: &str) -> String {
    let disallowed = |c: char| (c.is_whitespace() && !matches!(c, ' ' | '\t' | '\r' | '\n')) || c == '\u{feff}';
    if value.is_ascii() && !value.bytes().any(|b| b == 0x0b || b == 0x0c) || !value.contains(disallowed) {
        return value.to_owned();
    }
    let replaced: String = value.chars().map(|c| if disallowed(c) { ' ' } else { c }).collect();
    replaced.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::fhir_string;

    #[test]
    fn unicode_spaces_become_plain_spaces() {
        assert_eq!(fhir_string("Mary\u{a0}Ann"), "Mary Ann");
        assert_eq!(fhir_string("a\u{3000}b\u{2009}c\u{b}d\u{feff}"), "a b c d");
        assert_eq!(fhir_string("\u{feff}Zoë"), "Zoë");
    }

    #[test]
    fn everything_else_is_kept() {
        for value in ["Ada", "Zoë Björk-Ångström", "李小龍", "محمد", "line1\nline2\ttab"] {
            assert_eq!(fhir_string(value), value);
        }
    }
}
