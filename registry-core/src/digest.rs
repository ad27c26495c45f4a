//! Content digests (`algorithm:encoded`, as the OCI image spec defines them) and a streaming
//! [`Digester`] whose state can be saved between HTTP requests and resumed by another process.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

/// Why a text is not a digest: the crate's `Error::DigestInvalid` says the same, and a parse
/// failure converts into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {text:?}: {reason}")]
pub struct InvalidDigest {
    /// The rejected text (its first 200 characters).
    pub text: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// A hash algorithm the registry accepts in digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256, required by the spec and used for everything the registry computes itself.
    Sha256,
    /// SHA-512, accepted when a client names it.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// Only `sha256` and `sha512` with lowercase hex of the exact length are accepted, so a digest can
/// be used safely as a storage key component.
///
/// ```
/// use registry_core::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
/// assert_eq!(d, Digest::of(b""));
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The SHA-256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(data);
        d.finish()
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part after the colon.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Digest, InvalidDigest> {
        let invalid = |reason| InvalidDigest {
            text: s.chars().take(200).collect(),
            reason,
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between algorithm and encoded part"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(invalid(
                    "unsupported algorithm (sha256 and sha512 are accepted)",
                ));
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(
                "encoded part has the wrong length for its algorithm",
            ));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("encoded part is not lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A hash fed as bytes flow, whose state can be saved with [`Digester::state`] and restored with
/// [`Digester::resume`], so that an upload spanning many requests (and processes) hashes each byte once.
///
/// ```
/// use registry_core::{Algorithm, Digest, Digester};
/// let mut a = Digester::new(Algorithm::Sha256);
/// a.update(b"hello ");
/// let mut b = Digester::resume(&a.state()).unwrap();
/// b.update(b"world");
/// assert_eq!(b.finish(), Digest::of(b"hello world"));
/// ```
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digester({})", self.algorithm())
    }
}

impl Digester {
    /// A fresh hash of the given algorithm.
    pub fn new(algorithm: Algorithm) -> Digester {
        match algorithm {
            Algorithm::Sha256 => Digester::Sha256(Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(Sha512::new()),
        }
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digester::Sha256(_) => Algorithm::Sha256,
            Digester::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// Ends the hash and returns the digest.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The hash state as bytes: one tag byte for the algorithm, then the `sha2` serialized state.
    pub fn state(&self) -> Vec<u8> {
        let mut out = vec![self.algorithm() as u8];
        match self {
            Digester::Sha256(h) => out.extend_from_slice(&h.serialize()),
            Digester::Sha512(h) => out.extend_from_slice(&h.serialize()),
        }
        out
    }

    /// Restores a hash from [`Digester::state`]; `None` for bytes that are not such a state.
    ///
    /// The `sha2` state holds a count of hashed blocks; a corrupt count near its maximum would
    /// overflow when the hash ends, so counts beyond any real upload (2^50 blocks) are refused.
    pub fn resume(state: &[u8]) -> Option<Digester> {
        const MAX_BLOCKS: u128 = 1 << 50;
        let (tag, rest) = state.split_first()?;
        let (counter_at, counter_len) = match *tag {
            t if t == Algorithm::Sha256 as u8 => (32, 8),
            _ => (64, 16),
        };
        let mut counter = [0u8; 16];
        let bytes = rest.get(counter_at..counter_at + counter_len)?;
        counter[..counter_len].copy_from_slice(bytes);
        if u128::from_le_bytes(counter) >= MAX_BLOCKS {
            return None;
        }
        match *tag {
            t if t == Algorithm::Sha256 as u8 => {
                let s = SerializedState::<Sha256>::try_from(rest).ok()?;
                Some(Digester::Sha256(Sha256::deserialize(&s).ok()?))
            }
            t if t == Algorithm::Sha512 as u8 => {
                let s = SerializedState::<Sha512>::try_from(rest).ok()?;
                Some(Digester::Sha512(Sha512::deserialize(&s).ok()?))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(long.parse::<Digest>().unwrap().to_string(), long);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            &EMPTY.to_uppercase(),
            &EMPTY.replace("sha256:", "SHA256:"),
            &EMPTY[..EMPTY.len() - 1],
            &format!("{EMPTY}0"),
            &EMPTY.replace('e', "g"),
            &format!("sha512:{}", "a".repeat(64)),
            "sha256:../../../../etc/passwd",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_round_trip() {
        let d: Digest = EMPTY.parse().unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn resumed_state_continues_the_hash() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
            let mut whole = Digester::new(alg);
            whole.update(&data);
            let mut part = Digester::new(alg);
            part.update(&data[..4321]);
            let mut resumed = Digester::resume(&part.state()).unwrap();
            resumed.update(&data[4321..]);
            assert_eq!(resumed.finish(), whole.finish());
        }
        assert!(Digester::resume(&[]).is_none());
        assert!(Digester::resume(&[0, 1, 2]).is_none());
        assert!(Digester::resume(&[9; 105]).is_none());
    }

    #[test]
    fn absurd_block_counts_are_refused() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut state = Digester::new(alg).state();
            let at = 1 + if alg == Algorithm::Sha256 { 32 } else { 64 };
            state[at + 7] = 0xff;
            assert!(Digester::resume(&state).is_none(), "{alg}");
        }
    }
}
