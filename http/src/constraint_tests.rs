//! Each pattern of [`super`] against the parser it describes, on every string of a small
//! alphabet of edge characters up to a few characters long and on long strings around the
//! limits: the pattern matches exactly what the server accepts.

use axum::http::HeaderValue;
use innkeep_engine::{Guest, HotelId, ReservationId};
use regex::Regex;

use super::*;

/// Every string of up to `max_len` characters over `alphabet`.
fn strings(alphabet: &[char], max_len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..max_len {
        let next: Vec<String> = last
            .iter()
            .flat_map(|s| {
                alphabet.iter().map(move |c| {
                    let mut t = s.clone();
                    t.push(*c);
                    t
                })
            })
            .collect();
        all.extend(next.iter().cloned());
        last = next;
    }
    all
}

/// A regex as JSON Schema means it: anchored by the pattern itself.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn assert_same(what: &str, pattern: &Regex, cases: &[String], accepts: impl Fn(&str) -> bool) {
    for s in cases {
        assert_eq!(
            pattern.is_match(s),
            accepts(s),
            "{what}: {s:?} (pattern says {}, server says {})",
            pattern.is_match(s),
            accepts(s)
        );
    }
}

/// White space, control characters (some both), a character that is neither but that
/// other regex dialects call space (U+FEFF), and ordinary letters.
const EDGES: &[char] = &[
    'a', ' ', '\t', '\u{1c}', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}', '\u{2000}', '\u{3000}',
    '\u{feff}', 'é', '测',
];

#[test]
fn code_pattern_is_parse_code() {
    let mut cases = strings(&['A', 'z', '0', '.', '_', '-', ' ', '/', 'é', '%'], 3);
    for n in [63, 64, 65] {
        cases.push("x".repeat(n));
    }
    assert_same("code", &re(&code_pattern()), &cases, |s| {
        HotelId::parse(s).is_ok()
    });
}

const PHONE: &str = "+86 138 0000 0000";
const EMAIL: &str = "guest@example.com";

#[test]
fn display_name_pattern_is_the_engines_name_rule() {
    let mut cases = strings(EDGES, 3);
    for n in [199, 200, 201] {
        cases.push("n".repeat(n));
        cases.push(format!(" \t{}\u{3000}", "n".repeat(n)));
        cases.push(format!("a{}a", " ".repeat(n - 2)));
    }
    assert_same(
        "name",
        &re(&trimmed_text_pattern(200, false)),
        &cases,
        |s| Guest::parse(s, PHONE, EMAIL).is_ok(),
    );
}

#[test]
fn reason_pattern_is_the_rooms_rule() {
    // `RoomState::decide_out_of_order`'s rule, which needs a room to call.
    let rule = |s: &str| {
        let t = s.trim();
        t.chars().count() <= MAX_OUT_OF_ORDER_REASON_CHARS && !t.chars().any(char::is_control)
    };
    let mut cases = strings(EDGES, 3);
    for n in [199, 200, 201] {
        cases.push("r".repeat(n));
        cases.push(format!("  {}  ", "r".repeat(n)));
    }
    assert_same(
        "reason",
        &re(&trimmed_text_pattern(MAX_OUT_OF_ORDER_REASON_CHARS, true)),
        &cases,
        rule,
    );
}

#[test]
fn phone_pattern_and_length_are_guest_parse() {
    let pattern = re(PHONE_PATTERN);
    let mut cases = strings(&['1', '+', '(', ' ', '-', 'a', '.'], 6);
    for digits in [4, 5, 20, 21] {
        cases.push("1".repeat(digits));
        cases.push(format!("+({})", "1".repeat(digits)));
    }
    // 32 characters and 33, with 20 digits.
    cases.push(format!("{}{}", "1".repeat(20), " ".repeat(12)));
    cases.push(format!("{}{}", "1".repeat(20), " ".repeat(13)));
    for s in &cases {
        let schema = pattern.is_match(s) && s.chars().count() <= 32;
        let server = Guest::parse("Name", s, EMAIL).is_ok();
        assert_eq!(schema, server, "phone {s:?}");
    }
}

