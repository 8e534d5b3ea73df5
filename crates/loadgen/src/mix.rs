//! The message mix (`--mix report=98,pause=1,resume=1`) and a deterministic cursor over it.
//!
//! The cursor is a smooth weighted round-robin (as nginx balances upstreams): over every
//! `sum(weights)` requests each kind appears exactly `weight` times, spread out rather than in
//! bursts, so a short run still has the configured proportions and no random generator is
//! needed on the hot path.

use avp_proto::peer::RequestKind;
use std::fmt;
use std::str::FromStr;

/// Relative weights of the request kinds; at least one is non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; RequestKind::ALL.len()],
}

impl Mix {
    /// Reports only.
    pub fn reports_only() -> Self {
        let mut weights = [0; RequestKind::ALL.len()];
        weights[RequestKind::Report as usize] = 1;
        Mix { weights }
    }

    /// The weight of one kind.
    pub fn weight(&self, kind: RequestKind) -> u32 {
        self.weights[kind as usize]
    }

    /// A fresh cursor at the start of the cycle.
    pub fn cursor(&self) -> MixCursor {
        let mut kinds = RequestKind::ALL.into_iter().filter(|k| self.weight(*k) > 0);
        let only = match (kinds.next(), kinds.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        };
        MixCursor {
            only,
            weights: self.weights,
            current: [0; RequestKind::ALL.len()],
            total: self.weights.iter().map(|w| i64::from(*w)).sum(),
        }
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix::reports_only()
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = [0u32; RequestKind::ALL.len()];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KIND=WEIGHT, e.g. report=98"))?;
            let kind = RequestKind::from_name(name.trim()).ok_or_else(|| {
                format!("{name:?}: unknown message kind; use report, pause or resume")
            })?;
            weights[kind as usize] = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(format!("{s:?}: the mix needs at least one non-zero weight"));
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in RequestKind::ALL {
            let w = self.weight(kind);
            if w > 0 {
                write!(f, "{}{}={w}", if first { "" } else { "," }, kind.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Yields request kinds in the proportions of a [`Mix`].
#[derive(Debug, Clone)]
pub struct MixCursor {
    only: Option<RequestKind>,
    weights: [u32; RequestKind::ALL.len()],
    current: [i64; RequestKind::ALL.len()],
    total: i64,
}

impl MixCursor {
    /// The one kind a mix of a single kind sends, which every [`MixCursor::next_kind`] returns.
    #[inline]
    pub fn single_kind(&self) -> Option<RequestKind> {
        self.only
    }

    /// The next kind to send.
    #[inline]
    pub fn next_kind(&mut self) -> RequestKind {
        if let Some(k) = self.only {
            return k;
        }
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.current[i] += i64::from(self.weights[i]);
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        RequestKind::ALL[best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: Mix = "report=98, pause=1,resume=1".parse().unwrap();
        assert_eq!(m.to_string(), "report=98,pause=1,resume=1");
        assert!("report=0".parse::<Mix>().is_err());
        assert!("bogus=1".parse::<Mix>().is_err());
        assert!("report".parse::<Mix>().is_err());
        assert!("report=x".parse::<Mix>().is_err());
    }

    #[test]
    fn cursor_keeps_exact_proportions_spread_out() {
        let m: Mix = "report=98,pause=1,resume=1".parse().unwrap();
        let mut c = m.cursor();
        let kinds: Vec<_> = (0..200).map(|_| c.next_kind()).collect();
        let count = |k| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count(RequestKind::Report), 196);
        assert_eq!(count(RequestKind::Pause), 2);
        assert_eq!(count(RequestKind::Resume), 2);
        let first_pause = kinds.iter().position(|k| *k == RequestKind::Pause).unwrap();
        assert!(
            first_pause > 10,
            "pauses are spread out, not bunched at the start"
        );
    }

    #[test]
    fn reports_only_by_default() {
        let mut c = Mix::default().cursor();
        assert!((0..10).all(|_| c.next_kind() == RequestKind::Report));
    }
}
