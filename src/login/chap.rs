//! CHAP (RFC 7143 §12.1.3, RFC 1994): the target's policy, the one-way hash of each algorithm,
//! and the target's side of one exchange, one-way or mutual.
//!
//! ```text
//! I→T  AuthMethod=CHAP,None            T→I  AuthMethod=CHAP
//! I→T  CHAP_A=<A1,A2,…>                T→I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
//! I→T  CHAP_N=<N> CHAP_R=<R> [CHAP_I=<I2> CHAP_C=<C2>]
//!                                      T→I  [CHAP_N=<N2> CHAP_R=<R2>]
//! ```
//!
//! Decisions where the RFC leaves room:
//! - CHAP_A: the first value of the initiator's list that the policy allows (list negotiation,
//!   RFC 7143 §6.2.1); none → `CHAP_A=Reject` and an authentication failure.
//! - The challenge is max(digest size, 16) bytes from the login's [`ChallengeSource`], always sent
//!   as hex (libiscsi reads no other form); the identifier is random too.
//! - A wrong user and a wrong response fail alike (0x0201, no text); the log says which.
//! - Malformed CHAP_I/CHAP_C/CHAP_R values are an initiator error (0x0200); a missing CHAP_N or
//!   CHAP_R (or half of the CHAP_I/CHAP_C pair) is a missing parameter (0x0207).
//! - Mutual CHAP is refused (0x0201) when asked for but not configured, when configured but not
//!   asked for, and when the initiator's challenge reflects the target's (RFC 7143 §12.1.3).

use std::fmt;
use std::sync::Arc;

use sha2::Digest;
use subtle::ConstantTimeEq;

use super::error::LoginError;
use super::text::encode_pairs;
use super::value::{
    hex_constant, list_items, parse_in_range, parse_large_binary, parse_number,
    MAX_SIMPLE_VALUE_LEN,
};

/// RFC 7143 §12.1.3: CHAP_C and CHAP_R are large-binary-values of at most 1024 bytes.
pub const MAX_CHAP_BINARY_LEN: usize = 1024;
/// RFC 7143 §9.2.1: a CHAP secret has at least 96 bits.
pub const MIN_SECRET_LEN: usize = 12;
/// Initiators configure secrets as text values, which RFC 7143 §6.1 caps at 255 bytes.
pub const MAX_SECRET_LEN: usize = MAX_SIMPLE_VALUE_LEN;
/// Shortest challenge sent: 128 bits even for MD5, and never shorter than the digest.
const MIN_CHALLENGE_LEN: usize = 16;

/// The one-way hash of a CHAP exchange, named by its CHAP_A value (RFC 1994 §2, IANA "PPP
/// Authentication Algorithms": 5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChapAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha3_256,
}

impl ChapAlgorithm {
    /// Every algorithm, strongest first: a policy's default.
    pub const ALL: [ChapAlgorithm; 4] = [
        ChapAlgorithm::Sha3_256,
        ChapAlgorithm::Sha256,
        ChapAlgorithm::Sha1,
        ChapAlgorithm::Md5,
    ];

    /// The CHAP_A value.
    pub const fn code(self) -> u8 {
        match self {
            ChapAlgorithm::Md5 => 5,
            ChapAlgorithm::Sha1 => 6,
            ChapAlgorithm::Sha256 => 7,
            ChapAlgorithm::Sha3_256 => 8,
        }
    }

    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| u64::from(a.code()) == code)
    }

    /// The configuration name: "md5", "sha1", "sha-256" or "sha3-256".
    pub const fn name(self) -> &'static str {
        match self {
            ChapAlgorithm::Md5 => "md5",
            ChapAlgorithm::Sha1 => "sha1",
            ChapAlgorithm::Sha256 => "sha-256",
            ChapAlgorithm::Sha3_256 => "sha3-256",
        }
    }

    /// Bytes in a response.
    pub const fn digest_len(self) -> usize {
        match self {
            ChapAlgorithm::Md5 => 16,
            ChapAlgorithm::Sha1 => 20,
            ChapAlgorithm::Sha256 | ChapAlgorithm::Sha3_256 => 32,
        }
    }

    /// RFC 1994 §4.1: the response is H(identifier ‖ secret ‖ challenge).
    pub fn response(self, identifier: u8, secret: &ChapSecret, challenge: &[u8]) -> Vec<u8> {
        let parts = [&[identifier][..], &secret.0, challenge];
        match self {
            ChapAlgorithm::Md5 => hash::<md5::Md5>(&parts),
            ChapAlgorithm::Sha1 => hash::<sha1::Sha1>(&parts),
            ChapAlgorithm::Sha256 => hash::<sha2::Sha256>(&parts),
            ChapAlgorithm::Sha3_256 => hash::<sha3::Sha3_256>(&parts),
        }
    }

    fn challenge_len(self) -> usize {
        self.digest_len().max(MIN_CHALLENGE_LEN)
    }
}

