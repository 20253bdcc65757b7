//! Showing text a tenant wrote: one rule for every place it appears.
//!
//! Owns: [`shown`], the form in which the host keeps and shows any text
//! a filter or an upload supplied (a manifest's version and description,
//! log lines, error values, a panic's stderr, a refused name), and
//! [`joined_tags`], the encoding of verdict tags in a Kafka header.
//!
//! The rule: such text is cut to a stated number of bytes first (so that
//! nothing is ever built from more than that), then every character that
//! could steer a terminal, forge a line or hide text is written as a
//! visible escape: `\n`, `\r`, `\t`, and `\u{..}` for the other control
//! characters (C0, DEL, C1: ESC, NUL, the 8-bit CSI) and for the Unicode
//! format characters that reorder or hide text (bidirectional overrides
//! and isolates, zero-width characters). What comes out is one line of
//! printable text, safe in a terminal table, a text log line, an HTTP
//! reply and an HTML page (which escapes markup as well).
//!
//! Must never: allocate in proportion to the input beyond `max` (the cut
//! comes before the escape), or change text that needs no escape.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest reason (a refusal, a quarantine, an error) shown to a tenant
/// or kept in a record, in bytes.
pub const MAX_REASON_BYTES: usize = 2048;

/// `text` cut to at most `max` bytes (at a character boundary, with how
/// much was cut said at the end) and with control and format characters
/// made visible. Borrows when nothing needed changing.
pub fn shown(text: &str, max: usize) -> Cow<'_, str> {
    let cut = cut_at(text, max);
    let rest = text.len() - cut.len();
    if rest == 0 && !cut.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(cut.len() + 16);
    for c in cut.chars() {
        push_visible(&mut out, c);
    }
    if rest > 0 {
        let _ = write!(out, "... ({rest} more bytes cut)");
    }
    Cow::Owned(out)
}

/// [`shown`] for an owned string: `text` itself when nothing needed
/// changing, else its shown form.
pub fn shown_owned(text: String, max: usize) -> String {
    match shown(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(safe) => safe,
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at a
/// character boundary.
pub fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `c` is written as an escape by [`shown`].
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Zero-width space, joiners, marks; left-to-right and
            // right-to-left marks.
            '\u{200B}'..='\u{200F}'
            // Line and paragraph separators; bidirectional embeddings and
            // overrides.
            | '\u{2028}'..='\u{202E}'
            // Word joiner, invisible operators; bidirectional isolates.
            | '\u{2060}'..='\u{2069}'
            // Byte order mark / zero-width no-break space.
            | '\u{FEFF}'
            // Interlinear annotation characters.
            | '\u{FFF9}'..='\u{FFFB}')
}

fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` with `%`, `,` and every byte outside printable ASCII written as
/// `%XX` (RFC 3986 percent-encoding of UTF-8 bytes): a list of such
/// values joined with commas splits back into exactly the values it was
/// made of, and decodes with any URL decoder (Python's
/// `urllib.parse.unquote`, JavaScript's `decodeURIComponent`). A tag of
/// letters, digits and punctuation other than `%` and `,` is unchanged.
pub fn percent_encoded(text: &str) -> Cow<'_, str> {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'%' && b != b',';
    if text.bytes().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// Tags as the `bandpass-tags` header carries them and reports show
/// them: each [`percent_encoded`], joined with commas.
pub fn joined_tags(tags: &[String]) -> String {
    tags.iter()
        .map(|t| percent_encoded(t))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `name` can name a filter, a deployment or a group:
/// `[a-z0-9-]`, 1 to `max` bytes. Such names go into topic names,
/// Kafka headers, metric labels and URLs unescaped.
pub fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "bright transient: mag 18.5 (r band) — étoile";
        assert!(matches!(shown(text, 1024), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn control_and_format_characters_become_visible_escapes() {
        let forged =
            "ok\n2695378462115010012  accept\r\x1b[2J\x00\u{9b}31m\u{202e}gpj.exe\u{200b}\t";
        let out = shown(forged, 1024);
        assert_eq!(
            out,
            "ok\\n2695378462115010012  accept\\r\\u{1b}[2J\\u{0}\\u{9b}31m\\u{202e}gpj.exe\\u{200b}\\t"
        );
        assert!(!out.chars().any(needs_escape), "{out}");
    }

    #[test]
    fn long_text_is_cut_before_it_is_escaped_and_says_how_much_was_cut() {
        let long = format!("{}{}", "é".repeat(1000), "\n".repeat(1_000_000));
        let out = shown(&long, 1025);
        // 512 two-byte characters fit in 1025 bytes; the rest is counted.
        assert!(out.starts_with(&"é".repeat(512)));
        assert!(
            out.ends_with(&format!("... ({} more bytes cut)", long.len() - 1024)),
            "{}",
            &out[out.len() - 40..]
        );
        assert!(out.len() < 1100);
        let many = "\n".repeat(10_000);
        let newlines = shown(&many, 8);
        assert_eq!(
            newlines,
            "\\n\\n\\n\\n\\n\\n\\n\\n... (9992 more bytes cut)"
        );
    }

    #[test]
    fn percent_encoded_tags_join_and_split_back_into_the_same_tags() {
        let tags = ["plain-tag", "a,b", "100%", "new\nline", "ünï", ""];
        let joined = joined_tags(&tags.map(String::from));
        assert_eq!(joined, "plain-tag,a%2Cb,100%25,new%0Aline,%C3%BCn%C3%AF,");
        let back: Vec<String> = joined.split(',').map(percent_decoded).collect();
        assert_eq!(back, tags);
    }

    /// The inverse, as a consumer would write it.
    fn percent_decoded(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
