//! The masters of one grid as a client or node knows them: the list it was
//! given (`--master URL1,URL2`), the one it talks to now, and the leader a
//! standby names when it refuses a call.
//!
//! Only one master of a grid serves; a standby answers every call with
//! `UNAVAILABLE`, the message `this master is a standby; …`, and the
//! metadata [`LEADER_HEADER`] naming the leader when one leads. Whoever
//! calls moves to that leader, or to the next master of the list.

use crate::connect::{Trust, UNIX};
use tonic::transport::Channel;

/// The response metadata in which a standby names the leader's URL.
pub const LEADER_HEADER: &str = "grid-leader";

/// How a standby's refusal starts.
const STANDBY: &str = "this master is a standby";

/// Where, in a standby's message, the leader's URL follows.
const LEADER_AT: &str = "the leader is at ";

/// The most masters one list may name.
const MAX_MASTERS: usize = 32;

/// The longest master URL taken from a list or a standby's answer.
const MAX_URL: usize = 2048;

/// The masters of one grid and the one talked to now. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masters {
    /// As written, in the order given, without repeats.
    urls: Vec<String>,
    /// The one of `urls` talked to now, unless `led_to` is set.
    current: usize,
    /// A leader outside the list that a standby named (see [`Masters::follow`]).
    led_to: Option<String>,
}

/// What a master's refusal says about who leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standby {
    /// The master is a standby, and this URL leads.
    Leader(String),
    /// The master is a standby and names no leader (none leads yet).
    NoLeader,
}

impl Masters {
    /// The masters in `list`: URLs separated by commas (`https://m1:7070,
    /// https://m2:7070`), each as `--master` takes one; a URL written twice
    /// counts once. One clear sentence when the list is malformed.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut urls: Vec<String> = Vec::new();
        for entry in list.split(',') {
            let url = entry.trim();
            if url.is_empty() {
                return Err(format!(
                    "`{list}` names an empty master URL: separate URLs by single commas, like \
                     `https://m1:7070,https://m2:7070`"
                ));
            }
            if url.len() > MAX_URL {
                return Err(format!("a master URL is over {MAX_URL} bytes long"));
            }
            if !url.starts_with(UNIX) {
                crate::wire::master_url(url)?;
            }
            if !urls.iter().any(|u| same(u, url)) {
                urls.push(url.to_owned());
            }
        }
        if urls.len() > MAX_MASTERS {
            return Err(format!("`--master` names {} masters; a grid may have at most {MAX_MASTERS}", urls.len()));
        }
        Ok(Self { urls, current: 0, led_to: None })
    }

    /// The URL talked to now.
    pub fn current(&self) -> &str {
        self.led_to.as_deref().unwrap_or(&self.urls[self.current])
    }

    /// The masters as given.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The current master failed (unreachable, or a standby naming no
    /// leader): the next of the list, after the last the first.
    pub fn next(&mut self) {
        if self.led_to.take().is_none() {
            self.current = (self.current + 1) % self.urls.len();
        }
    }

    /// Moves to `leader`, which the current master named as the leader;
    /// `false` (and no move) if it may not be followed.
    ///
    /// A leader of the list is always followed. One outside it only over
    /// TLS, and only when the master that named it was reached over TLS too:
    /// every master of a grid has a certificate from the grid's one CA, so
    /// the leader is checked against the same trust as the list's masters
    /// and a mistaken or forged name cannot lead the token elsewhere. A
    /// plaintext answer may come from anyone in between, and a plaintext
    /// leader proves nothing, so neither is followed outside the list.
    pub fn follow(&mut self, leader: &str) -> bool {
        if let Some(i) = self.urls.iter().position(|u| same(u, leader)) {
            self.current = i;
            self.led_to = None;
            return true;
        }
        if is_tls(self.current()) && is_tls(leader) {
            self.led_to = Some(leader.to_owned());
            return true;
        }
        false
    }

    /// After a refusal, moves to where it points: the leader a standby
    /// named (when it may be followed), else the next master. Returns
    /// whether the refusal came from a standby, which did nothing with the
    /// call, so that any call may be made again.
    pub fn redirect(&mut self, status: &tonic::Status) -> bool {
        match standby_of(status) {
            Some(Standby::Leader(url)) => {
                if !self.follow(&url) {
                    self.next();
                }
                true
            }
            Some(Standby::NoLeader) => {
                self.next();
                true
            }
            None => false,
        }
    }

    /// A channel to the first master that can be reached, from the current
    /// one on, each tried once; the current one is then that master. With
    /// one master, its error as is; with several, every master's.
    pub async fn connect(&mut self, trust: &Trust) -> Result<Channel, String> {
        let mut failures = Vec::new();
        for _ in 0..self.urls.len() + usize::from(self.led_to.is_some()) {
            match crate::connect::channel(self.current(), trust).await {
                Ok(channel) => return Ok(channel),
                Err(why) => failures.push(why),
            }
            self.next();
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => Err(format!("no master can be reached: {}", failures.join("; "))),
        }
    }
}