fn hash<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().to_vec()
}

impl fmt::Display for ChapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configuration name, spelled exactly as [`ChapAlgorithm::name`] gives it.
impl std::str::FromStr for ChapAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                "unknown CHAP algorithm {s:?} (use \"sha3-256\", \"sha-256\", \"sha1\" or \"md5\")"
            )
            })
    }
}

/// A CHAP secret. It prints as `<redacted>` and compares in constant time, so it cannot leak
/// through a log line, an error string or a timing difference; its memory is wiped when it is
/// dropped (a reload's old policies, a session's copy), so that freed heap does not keep it.
#[derive(Clone)]
pub struct ChapSecret(Vec<u8>);

impl Drop for ChapSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl zeroize::ZeroizeOnDrop for ChapSecret {}

impl ChapSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        ChapSecret(bytes.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for ChapSecret {
    fn from(s: &str) -> Self {
        ChapSecret::new(s.as_bytes())
    }
}

impl From<String> for ChapSecret {
    fn from(s: String) -> Self {
        ChapSecret::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for ChapSecret {
    fn from(b: Vec<u8>) -> Self {
        ChapSecret::new(b)
    }
}

impl PartialEq for ChapSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for ChapSecret {}

impl fmt::Debug for ChapSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for ChapSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A CHAP name and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapCredentials {
    pub user: String,
    pub secret: ChapSecret,
}

impl ChapCredentials {
    pub fn new(user: impl Into<String>, secret: impl Into<ChapSecret>) -> Self {
        ChapCredentials {
            user: user.into(),
            secret: secret.into(),
        }
    }
}

/// What the target demands of the logins a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapPolicy {
    /// The name and secret the initiator must prove.
    pub initiator: ChapCredentials,
    /// The target's own name and secret: when set, the initiator must also authenticate the
    /// target (mutual CHAP).
    pub mutual: Option<ChapCredentials>,
    /// The algorithms allowed, in the target's preference.
    pub algorithms: Vec<ChapAlgorithm>,
}

/// Why a policy cannot be used. No variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChapPolicyError {
    #[error("the {role} CHAP secret is {len} bytes long; it must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes (RFC 7143 §9.2.1)")]
    SecretLength { role: &'static str, len: usize },
    #[error("the mutual CHAP secret must differ from the initiator's (RFC 7143 §9.2.1)")]
    SharedSecret,
    #[error("the {role} CHAP user name must be 1 to {MAX_SIMPLE_VALUE_LEN} bytes long")]
    UserName { role: &'static str },
    #[error("no CHAP algorithm is allowed")]
    NoAlgorithm,
}

impl ChapPolicy {
    /// One-way CHAP with every algorithm allowed.
    pub fn new(initiator: ChapCredentials) -> Self {
        ChapPolicy {
            initiator,
            mutual: None,
            algorithms: ChapAlgorithm::ALL.to_vec(),
        }
    }

    pub fn with_mutual(self, target: ChapCredentials) -> Self {
        ChapPolicy {
            mutual: Some(target),
            ..self
        }
    }

    /// Checks what the configuration layer must refuse at start: secrets outside
    /// 12..=255 bytes, one secret serving both directions (which would let a reflected challenge
    /// authenticate), empty or overlong names, no algorithm.
    pub fn validate(&self) -> Result<(), ChapPolicyError> {
        let roles = [
            ("initiator", Some(&self.initiator)),
            ("mutual", self.mutual.as_ref()),
        ];
        for (role, creds) in roles {
            let Some(c) = creds else { continue };
            if c.user.is_empty() || c.user.len() > MAX_SIMPLE_VALUE_LEN {
                return Err(ChapPolicyError::UserName { role });
            }
            if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&c.secret.len()) {
                let len = c.secret.len();
                return Err(ChapPolicyError::SecretLength { role, len });
            }
        }
        if self
            .mutual
            .as_ref()
            .is_some_and(|m| m.secret == self.initiator.secret)
        {
            return Err(ChapPolicyError::SharedSecret);
        }
        if self.algorithms.is_empty() {
            return Err(ChapPolicyError::NoAlgorithm);
        }
        Ok(())
    }
}

/// No random bytes could be had for a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no random bytes for a CHAP challenge: {0}")]
pub struct RandomUnavailable(pub String);

/// Where challenges and identifiers come from: the OS CSPRNG in service ([`OsRandom`]), a
/// deterministic source in tests and fuzzers. Any `FnMut(&mut [u8]) -> Result<(), RandomUnavailable>`
/// closure is one.
pub trait ChallengeSource: Send {
    /// Fills `buf` with bytes the initiator cannot predict.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

impl fmt::Debug for dyn ChallengeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeSource")
    }
}

impl<F: FnMut(&mut [u8]) -> Result<(), RandomUnavailable> + Send> ChallengeSource for F {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        self(buf)
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl ChallengeSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::fill(buf).map_err(|e| RandomUnavailable(e.to_string()))
    }
}

