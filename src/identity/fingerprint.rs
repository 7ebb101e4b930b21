//! Certificate fingerprints (`SHA256:` + 64 hex digits): what `ferry id` prints and
//! what peers pin, parsed forgivingly from what people paste.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// SHA-256 of an appliance's DER certificate: the whole of what peers pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint([u8; 32]);

const PREFIX: &str = "SHA256:";

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a string is not a fingerprint; every message names the expected form,
/// because users paste these from another machine's `ferry id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFingerprintError {
    #[error("unsupported fingerprint prefix {0:?}: expected SHA256: followed by 64 hex digits, as printed by `ferry id`")]
    Prefix(String),
    #[error("fingerprint has {0} hex digits: expected SHA256: followed by 64 hex digits, as printed by `ferry id`")]
    Length(usize),
    #[error("fingerprint contains {0:?}, which is not a hex digit: expected SHA256: followed by 64 hex digits, as printed by `ferry id`")]
    NotHex(char),
    #[error("fingerprint has misplaced ':' separators: expected SHA256: followed by 64 hex digits, optionally as 32 colon-separated pairs")]
    Separators,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let body = match s.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &s[PREFIX.len()..],
            _ => s,
        };
        // Anything alphanumeric before a ':' that is not a hex pair is another
        // scheme ("MD5:", "SHA1:"); say so rather than complain about hex digits.
        if let Some((head, _)) = body.split_once(':') {
            let is_name = head.chars().all(|c| c.is_ascii_alphanumeric())
                && head.chars().any(|c| !c.is_ascii_hexdigit());
            if head.len() != 2 && is_name {
                return Err(ParseFingerprintError::Prefix(format!("{head}:")));
            }
        }
        let digits: Vec<char> = if body.contains(':') {
            let pairs: Vec<&str> = body.split(':').collect();
            if pairs.iter().any(|p| p.chars().count() != 2) {
                return Err(ParseFingerprintError::Separators);
            }
            pairs.concat().chars().collect()
        } else {
            body.chars().collect()
        };
        if let Some(&c) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ParseFingerprintError::NotHex(c));
        }
        if digits.len() != 64 {
            return Err(ParseFingerprintError::Length(digits.len()));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            // Both are ASCII hex digits (checked above), so to_digit cannot fail.
            let hi = pair[0].to_digit(16).unwrap_or(0);
            let lo = pair[1].to_digit(16).unwrap_or(0);
            *byte = (hi * 16 + lo) as u8;
        }
        Ok(Fingerprint(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

    fn sample() -> Fingerprint {
        format!("SHA256:{HEX}").parse().expect("sample parses")
    }

    #[test]
    fn display_parse_round_trip() {
        let fp = Fingerprint::of_der(b"some certificate");
        let shown = fp.to_string();
        assert!(shown.starts_with("SHA256:"));
        assert_eq!(shown.len(), 7 + 64);
        assert_eq!(shown, shown.to_lowercase().replace("sha256:", "SHA256:"));
        assert_eq!(shown.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(sample().to_string(), format!("SHA256:{HEX}"));
    }

    #[test]
    fn of_der_is_deterministic_sha256() {
        assert_eq!(Fingerprint::of_der(b"abc"), Fingerprint::of_der(b"abc"));
        assert_ne!(Fingerprint::of_der(b"abc"), Fingerprint::of_der(b"abd"));
        // FIPS 180-2 test vector, so the fingerprint matches `openssl x509 -fingerprint -sha256`.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn accepted_forms() {
        let colons = HEX
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        for form in [
            format!("SHA256:{HEX}"),
            format!("sha256:{HEX}"),
            format!("Sha256:{}", HEX.to_uppercase()),
            HEX.to_string(),
            HEX.to_uppercase(),
            format!("SHA256:{colons}"),
            colons.to_uppercase(),
            format!("  \tSHA256:{HEX}\n"),
        ] {
            assert_eq!(form.parse::<Fingerprint>(), Ok(sample()), "form {form:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            (
                format!("MD5:{HEX}"),
                ParseFingerprintError::Prefix("MD5:".into()),
            ),
            (
                format!("SHA1:{HEX}"),
                ParseFingerprintError::Prefix("SHA1:".into()),
            ),
            (
                format!("SHA256:{}", &HEX[..62]),
                ParseFingerprintError::Length(62),
            ),
            (format!("SHA256:{HEX}00"), ParseFingerprintError::Length(66)),
            (String::new(), ParseFingerprintError::Length(0)),
            ("SHA256:".into(), ParseFingerprintError::Length(0)),
            (
                format!("SHA256:{}zz", &HEX[..62]),
                ParseFingerprintError::NotHex('z'),
            ),
            (format!("SHA256: {HEX}"), ParseFingerprintError::NotHex(' ')),
            (
                format!("{}:{}", &HEX[..3], &HEX[3..]),
                ParseFingerprintError::Separators,
            ),
            ("SHA256:00:11:22".into(), ParseFingerprintError::Length(6)),
        ];
        for (input, want) in cases {
            let err = input.parse::<Fingerprint>().expect_err(&input);
            assert_eq!(err, want, "input {input:?}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            assert!(msg.contains("64 hex digits"), "names the form: {msg}");
        }
        // base64 as ssh-keygen prints it is a different scheme; say what we expect.
        let b64 = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert!(b64.parse::<Fingerprint>().is_err());
    }

    #[test]
    fn serde_uses_display_form() {
        let fp = sample();
        let json = serde_json::to_string(&fp).expect("serialize");
        assert_eq!(json, format!("\"SHA256:{HEX}\""));
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).expect("deserialize"),
            fp
        );
        let err = serde_json::from_str::<Fingerprint>("\"MD5:00\"").expect_err("bad");
        assert!(err.to_string().contains("64 hex digits"));
    }
}
