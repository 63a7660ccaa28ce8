//! deb822 text: apt-cache's package stanzas and `.sources` files alike.

/// One deb822 paragraph (a control stanza or a `.sources` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of a field (names are case-insensitive); continuation
    /// lines are joined with newlines.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits deb822 text into paragraphs; `#` comment lines are skipped and do
/// not end a paragraph, blank lines do.
pub fn parse_paragraphs(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.fields.last_mut() {
                let l = line.trim();
                v.push('\n');
                v.push_str(if l == "." { "" } else { l });
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_stanzas() {
        let text = "Package: linux-image-cloud-amd64\n\
                    Version: 7.2.13-1\n\
                    Depends: linux-base-cloud-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\n\
                    Description: Linux\n more text\n .\n end\n\
                    Size: 1508\n\
                    \n\
                    Package: kmod\nVersion: 34-1\n";
        let p = parse_paragraphs(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("package"), Some("linux-image-cloud-amd64"));
        assert_eq!(p[0].get("Description"), Some("Linux\nmore text\n\nend"));
        assert_eq!(p[1].get("Version"), Some("34-1"));
    }
}
