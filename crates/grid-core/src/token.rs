//! Bearer tokens, as every party writes and reads them.
//!
//! A token is `grid_<ID>_<SECRET>`: the id (16 hex digits) names it in
//! listings and revocations, and the secret (64 hex digits, 256 random bits)
//! is shown once, when the token is made. The master keeps only a keyed
//! hash of the secret.
//!
//! A join token, for enrolling nodes, is `gridjoin_<ID>_<SECRET>_<PIN>`:
//! a token of kind `join` and the sha256 of the master's CA certificate
//! (64 hex digits, or `none` for a master whose certificate the system
//! roots vouch for), as kubeadm's discovery hash does. A node needs nothing
//! else to trust the master it joins.

use std::fmt;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Everything: tenants, tokens, nodes, every job.
    Admin,
    /// Submit and manage one tenant's jobs.
    Tenant,
    /// Serve jobs as one node.
    Node,
    /// Trade for a node credential (`JoinGrid`), and nothing else.
    Join,
}

impl TokenKind {
    /// The word for the kind, as listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Tenant => "tenant",
            TokenKind::Node => "node",
            TokenKind::Join => "join",
        }
    }

    /// The kind a word names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => TokenKind::Admin,
            "tenant" => TokenKind::Tenant,
            "node" => TokenKind::Node,
            "join" => TokenKind::Join,
            _ => return None,
        })
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const PREFIX: &str = "grid_";
const JOIN_PREFIX: &str = "gridjoin_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;

/// A bearer token: a public id and a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Names the token; not secret.
    pub id: String,
    /// The secret, as hex.
    pub secret: String,
}

/// Random bytes from the operating system.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    bytes
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Token {
    /// A new token with a random id and secret.
    pub fn generate() -> Self {
        Self { id: hex::encode(random::<{ ID_HEX / 2 }>()), secret: hex::encode(random::<{ SECRET_HEX / 2 }>()) }
    }

    /// Reads `grid_<ID>_<SECRET>`; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let (id, secret) = s.trim().strip_prefix(PREFIX)?.split_once('_')?;
        (is_hex(id, ID_HEX) && is_hex(secret, SECRET_HEX))
            .then(|| Self { id: id.to_owned(), secret: secret.to_owned() })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}_{}", self.id, self.secret)
    }
}

/// Never the secret.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.id)
    }
}

/// A join token: a token of kind `join`, and the pin of the master's CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub token: Token,
    /// The sha256 of the master's CA certificate (DER); `None` when the
    /// system roots vouch for the master.
    pub ca_pin: Option<[u8; 32]>,
}

impl JoinToken {
    /// Reads `gridjoin_<ID>_<SECRET>_<PIN>`; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().strip_prefix(JOIN_PREFIX)?.split('_');
        let (id, secret, pin) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_hex(id, ID_HEX) || !is_hex(secret, SECRET_HEX) {
            return None;
        }
        let ca_pin = match pin {
            "none" => None,
            pin if is_hex(pin, 64) => Some(hex::decode(pin).ok()?.try_into().ok()?),
            _ => return None,
        };
        Some(Self { token: Token { id: id.to_owned(), secret: secret.to_owned() }, ca_pin })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = self.ca_pin.map(hex::encode).unwrap_or_else(|| "none".into());
        write!(f, "{JOIN_PREFIX}{}_{}_{pin}", self.token.id, self.token.secret)
    }
}

/// A fresh 32-byte key, e.g. for the master's keyed hash of secrets.
pub fn random_key() -> [u8; 32] {
    random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_written() {
        let t = Token::generate();
        let s = t.to_string();
        assert!(s.starts_with("grid_"));
        assert_eq!(Token::parse(&s), Some(t.clone()));
        assert_ne!(Token::generate(), t);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        let t = Token::generate().to_string();
        for bad in ["", "grid_", "grid_abc_def", &t[..t.len() - 1], &t.replace("grid_", "gird_"), &t.to_uppercase()] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_join_token_carries_its_pin() {
        let j = JoinToken { token: Token::generate(), ca_pin: Some([7; 32]) };
        assert_eq!(JoinToken::parse(&j.to_string()), Some(j.clone()));
        let none = JoinToken { ca_pin: None, ..j.clone() };
        assert!(none.to_string().ends_with("_none"));
        assert_eq!(JoinToken::parse(&none.to_string()), Some(none));
        assert_eq!(JoinToken::parse(&j.token.to_string()), None);
        assert_eq!(JoinToken::parse(&format!("{j}_x")), None);
    }
}
