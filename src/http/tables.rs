//! Byte-class tables shared by the request parser, the framing layer and the chunked decoder.
//!
//! Each table is a `[bool; 256]` built at compile time, so a class test is one indexed load
//! (the index is a `u8`, so the compiler drops the bounds check).

/// Builds a table that is `true` for every byte in `set` and for ASCII letters and digits when
/// `alnum` is set.
const fn build(set: &[u8], alnum: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    if alnum {
        let mut b = 0usize;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_alphanumeric() {
                table[b] = true;
            }
            b += 1;
        }
    }
    table
}

/// `tchar` (RFC 9110 §5.6.2): the bytes of a token (methods, field names, codings).
pub(crate) static TCHAR: [bool; 256] = build(b"!#$%&'*+-.^_`|~", true);

/// Bytes allowed anywhere in a request-target: RFC 3986 `pchar` plus `/`, `?` and the `[` `]`
/// of IP literals (checked separately per target form). `%` is validated afterwards.
pub(crate) static URI: [bool; 256] = build(b"-._~!$&'()*+,;=:@/?%[]", true);

/// Bytes of a `reg-name` host (RFC 3986 §3.2.2) *without* the comma, which would let
/// `Host: a,b` look like a list. `%` is validated afterwards.
pub(crate) static REG_NAME: [bool; 256] = build(b"-._~!$&'()*+;=%", true);

/// `true` for a byte that may not appear in a field value: a control other than HTAB, or DEL.
/// Branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn is_bad_value_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') | (b == 0x7f)
}

/// Index of the first byte of `s` that may not appear in a field value.
///
/// Scans eight bytes at a time (SWAR): one subtraction and mask per word tells whether the word
/// holds a byte below 0x20 or a DEL; only such a word (one per line: the CR, plus words with an
/// HTAB) is searched byte by byte, so the result is exact.
#[inline]
pub(crate) fn first_bad_value_byte(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut base = 0;
    let mut words = s.chunks_exact(8);
    for word in words.by_ref() {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        // A high bit survives exactly when some byte is < 0x20 (resp. == 0x7f); bytes >= 0x80
        // (obs-text) never trigger it.
        let below_space = x.wrapping_sub(LO * 0x20) & !x & HI;
        let y = x ^ (LO * 0x7f);
        let del = y.wrapping_sub(LO) & !y & HI;
        let hits = below_space | del;
        if hits != 0 {
            let z = x ^ (LO * u64::from(b'\t'));
            let tabs = z.wrapping_sub(LO) & !z & HI;
            if tabs == 0 {
                // No HTAB: the lowest hit is exact (borrows only run upwards).
                return Some(base + (hits.trailing_zeros() / 8) as usize);
            }
            if let Some(i) = word.iter().position(|&b| is_bad_value_byte(b)) {
                return Some(base + i);
            }
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| is_bad_value_byte(b))
        .map(|i| base + i)
}

/// The value of an ASCII hex digit, or `None`.
#[inline]
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strips SP and HTAB (and nothing else: not VT, FF or Unicode spaces) from both ends.
#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