impl std::fmt::Display for Masters {
    /// The list as `--master` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.urls.join(","))
    }
}

/// What `status` says about who leads: `None` unless it is a standby's
/// refusal.
pub fn standby_of(status: &tonic::Status) -> Option<Standby> {
    let header = status.metadata().get(LEADER_HEADER).and_then(|v| v.to_str().ok());
    standby(status.code(), status.message(), header)
}

/// What a refusal with `code`, `message` and the [`LEADER_HEADER`]
/// metadata `header` says about who leads: `None` unless it is a standby's.
/// The header names the leader; a message alone (metadata a proxy dropped)
/// does too. A name that is no master URL names no leader.
pub fn standby(code: tonic::Code, message: &str, header: Option<&str>) -> Option<Standby> {
    if code != tonic::Code::Unavailable || (header.is_none() && !message.starts_with(STANDBY)) {
        return None;
    }
    let from_message = || message.split_once(LEADER_AT).map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""));
    let leader = header.or_else(from_message).map(str::trim).unwrap_or("");
    let usable = !leader.is_empty()
        && leader.len() <= MAX_URL
        && !leader.starts_with(UNIX)
        && !leader.contains(',')
        && crate::wire::master_url(leader).is_ok();
    Some(if usable { Standby::Leader(leader.to_owned()) } else { Standby::NoLeader })
}