/// The CHAP keys of one request, each at most once.
#[derive(Debug, Default)]
pub struct ChapKeys {
    a: Option<String>,
    i: Option<String>,
    c: Option<String>,
    n: Option<String>,
    r: Option<String>,
}

impl ChapKeys {
    /// Takes one authentication-method key; keys of other methods and repeats are protocol
    /// errors (RFC 7143 §6.2: a key once per negotiation).
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), LoginError> {
        let slot = match name {
            "CHAP_A" => &mut self.a,
            "CHAP_I" => &mut self.i,
            "CHAP_C" => &mut self.c,
            "CHAP_N" => &mut self.n,
            "CHAP_R" => &mut self.r,
            _ => {
                return Err(LoginError::protocol(format!(
                    "{name} belongs to no supported method"
                )))
            }
        };
        if slot.is_some() {
            return Err(LoginError::protocol(format!("{name} sent twice")));
        }
        *slot = Some(value.to_string());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.first().is_none()
    }

    /// The name of the first key present (for messages).
    pub fn first(&self) -> Option<&'static str> {
        self.present().next()
    }

    /// The names of the keys present.
    fn present(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            ("CHAP_A", &self.a),
            ("CHAP_I", &self.i),
            ("CHAP_C", &self.c),
            ("CHAP_N", &self.n),
            ("CHAP_R", &self.r),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|_| name))
    }
}

/// The target's side of one CHAP exchange. Each state holds only what is valid in it; a step
/// that fails leaves `Failed`, which accepts nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChapExchange {
    /// AuthMethod=CHAP was answered; CHAP_A comes next.
    AwaitAlgorithm(AwaitAlgorithm),
    /// The challenge was sent; CHAP_N and CHAP_R come next.
    AwaitResponse(AwaitResponse),
    Authenticated,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitAlgorithm {
    policy: Arc<ChapPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitResponse {
    policy: Arc<ChapPolicy>,
    algorithm: ChapAlgorithm,
    identifier: u8,
    challenge: Vec<u8>,
}

/// The initiator's half of mutual CHAP.
struct MutualRequest<'p> {
    target: &'p ChapCredentials,
    identifier: u8,
    challenge: Vec<u8>,
}

impl ChapExchange {
    pub fn new(policy: Arc<ChapPolicy>) -> Self {
        ChapExchange::AwaitAlgorithm(AwaitAlgorithm { policy })
    }

