//! `Accept-Encoding` (RFC 9110 §12.5.3) for precompressed siblings: which of `br` and `gzip` a
//! client takes, in which order, and whether it would rather have the file as it is.
//!
//! The rules, as applied here:
//!
//! * The field is a list of codings, each with an optional weight `q` from 0 to 1 (three decimals
//!   at most). Names are case-insensitive; `x-gzip` is `gzip` (§8.4.1.3). Several field lines are
//!   one list. An element that does not parse (a bad weight) is ignored, as if absent.
//! * `q=0` means "not acceptable": `br;q=0` never gets brotli.
//! * `*` stands for every coding the list does not name: `*` alone takes `br` and `gzip`;
//!   `gzip, *;q=0` takes gzip only; `br;q=0, *` takes gzip and not brotli.
//! * A coding is chosen by weight, highest first; at equal weight `br` comes before `gzip`
//!   (smaller). `identity` competes only when the list names it (`identity;q=1, gzip;q=0.5`
//!   keeps the file as it is); a list that leaves it out is read as preferring the codings it
//!   names, as every browser's `gzip, deflate, br` means.
//! * No `Accept-Encoding` at all: the file as it is. RFC 9110 allows any coding then, but a client
//!   that says nothing may not decode one, so, like nginx's `gzip_static` and static-web-server,
//!   only a client that asks gets a coding. An empty field value means identity only.

/// A content coding the server can have precompressed siblings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Brotli, `FILE.br`.
    Br,
    /// Gzip, `FILE.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in the order preferred at equal weight.
    pub(crate) const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of the sibling, dot included.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// What is appended inside the quotes of the sibling's `ETag`, so that each representation has
    /// its own validator.
    pub(crate) fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "-br",
            Coding::Gzip => "-gz",
        }
    }
}

/// Weights in thousandths: 0 to 1000.
type Weight = u16;

