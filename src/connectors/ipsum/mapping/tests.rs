//! Unit tests of `mapping`.

use super::*;

fn ips(p: &Parsed) -> Vec<String> {
    p.ips.iter().map(|i| i.ip.to_string()).collect()
}

#[test]
fn reference_examples_where_the_reference_and_we_agree() {
    let p = parse("# c\n1.2.3.4\n10.0.0.1\n8.8.8.8\n");
    assert_eq!(ips(&p), ["1.2.3.4", "8.8.8.8"]);
    assert_eq!((p.comments, p.private, p.junk), (1, 1, 0));
    let p = parse("5.6.7.0/30\n192.168.0.0/24\n0.0.0.0/0\n100.64.0.1\n224.0.0.1\n9.9.9.9\n");
    assert_eq!(
        ips(&p),
        ["5.6.7.1", "5.6.7.2", "100.64.0.1", "224.0.0.1", "9.9.9.9"]
    );
    let p = parse("2001:4860:4860:0:0:0:0:8888\n::1\n");
    assert_eq!(ips(&p), ["2001:4860:4860::8888"]);
}

#[test]
fn junk_is_skipped_and_counted_instead_of_stopping() {
    let p = parse("1.1.1.1\n\n2.2.2.2\t7\n3.3.3.3 x\n1.2.3.4/24\nhello\n01.2.3.4\n4.4.4.4\n");
    assert_eq!(ips(&p), ["1.1.1.1", "2.2.2.2", "4.4.4.4"]);
    assert_eq!(p.ips[1].count, Some(7));
    assert_eq!((p.blank, p.junk), (1, 4));
    assert_eq!(p.junk_examples.len(), 4);
}

#[test]
fn small_networks_expand_like_python_hosts() {
    assert_eq!(ips(&parse("5.6.7.8/31\n")), ["5.6.7.8", "5.6.7.9"]);
    assert_eq!(ips(&parse("5.6.7.8/32\n")), ["5.6.7.8"]);
    assert_eq!(
        ips(&parse("2600::/126\n")),
        ["2600::1", "2600::2", "2600::3"]
    );
    assert_eq!(ips(&parse("2600::/127\n")), ["2600::", "2600::1"]);
    let p = parse("2600::/64\n");
    assert!(
        p.ips.is_empty() && p.junk == 1,
        "an IPv6 /64 is refused, not exploded"
    );
}

#[test]
fn private_ranges_follow_python_3_12() {
    for ip in [
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "::ffff:8.8.8.8",
        "2001:db8::1",
        "fd00::1",
        "255.255.255.255",
    ] {
        assert!(is_private(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "100.64.0.1",
        "224.0.0.1",
        "8.8.8.8",
        "192.0.0.9",
        "2001:4860::8888",
    ] {
        assert!(!is_private(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn tolerates_crlf_and_leading_whitespace() {
    let p = parse("1.1.1.1\r\n  2.2.2.2  \r\n  # indented comment\n");
    assert_eq!(ips(&p), ["1.1.1.1", "2.2.2.2"]);
}