    /// Runs the step that a request's CHAP keys make, appending the target's keys to `out`.
    pub fn handle(
        &mut self,
        keys: &ChapKeys,
        challenges: &mut dyn ChallengeSource,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), LoginError> {
        *self = match std::mem::replace(self, ChapExchange::Failed) {
            ChapExchange::AwaitAlgorithm(s) => {
                ChapExchange::AwaitResponse(s.challenge(keys, challenges, out)?)
            }
            ChapExchange::AwaitResponse(s) => {
                s.verify(keys, out)?;
                ChapExchange::Authenticated
            }
            ChapExchange::Authenticated | ChapExchange::Failed => {
                let name = keys.first().unwrap_or("CHAP key");
                return Err(LoginError::protocol(format!(
                    "{name} after the CHAP exchange"
                )));
            }
        };
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        matches!(self, ChapExchange::Authenticated)
    }
}

impl AwaitAlgorithm {
    /// Answers CHAP_A with the chosen algorithm, a fresh identifier and a fresh challenge.
    fn challenge(
        self,
        keys: &ChapKeys,
        challenges: &mut dyn ChallengeSource,
        out: &mut Vec<(String, String)>,
    ) -> Result<AwaitResponse, LoginError> {
        let Some(offered) = keys.a.as_deref() else {
            let name = keys.first().unwrap_or("CHAP key");
            return Err(LoginError::protocol(format!("{name} before CHAP_A")));
        };
        if let Some(early) = keys.present().find(|&k| k != "CHAP_A") {
            return Err(LoginError::protocol(format!(
                "{early} before the challenge"
            )));
        }
        let algorithm = list_items(offered)
            .filter_map(parse_number)
            .filter_map(ChapAlgorithm::from_code)
            .find(|a| self.policy.algorithms.contains(a))
            .ok_or_else(|| LoginError::AuthenticationFailed {
                reason: format!("no allowed algorithm in CHAP_A={offered}"),
                answer: encode_pairs(&[("CHAP_A", "Reject")]),
            })?;
        let mut random = vec![0; 1 + algorithm.challenge_len()];
        challenges
            .fill(&mut random)
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let challenge = random.split_off(1);
        let identifier = random[0];
        out.push(("CHAP_A".into(), algorithm.code().to_string()));
        out.push(("CHAP_I".into(), identifier.to_string()));
        out.push(("CHAP_C".into(), hex_constant(&challenge)));
        Ok(AwaitResponse {
            policy: self.policy,
            algorithm,
            identifier,
            challenge,
        })
    }
}

impl AwaitResponse {
    /// Checks the initiator's response and, for mutual CHAP, answers the initiator's challenge.
    fn verify(self, keys: &ChapKeys, out: &mut Vec<(String, String)>) -> Result<(), LoginError> {
        if keys.a.is_some() {
            return Err(LoginError::protocol("CHAP_A sent twice"));
        }
        let name = keys
            .n
            .as_deref()
            .ok_or(LoginError::MissingParameter("CHAP_N"))?;
        let response = keys
            .r
            .as_deref()
            .ok_or(LoginError::MissingParameter("CHAP_R"))?;
        let response = binary("CHAP_R", response)?;
        let mutual = self.mutual_request(keys)?;
        self.check_initiator(name, &response)?;
        if let Some(m) = mutual {
            let r = self
                .algorithm
                .response(m.identifier, &m.target.secret, &m.challenge);
            out.push(("CHAP_N".into(), m.target.user.clone()));
            out.push(("CHAP_R".into(), hex_constant(&r)));
        }
        Ok(())
    }

