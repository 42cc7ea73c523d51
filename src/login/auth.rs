//! Security negotiation (RFC 7143 §6.3.2, §12): choosing the authentication method and running
//! its exchange.
//!
//! Only `None` exists today. CHAP (RFC 7143 §12.1.3) slots in as another [`Authenticator`]
//! variant holding its exchange state (algorithm, identifier, challenge), with
//! [`Authenticator::handle_key`] consuming `CHAP_A`/`CHAP_N`/`CHAP_R` and producing the target's
//! keys; the login machine only asks whether the exchange [`is_complete`](Authenticator::is_complete).

use super::error::LoginError;
use super::text::encode_pairs;
use super::value::list_items;

/// RFC 7143 §12.1: the method name for "no authentication".
pub const METHOD_NONE: &str = "None";

/// The chosen authentication method and the state of its exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticator {
    /// `AuthMethod=None`: nothing to exchange.
    None,
}

impl Authenticator {
    /// Answers an `AuthMethod` offer (RFC 7143 §6.2.1 list negotiation: the first method in the
    /// initiator's list that the target supports). No common method: `AuthMethod=Reject` and an
    /// authentication failure, as tgt and LIO do.
    pub fn select(offered: &str) -> Result<Authenticator, LoginError> {
        if list_items(offered).any(|m| m == METHOD_NONE) {
            return Ok(Authenticator::None);
        }
        Err(LoginError::AuthenticationFailed {
            reason: format!("no supported method in AuthMethod={offered}"),
            answer: encode_pairs(&[("AuthMethod", "Reject")]),
        })
    }

    /// The value answered for `AuthMethod`.
    pub fn method_name(&self) -> &'static str {
        match self {
            Authenticator::None => METHOD_NONE,
        }
    }

    /// A method-specific key (`CHAP_*`, `SRP_*`, ...) sent by the initiator; answers go to `out`.
    pub fn handle_key(
        &mut self,
        name: &str,
        _value: &str,
        _out: &mut Vec<(String, String)>,
    ) -> Result<(), LoginError> {
        match self {
            Authenticator::None => Err(LoginError::protocol(format!(
                "{name} sent with AuthMethod=None"
            ))),
        }
    }

    /// Whether the exchange has authenticated the initiator, so the login may leave the
    /// security stage.
    pub fn is_complete(&self) -> bool {
        match self {
            Authenticator::None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_chosen_from_a_list() {
        assert_eq!(Authenticator::select("None"), Ok(Authenticator::None));
        assert_eq!(Authenticator::select("CHAP,None"), Ok(Authenticator::None));
        assert_eq!(
            Authenticator::select("KRB5,SRP,None"),
            Ok(Authenticator::None)
        );
    }

    #[test]
    fn chap_only_is_rejected() {
        let err = Authenticator::select("CHAP").unwrap_err();
        assert_eq!(err.answer(), b"AuthMethod=Reject\0");
        assert_eq!(err.status().detail, 0x01);
        assert!(Authenticator::select("").is_err());
        assert!(Authenticator::select("none").is_err());
    }

    #[test]
    fn method_keys_without_their_method_are_a_protocol_error() {
        let mut a = Authenticator::None;
        assert!(a.is_complete());
        assert!(matches!(
            a.handle_key("CHAP_A", "5", &mut Vec::new()),
            Err(LoginError::Protocol(_))
        ));
    }
}