/// The codings worth trying for a request, most wanted first: every coding in [`Coding::ALL`]
/// the client accepts (weight above 0) that it wants at least as much as the file as it is.
/// `values` are the values of every `Accept-Encoding` field line, in order; none means the
/// client sent no such field.
pub(crate) fn preferred<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Coding> {
    let mut seen_field = false;
    let mut br: Option<Weight> = None;
    let mut gzip: Option<Weight> = None;
    let mut identity: Option<Weight> = None;
    let mut star: Option<Weight> = None;
    for value in values {
        seen_field = true;
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for element in value.split(',') {
            let mut parts = element.split(';');
            let name = parts.next().unwrap_or("").trim_matches([' ', '\t']);
            if name.is_empty() {
                continue;
            }
            let mut weight: Option<Weight> = Some(1000);
            for param in parts {
                let Some((key, val)) = param.trim_matches([' ', '\t']).split_once('=') else {
                    weight = None;
                    break;
                };
                if key.trim_matches([' ', '\t']).eq_ignore_ascii_case("q") {
                    weight = parse_weight(val.trim_matches([' ', '\t']));
                }
            }
            let Some(weight) = weight else {
                continue; // a malformed element is ignored
            };
            let slot = if name.eq_ignore_ascii_case("br") {
                &mut br
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if name == "*" {
                &mut star
            } else {
                continue;
            };
            // Named twice: the higher weight (a client that lists a coding twice wants it).
            *slot = Some(slot.map_or(weight, |w: Weight| w.max(weight)));
        }
    }
    if !seen_field {
        return Vec::new();
    }
    let mut wanted: Vec<(Weight, usize, Coding)> = Coding::ALL
        .iter()
        .enumerate()
        .filter_map(|(rank, &coding)| {
            let explicit = match coding {
                Coding::Br => br,
                Coding::Gzip => gzip,
            };
            let weight = explicit.or(star)?;
            let identity_weight = identity.unwrap_or(0);
            (weight > 0 && weight >= identity_weight).then_some((weight, rank, coding))
        })
        .collect();
    // Highest weight first; at equal weight, the order of `Coding::ALL`.
    wanted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    wanted.into_iter().map(|(_, _, coding)| coding).collect()
}

/// Parses a weight (`qvalue` of RFC 9110 §12.4.2): `0`, `0.` and up to three digits, `1`, `1.`
/// and up to three zeros. Anything else is `None`.
fn parse_weight(s: &str) -> Option<Weight> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += Weight::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Br, Gzip};

    fn pref(values: &[&str]) -> Vec<Coding> {
        preferred(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn browsers_and_curl() {
        assert_eq!(pref(&["gzip, deflate, br, zstd"]), [Br, Gzip]);
        assert_eq!(pref(&["deflate, gzip, br, zstd"]), [Br, Gzip]);
        assert_eq!(pref(&["deflate, gzip"]), [Gzip]);
        assert_eq!(pref(&["gzip"]), [Gzip]);
        assert_eq!(pref(&["identity"]), [] as [Coding; 0]);
    }

    #[test]
    fn no_field_and_empty_field_mean_identity() {
        assert_eq!(pref(&[]), [] as [Coding; 0]);
        assert_eq!(pref(&[""]), [] as [Coding; 0]);
    }

    #[test]
    fn zero_weight_refuses() {
        assert_eq!(pref(&["br;q=0, gzip"]), [Gzip]);
        assert_eq!(pref(&["br;q=0.000, gzip;q=0"]), [] as [Coding; 0]);
        assert_eq!(pref(&["BR ; Q=0 , GZip"]), [Gzip]);
    }

    #[test]
    fn weights_order_and_br_wins_ties() {
        assert_eq!(pref(&["gzip;q=1.0, br;q=0.5"]), [Gzip, Br]);
        assert_eq!(pref(&["gzip;q=0.8, br;q=0.8"]), [Br, Gzip]);
        assert_eq!(pref(&["gzip, br;q=0.999"]), [Gzip, Br]);
        assert_eq!(pref(&["x-gzip"]), [Gzip]);
    }

    #[test]
    fn star_covers_what_is_not_named() {
        assert_eq!(pref(&["*"]), [Br, Gzip]);
        assert_eq!(pref(&["gzip, *;q=0"]), [Gzip]);
        assert_eq!(pref(&["br;q=0, *"]), [Gzip]);
        assert_eq!(pref(&["*;q=0"]), [] as [Coding; 0]);
        assert_eq!(pref(&["*;q=0.5, br"]), [Br, Gzip]);
    }

    #[test]
    fn identity_competes_only_when_named() {
        assert_eq!(pref(&["identity;q=1, gzip;q=0.5"]), [] as [Coding; 0]);
        assert_eq!(pref(&["identity;q=0.5, gzip"]), [Gzip]);
        assert_eq!(pref(&["identity;q=0, gzip;q=0.1"]), [Gzip]);
        assert_eq!(pref(&["gzip;q=0.1"]), [Gzip]);
    }

    #[test]
    fn several_lines_are_one_list_and_bad_elements_are_ignored() {
        assert_eq!(pref(&["gzip;q=0.5", "br"]), [Br, Gzip]);
        assert_eq!(pref(&["br;q=2, gzip"]), [Gzip]);
        assert_eq!(pref(&["br;q=0.5x, gzip;q=1.0000"]), [] as [Coding; 0]);
        assert_eq!(pref(&["br;q, gzip;level=9"]), [Gzip]);
        assert_eq!(pref(&[",, ,br"]), [Br]);
    }

    #[test]
    fn weights() {
        assert_eq!(parse_weight("0"), Some(0));
        assert_eq!(parse_weight("0."), Some(0));
        assert_eq!(parse_weight("0.5"), Some(500));
        assert_eq!(parse_weight("0.125"), Some(125));
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("1.001"), None);
        assert_eq!(parse_weight("0.1234"), None);
        assert_eq!(parse_weight(".5"), None);
        assert_eq!(parse_weight("2"), None);
        assert_eq!(parse_weight(""), None);
    }
}