    /// The initiator's CHAP_I/CHAP_C, checked against the policy before any secret is used.
    fn mutual_request(&self, keys: &ChapKeys) -> Result<Option<MutualRequest<'_>>, LoginError> {
        let (i, c) = match (keys.i.as_deref(), keys.c.as_deref()) {
            (None, None) if self.policy.mutual.is_some() => {
                return Err(LoginError::authentication(
                    "mutual CHAP is required but the initiator sent no challenge",
                ))
            }
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(LoginError::MissingParameter("CHAP_C")),
            (None, Some(_)) => return Err(LoginError::MissingParameter("CHAP_I")),
            (Some(i), Some(c)) => (i, c),
        };
        let Some(target) = self.policy.mutual.as_ref() else {
            return Err(LoginError::authentication(
                "the initiator asked for mutual CHAP, which is not configured",
            ));
        };
        let identifier = parse_in_range(i, 0, 255)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| LoginError::authentication("CHAP_I is not a number in 0..=255"))?;
        let challenge = binary("CHAP_C", c)?;
        if challenge == self.challenge {
            return Err(LoginError::authentication(
                "the initiator's CHAP_C reflects the target's challenge",
            ));
        }
        Ok(Some(MutualRequest {
            target,
            identifier,
            challenge,
        }))
    }

    /// Name and response are both compared in constant time, and the expected response is
    /// computed whatever the name, so timing does not tell a wrong user from a wrong secret.
    fn check_initiator(&self, name: &str, response: &[u8]) -> Result<(), LoginError> {
        let creds = &self.policy.initiator;
        let expected = self
            .algorithm
            .response(self.identifier, &creds.secret, &self.challenge);
        let user_ok = name.as_bytes().ct_eq(creds.user.as_bytes());
        let response_ok = response.ct_eq(&expected);
        match (bool::from(user_ok), bool::from(response_ok)) {
            (true, true) => Ok(()),
            (false, _) => Err(LoginError::authentication(format!(
                "CHAP_N {name:?} is not the configured user"
            ))),
            (true, false) => Err(LoginError::authentication(format!(
                "CHAP_R ({} bytes, {} expected) does not match",
                response.len(),
                self.algorithm
            ))),
        }
    }
}

