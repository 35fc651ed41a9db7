//! Salesforce record ids: 3-character key prefix, 2-character pod, a reserved `0`,
//! a 9-character base-62 sequence number, then the 3-character case-safety suffix.
//!
//! The base-62 alphabet is `0-9A-Za-z`, which is also ASCII order, so ids generated
//! for one object sort (as strings) in creation order.

/// Base-62 digits in ASCII order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Width of the sequence part of an id.
pub const SEQ_WIDTH: usize = 9;

/// The 3-character case-insensitivity suffix of a 15-character id.
pub fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk, slot) in id15.chunks(5).take(3).zip(out.iter_mut()) {
        let mut n = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                n |= 1 << i;
            }
        }
        *slot = SUFFIX[n];
    }
    out
}

/// Turns a 15-character id into its 18-character form.
pub fn to18(id15: &str) -> String {
    let sum = checksum(id15.as_bytes());
    let mut s = String::with_capacity(18);
    s.push_str(id15);
    for c in sum {
        s.push(char::from(c));
    }
    s
}

/// Normalises a 15- or 18-character id to its exact (case-correct) 15-character
/// form. An 18-character id is case-insensitive: its suffix restores the case of
/// the first 15 characters. Returns None when the text is not a well-formed id.
pub fn normalize15(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if !b.iter().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    match b.len() {
        15 => Some(text.to_string()),
        18 => {
            let mut fixed = [0u8; 15];
            for (chunk_no, chunk) in b[..15].chunks(5).enumerate() {
                let suffix_char = b[15 + chunk_no].to_ascii_uppercase();
                let bits = SUFFIX.iter().position(|c| *c == suffix_char)?;
                for (i, c) in chunk.iter().enumerate() {
                    let upper = bits & (1 << i) != 0;
                    fixed[chunk_no * 5 + i] = if c.is_ascii_alphabetic() {
                        if upper {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    } else if upper {
                        // The suffix says "upper-case letter" where there is a digit.
                        return None;
                    } else {
                        *c
                    };
                }
            }
            String::from_utf8(fixed.to_vec()).ok()
        }
        _ => None,
    }
}

/// Encodes `n` as fixed-width base 62.
pub fn base62(mut n: u64, width: usize) -> String {
    let mut buf = vec![b'0'; width];
    for slot in buf.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Decodes base 62 (None on a character outside the alphabet or on overflow).
pub fn unbase62(s: &str) -> Option<u64> {
    let mut n: u64 = 0;
    for c in s.bytes() {
        let d = BASE62.iter().position(|x| *x == c)? as u64;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some(n)
}

/// The two "pod" characters that make one org's ids distinct from another's.
pub fn pod_for(org_index: usize) -> String {
    // Start at "5g" (a real-looking pod) and move on for every further org.
    let start = 5 * 62 + 42; // "5g"
    base62((start + org_index as u64) % (62 * 62), 2)
}

/// Builds an 18-character record id.
pub fn make_id(prefix: &str, pod: &str, seq: u64) -> String {
    let mut s = String::with_capacity(18);
    s.push_str(prefix);
    s.push_str(pod);
    s.push('0');
    s.push_str(&base62(seq, SEQ_WIDTH));
    to18(&s)
}

/// Splits a normalised 15-character id into (prefix, pod, seq).
pub fn split15(id15: &str) -> Option<(&str, &str, u64)> {
    if id15.len() != 15 || &id15[5..6] != "0" {
        return None;
    }
    Some((&id15[0..3], &id15[3..5], unbase62(&id15[6..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checksum() {
        // Suffixes computed by hand with the public algorithm.
        assert_eq!(to18("001000000000001"), "001000000000001AAA");
        assert_eq!(to18("003D000000QV9n2"), "003D000000QV9n2IAD");
    }

    #[test]
    fn roundtrip_and_case_restore() {
        let id = make_id("003", &pod_for(0), 123_456);
        assert_eq!(id.len(), 18);
        let lower = id.to_ascii_lowercase();
        assert_eq!(normalize15(&lower).unwrap(), id[..15]);
        assert_eq!(normalize15(&id[..15]).unwrap(), id[..15]);
        let (p, pod, seq) = split15(&id[..15]).unwrap();
        assert_eq!((p, pod, seq), ("003", "5g", 123_456));
        assert!(normalize15("003!").is_none());
        // A suffix that claims an upper-case letter where there is a digit is invalid.
        assert!(normalize15("000000000000000BAA").is_none());
        assert!(normalize15("00100000000000").is_none());
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let pod = pod_for(3);
        let mut prev = String::new();
        for seq in [1u64, 2, 9, 10, 35, 36, 61, 62, 63, 3843, 3844, 1_000_000] {
            let id = make_id("00T", &pod, seq);
            assert!(id > prev, "{id} <= {prev}");
            prev = id;
        }
    }
}
