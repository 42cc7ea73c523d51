//! Security negotiation (RFC 7143 §6.3.2, §12): choosing the authentication method and running
//! its exchange.
//!
//! The target supports one method per login: CHAP ([`super::chap`]) when a [`ChapPolicy`]
//! applies to it, `None` otherwise. The login machine only asks whether the exchange
//! [`is_complete`](Authenticator::is_complete).

use std::sync::Arc;

use super::chap::{ChallengeSource, ChapExchange, ChapKeys, ChapPolicy};
use super::error::LoginError;
use super::text::encode_pairs;
use super::value::list_items;

/// RFC 7143 §12.1: the method name for "no authentication".
pub const METHOD_NONE: &str = "None";
/// RFC 7143 §12.1: the method name of CHAP.
pub const METHOD_CHAP: &str = "CHAP";

/// The chosen authentication method and the state of its exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticator {
    /// `AuthMethod=None`: nothing to exchange.
    None,
    Chap(Box<ChapExchange>),
}

impl Authenticator {
    /// Answers an `AuthMethod` offer (RFC 7143 §6.2.1 list negotiation: the first method in the
    /// initiator's list that the target supports). With a CHAP policy only CHAP is supported,
    /// without one only None. No common method: `AuthMethod=Reject` and an authentication
    /// failure, as tgt and LIO do.
    pub fn select(
        offered: &str,
        chap: Option<&Arc<ChapPolicy>>,
    ) -> Result<Authenticator, LoginError> {
        let supported = match chap {
            Some(_) => METHOD_CHAP,
            None => METHOD_NONE,
        };
        if !list_items(offered).any(|m| m == supported) {
            return Err(LoginError::AuthenticationFailed {
                reason: format!("no supported method in AuthMethod={offered}"),
                answer: encode_pairs(&[("AuthMethod", "Reject")]),
            });
        }
        Ok(match chap {
            Some(policy) => Authenticator::Chap(Box::new(ChapExchange::new(policy.clone()))),
            None => Authenticator::None,
        })
    }

    /// The value answered for `AuthMethod`.
    pub fn method_name(&self) -> &'static str {
        match self {
            Authenticator::None => METHOD_NONE,
            Authenticator::Chap(_) => METHOD_CHAP,
        }
    }

    /// The method-specific keys of one request; answers go to `out`.
    pub fn handle_keys(
        &mut self,
        keys: &ChapKeys,
        challenges: &mut dyn ChallengeSource,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), LoginError> {
        match self {
            Authenticator::None => Err(LoginError::protocol(format!(
                "{} sent with AuthMethod=None",
                keys.first().unwrap_or("method key")
            ))),
            Authenticator::Chap(exchange) => exchange.handle(keys, challenges, out),
        }
    }

    /// Whether the exchange has authenticated the initiator, so the login may leave the
    /// security stage.
    pub fn is_complete(&self) -> bool {
        match self {
            Authenticator::None => true,
            Authenticator::Chap(exchange) => exchange.is_complete(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::chap::{ChapCredentials, OsRandom};
    use super::*;

    fn policy() -> Arc<ChapPolicy> {
        Arc::new(ChapPolicy::new(ChapCredentials::new("u", "twelve-bytes")))
    }

    #[test]
    fn none_is_chosen_from_a_list() {
        assert_eq!(Authenticator::select("None", None), Ok(Authenticator::None));
        assert_eq!(
            Authenticator::select("CHAP,None", None),
            Ok(Authenticator::None)
        );
        assert_eq!(
            Authenticator::select("KRB5,SRP,None", None),
            Ok(Authenticator::None)
        );
    }

    #[test]
    fn chap_only_is_rejected_without_a_policy() {
        let err = Authenticator::select("CHAP", None).unwrap_err();
        assert_eq!(err.answer(), b"AuthMethod=Reject\0");
        assert_eq!(err.status().detail, 0x01);
        assert!(Authenticator::select("", None).is_err());
        assert!(Authenticator::select("none", None).is_err());
    }

    #[test]
    fn a_policy_makes_chap_the_only_method() {
        let p = policy();
        let a = Authenticator::select("None,CHAP", Some(&p)).unwrap();
        assert_eq!(a.method_name(), "CHAP");
        assert!(!a.is_complete());
        let err = Authenticator::select("None", Some(&p)).unwrap_err();
        assert_eq!(err.answer(), b"AuthMethod=Reject\0");
        assert_eq!(err.status().detail, 0x01);
    }

    #[test]
    fn method_keys_without_their_method_are_a_protocol_error() {
        let mut a = Authenticator::None;
        assert!(a.is_complete());
        let mut keys = ChapKeys::default();
        keys.insert("CHAP_A", "5").unwrap();
        assert!(matches!(
            a.handle_keys(&keys, &mut OsRandom, &mut Vec::new()),
            Err(LoginError::Protocol(_))
        ));
    }
}
