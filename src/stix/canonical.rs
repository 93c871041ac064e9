//! RFC 8785 (JCS) canonical JSON, as the `stix2` library feeds it to UUIDv5.
//!
//! Keys are sorted (byte order equals UTF-16 order for every key these connectors use),
//! no whitespace is written, strings escape only `"`, `\` and control characters, and
//! integral floats lose their fraction (`1.0` → `1`).

use serde_json::Value;

/// Serialises `value` as canonical JSON text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(&map[key.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        // ECMAScript prints integral doubles without a fraction.
        out.push_str(&format!("{}", f as i128));
    } else {
        // Rust's Display is the shortest round-trip form, as ECMAScript's is, for the
        // magnitudes that occur in coordinates (no exponent between 1e-6 and 1e21).
        out.push_str(&format!("{f}"));
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    // Escapes are ASCII bytes, so every cut is on a character boundary.
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{:04x}", b));
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"x_opencti_location_type": "City", "name": "zürich"});
        assert_eq!(
            canonical_json(&v),
            r#"{"name":"zürich","x_opencti_location_type":"City"}"#
        );
    }

    #[test]
    fn escapes_only_what_jcs_escapes() {
        let v = json!({"a": "quote \"x\"\\ / \u{1}\n é"});
        assert_eq!(canonical_json(&v), r#"{"a":"quote \"x\"\\ / \u0001\n é"}"#);
    }

    #[test]
    fn writes_integral_floats_without_fraction() {
        assert_eq!(
            canonical_json(&json!([1.0, 37.4056, -122.0775, 15169])),
            "[1,37.4056,-122.0775,15169]"
        );
    }
}
