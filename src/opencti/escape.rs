//! JSON string escaping straight into a request body: a bundle of many objects is escaped
//! once into the `stixBundlePush` body, never built as a `Value` and serialised again.

/// `s` as a JSON string, escaped as serde_json escapes (`\"`, `\\`, the short forms of
/// `\b \f \n \r \t`, `\u00XX` for other control characters, everything else as is),
/// copying the runs between escapes at once.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// `s` escaped as inside a JSON string, without the quotes.
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Whether any of 8 bytes is below 0x20, a quote or a backslash (bytes above 0x7f, which
    // never need escaping, are masked out by `!word`).
    let special = |word: u64| {
        let below_space = word.wrapping_sub(ONES * 0x20);
        let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        let quote = quote & !(word ^ (ONES * u64::from(b'"')));
        let backslash = backslash & !(word ^ (ONES * u64::from(b'\\')));
        ((below_space & !word) | quote | backslash) & HIGHS != 0
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !special(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f => b'u',
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strings_are_escaped_exactly_as_serde_json_escapes_them(s in any::<String>()) {
            let mut out = Vec::new();
            super::push_json_string(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn json_like_text_is_escaped_exactly_too(s in "[ -~\"\\\\\n\t\u{1}\u{1f}é]{0,80}") {
            let mut out = Vec::new();
            super::push_json_string(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn control_characters_and_quotes() {
        let s = "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}é\u{7f}";
        let mut out = Vec::new();
        super::push_json_string(&mut out, s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(s).unwrap()
        );
    }
}