/// A CHAP_C or CHAP_R value; anything but hex or base64 of at most 1024 bytes fails the
/// authentication (0x0201, as any other bad credential), never truncated.
fn binary(key: &str, v: &str) -> Result<Vec<u8>, LoginError> {
    parse_large_binary(v, MAX_CHAP_BINARY_LEN).ok_or_else(|| {
        LoginError::authentication(format!(
            "{key} is not a hex or base64 value of 1 to {MAX_CHAP_BINARY_LEN} bytes"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, secret: &str) -> ChapCredentials {
        ChapCredentials::new(user, secret)
    }

    /// Expected responses computed independently with Python's hashlib:
    /// `hashlib.new(alg, bytes([1]) + b"secret-of-12" + bytes(range(16))).hexdigest()`.
    #[test]
    fn responses_match_known_answers() {
        let secret = ChapSecret::from("secret-of-12");
        let challenge: Vec<u8> = (0..16).collect();
        let cases = [
            (ChapAlgorithm::Md5, "0xd07ae8624e1cdbf395f1f5a0747d156b"),
            (
                ChapAlgorithm::Sha1,
                "0x6ac87c16aaeb2b33a994cfc7301a0da44f2e202b",
            ),
            (
                ChapAlgorithm::Sha256,
                "0xa57d201ac61dc0df7c67881c42f3de18a3083864a12e0425a0e97db301f24f4a",
            ),
            (
                ChapAlgorithm::Sha3_256,
                "0xe87edeaece52bcf709a573644fb4e493d32efee136c2d9c0363ce068ee03e5fa",
            ),
        ];
        for (alg, expected) in cases {
            let r = alg.response(1, &secret, &challenge);
            assert_eq!(r.len(), alg.digest_len(), "{alg}");
            assert_eq!(hex_constant(&r), expected, "{alg}");
        }
    }

    /// The classic RFC 1994 form: MD5 over a one-byte identifier (here 255), the secret and a
    /// 16-byte challenge. Python: `hashlib.md5(bytes([255]) + b"secret-of-12" +
    /// bytes(range(16))).hexdigest()`.
    #[test]
    fn md5_response_in_rfc_1994_form() {
        let challenge: Vec<u8> = (0..16).collect();
        let r = ChapAlgorithm::Md5.response(255, &"secret-of-12".into(), &challenge);
        assert_eq!(hex_constant(&r), "0x696fdb6b8362a5c1803df54266157dd2");
    }

    #[test]
    fn algorithms_have_their_codes_and_names() {
        for (code, name, len) in [
            (5, "md5", 16),
            (6, "sha1", 20),
            (7, "sha-256", 32),
            (8, "sha3-256", 32),
        ] {
            let a = ChapAlgorithm::from_code(code).unwrap();
            assert_eq!(u64::from(a.code()), code);
            assert_eq!(a.name(), name);
            assert_eq!(a.to_string(), name);
            assert_eq!(a.digest_len(), len);
            assert_eq!(name.parse::<ChapAlgorithm>(), Ok(a));
            assert!(a.challenge_len() >= a.digest_len() && a.challenge_len() >= 16);
        }
        assert_eq!(ChapAlgorithm::from_code(4), None);
        assert_eq!(ChapAlgorithm::from_code(0x105), None);
    }

    #[test]
    fn secrets_are_wiped_when_dropped() {
        // Compiles only for types whose drop wipes their memory (`zeroize::ZeroizeOnDrop`).
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<ChapSecret>();
        wiped_on_drop::<crate::config::Secret>();
    }

    #[test]
    fn secrets_never_print() {
        let p = ChapPolicy::new(creds("alice", "very-secret-value"))
            .with_mutual(creds("target", "other-secret-value"));
        let shown = format!("{p:?} {} {:?}", p.initiator.secret, p.initiator.secret);
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("other-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let err = ChapPolicy::new(creds("alice", "short"))
            .validate()
            .unwrap_err();
        assert!(!err.to_string().contains("short"));
    }

    #[test]
    fn policy_validation() {
        let ok = ChapPolicy::new(creds("alice", "twelve-bytes"));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.algorithms, ChapAlgorithm::ALL);
        let short = ChapPolicy::new(creds("alice", "eleven-byte"));
        assert_eq!(
            short.validate(),
            Err(ChapPolicyError::SecretLength {
                role: "initiator",
                len: 11
            })
        );
        let long = ChapPolicy::new(creds("alice", &"x".repeat(256)));
        assert!(matches!(
            long.validate(),
            Err(ChapPolicyError::SecretLength { len: 256, .. })
        ));
        let max = ChapPolicy::new(creds("alice", &"x".repeat(255)));
        assert_eq!(max.validate(), Ok(()));
        let shared = ok.clone().with_mutual(creds("target", "twelve-bytes"));
        assert_eq!(shared.validate(), Err(ChapPolicyError::SharedSecret));
        let weak_mutual = ok.clone().with_mutual(creds("target", "short"));
        assert!(matches!(
            weak_mutual.validate(),
            Err(ChapPolicyError::SecretLength { role: "mutual", .. })
        ));
        let nameless = ChapPolicy::new(creds("", "twelve-bytes"));
        assert!(matches!(
            nameless.validate(),
            Err(ChapPolicyError::UserName { .. })
        ));
        let none = ChapPolicy {
            algorithms: vec![],
            ..ok
        };
        assert_eq!(none.validate(), Err(ChapPolicyError::NoAlgorithm));
    }

    #[test]
    fn secrets_compare_by_content() {
        assert_eq!(ChapSecret::from("abc"), ChapSecret::from(b"abc".to_vec()));
        assert_ne!(ChapSecret::from("abc"), ChapSecret::from("abd"));
        assert_ne!(ChapSecret::from("abc"), ChapSecret::from("abcd"));
    }

    #[test]
    fn keys_are_taken_once_each() {
        let mut k = ChapKeys::default();
        assert!(k.is_empty());
        k.insert("CHAP_N", "alice").unwrap();
        assert_eq!(k.first(), Some("CHAP_N"));
        assert!(matches!(
            k.insert("CHAP_N", "bob"),
            Err(LoginError::Protocol(_))
        ));
        assert!(matches!(
            k.insert("SRP_U", "x"),
            Err(LoginError::Protocol(_))
        ));
        assert!(matches!(
            k.insert("CHAP_X", "x"),
            Err(LoginError::Protocol(_))
        ));
    }

    #[test]
    fn os_random_fills_the_buffer() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a).unwrap();
        OsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