/// Whether `url` speaks TLS (`https://`, or no scheme).
fn is_tls(url: &str) -> bool {
    !url.starts_with(UNIX)
        && crate::wire::master_url(url).is_ok_and(|u| u.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")))
}

/// Whether `a` and `b` name the same master, however written: the scheme
/// in any case (`https://` when there is none), a trailing `/` or not.
pub fn same(a: &str, b: &str) -> bool {
    normalized(a) == normalized(b)
}

/// A URL as written for comparing.
fn normalized(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with(UNIX) {
        return url.to_owned();
    }
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => format!("https://{url}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn a_list_parses_each_url_once_and_refuses_a_malformed_one_in_a_sentence() {
        let one = Masters::parse("https://m1:7070").unwrap();
        assert_eq!((one.urls(), one.current()), (&["https://m1:7070".to_owned()][..], "https://m1:7070"));
        let two = Masters::parse(" m1:7070 , http://m2:7070/,HTTPS://m1:7070").unwrap();
        assert_eq!(two.urls(), ["m1:7070", "http://m2:7070/"]);
        assert_eq!(two.to_string(), "m1:7070,http://m2:7070/");
        for (list, why) in [
            ("", "names an empty master URL"),
            ("https://m1:7070,", "names an empty master URL"),
            ("a,,b", "names an empty master URL"),
            ("https://m1:7070,ftp://m2", "`ftp://` is not spoken"),
        ] {
            let err = Masters::parse(list).unwrap_err();
            assert!(err.contains(why), "{list:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let many: Vec<String> = (0..40).map(|i| format!("m{i}:7070")).collect();
        assert!(Masters::parse(&many.join(",")).unwrap_err().contains("at most 32"));
    }

    #[test]
    fn a_standby_is_told_by_its_code_and_header_or_message() {
        let check = |code, message: &str, header: Option<&str>, expected: Option<Standby>| {
            assert_eq!(standby(code, message, header), expected, "{code:?} {message:?} {header:?}");
        };
        let leader = |u: &str| Some(Standby::Leader(u.to_owned()));
        let msg = "this master is a standby; the leader is at https://m2:7070";
        check(Code::Unavailable, msg, Some("https://m2:7070"), leader("https://m2:7070"));
        check(Code::Unavailable, msg, None, leader("https://m2:7070"));
        check(Code::Unavailable, "anything", Some(" http://m3:1 "), leader("http://m3:1"));
        check(Code::Unavailable, "this master is a standby; no master leads yet", None, Some(Standby::NoLeader));
        // The header wins over the message; a bad name names no leader.
        check(Code::Unavailable, msg, Some("ftp://x"), Some(Standby::NoLeader));
        check(Code::Unavailable, msg, Some(""), Some(Standby::NoLeader));
        check(Code::Unavailable, msg, Some("https://a,https://b"), Some(Standby::NoLeader));
        check(Code::Unavailable, msg, Some(&"x".repeat(5000)), Some(Standby::NoLeader));
        check(Code::Unavailable, msg, Some("unix:/tmp/s"), Some(Standby::NoLeader));
        // Not a standby: another code, or a plain unavailable master.
        check(Code::Internal, msg, Some("https://m2:7070"), None);
        check(Code::Unavailable, "transport error", None, None);
        let mut status = tonic::Status::unavailable("this master is a standby; the leader is at https://m9:1");
        status.metadata_mut().insert(LEADER_HEADER, "https://m2:7070".parse().unwrap());
        assert_eq!(standby_of(&status), leader("https://m2:7070"));
    }

    #[test]
    fn a_hint_in_the_list_is_followed_and_one_outside_only_over_tls() {
        let mut tls = Masters::parse("https://m1:7070,https://m2:7070,https://m3:7070").unwrap();
        assert!(tls.follow("HTTPS://m3:7070/"));
        assert_eq!(tls.current(), "https://m3:7070");
        assert!(tls.follow("https://m9:7070"));
        assert_eq!(tls.current(), "https://m9:7070");
        // A leader outside the list that fails: back to the list.
        tls.next();
        assert_eq!(tls.current(), "https://m3:7070");
        tls.next();
        assert_eq!(tls.current(), "https://m1:7070");
        assert!(!tls.follow("http://m9:7070"), "a plaintext leader outside the list");

        let mut plain = Masters::parse("http://m1:7070,http://m2:7070").unwrap();
        assert!(!plain.follow("https://m9:7070"), "named over plaintext");
        assert_eq!(plain.current(), "http://m1:7070");
        assert!(plain.follow("http://m2:7070"));
        assert_eq!(plain.current(), "http://m2:7070");
    }

    #[test]
    fn a_refusal_moves_to_the_leader_or_the_next_master() {
        let mut masters = Masters::parse("http://m1:1,http://m2:2,http://m3:3").unwrap();
        let standby = |leader: Option<&str>| {
            let mut s = tonic::Status::unavailable(format!("{STANDBY}; no master leads yet"));
            if let Some(l) = leader {
                s.metadata_mut().insert(LEADER_HEADER, l.parse().unwrap());
            }
            s
        };
        assert!(masters.redirect(&standby(Some("http://m3:3"))));
        assert_eq!(masters.current(), "http://m3:3");
        assert!(masters.redirect(&standby(None)));
        assert_eq!(masters.current(), "http://m1:1");
        // A leader that may not be followed: the next one.
        assert!(masters.redirect(&standby(Some("http://elsewhere:1"))));
        assert_eq!(masters.current(), "http://m2:2");
        assert!(!masters.redirect(&tonic::Status::unavailable("transport error")));
        assert!(!masters.redirect(&tonic::Status::not_found("no job")));
        assert_eq!(masters.current(), "http://m2:2");
    }
}