#[test]
fn email_pattern_and_length_are_guest_parse() {
    let pattern = re(&email_pattern());
    let mut cases = strings(&['a', '@', '.', ' ', '\u{a0}', '\u{7f}', 'é'], 5);
    let domain = "x.example";
    for n in [244, 245, 246] {
        cases.push(format!("{}@{domain}", "l".repeat(n)));
    }
    for s in &cases {
        // Within 254 bytes, the length in characters is the bound in bytes.
        if s.len() > 254 && s.chars().count() <= 254 {
            continue;
        }
        let schema = pattern.is_match(s) && s.chars().count() <= 254;
        let server = Guest::parse("Name", PHONE, s).is_ok();
        assert_eq!(schema, server, "email {s:?}");
    }
}

#[test]
fn date_pattern_with_format_is_parse_date() {
    let pattern = re(DATE_PATTERN);
    let cases = [
        "2026-02-28",
        "2028-02-29",
        "2026-02-29",
        "2026-13-01",
        "0000-01-01",
        "9999-12-31",
        "2026-2-28",
        "20260228",
        "2026-02-28T00:00",
        "+2026-02-28",
        "٢٠٢٦-٠٢-٢٨",
        "",
    ];
    for s in cases {
        // `format: date` is RFC 3339's full-date: a real day of the Gregorian calendar.
        let real_day = innkeep_engine::jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok();
        let schema = pattern.is_match(s) && real_day;
        assert_eq!(
            schema,
            crate::wire::parse_date("date", s).is_ok(),
            "date {s:?}"
        );
    }
}

#[test]
fn out_trade_no_pattern_is_the_engines() {
    let id = ReservationId(uuid::Uuid::now_v7());
    let ours = id.out_trade_no().to_string();
    let cases = [
        ours.clone(),
        ours.to_uppercase().replacen("IK", "ik", 1),
        ours.to_uppercase(),
        format!("{ours}0"),
        ours[..ours.len() - 1].to_owned(),
        format!("ik{}", id.0.hyphenated()),
        "ik".to_owned(),
        String::new(),
    ];
    assert_same("out_trade_no", &re(OUT_TRADE_NO_PATTERN), &cases, |s| {
        ReservationId::from_out_trade_no(s).is_some()
    });
}

#[test]
fn if_match_pattern_is_if_match_values() {
    let pattern = re(&if_match_pattern());
    let mut cases = strings(&['"', 'W', '/', '3', '*', ',', ' ', '+', '0', 'x'], 5);
    cases.extend(
        [
            "\"18446744073709551615\"",
            "1234567890123456789",
            "00000000000000000000000000001",
            "W/\"7\", ,",
            "\t*\t, garbage",
        ]
        .map(str::to_owned),
    );
    for s in &cases {
        let value = HeaderValue::from_str(s).expect("visible ASCII");
        let server = crate::extract::if_match_values([&value]).is_ok();
        // Twenty significant digits may or may not fit a u64: the pattern says no.
        if server && !pattern.is_match(s) && s.chars().filter(char::is_ascii_digit).count() >= 20 {
            continue;
        }
        assert_eq!(pattern.is_match(s), server, "If-Match {s:?}");
    }
}

#[test]
fn last_event_id_pattern_is_the_streams() {
    let pattern = re(&last_event_id_pattern());
    let cases = strings(&['1', '0', '+', '-', ' ', 'x', ','], 4);
    for s in &cases {
        let server = crate::routes::events::parse_last_event_id(s).is_some();
        assert_eq!(pattern.is_match(s), server, "Last-Event-ID {s:?}");
    }
}

#[test]
fn trade_no_pattern_is_the_callbacks() {
    let pattern = re(&trade_no_pattern());
    for s in strings(EDGES, 2) {
        let server = !s.is_empty() && !s.chars().any(char::is_control);
        assert_eq!(pattern.is_match(&s), server, "trade_no {s:?}");
    }
}

#[test]
fn enumerations_are_the_engines() {
    let currencies = currency_codes();
    assert!(currencies.len() > 100, "{currencies:?}");
    for code in ["CNY", "EUR", "USD", "JPY"] {
        assert!(currencies.iter().any(|c| c == code), "{code}");
    }
    assert!(!currencies.iter().any(|c| c == "ABC"));
    let zones = time_zone_names();
    assert!(zones.len() > 300, "{}", zones.len());
    for zone in [
        "Asia/Shanghai",
        "UTC",
        "Europe/London",
        "Pacific/Kiritimati",
    ] {
        assert!(zones.iter().any(|z| z == zone), "{zone}");
    }
    assert!(zones.iter().all(|z| HotelTz::parse(z).is_ok()));
}
