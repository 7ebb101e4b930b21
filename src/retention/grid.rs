//! The retention grid as users write it (`24h 7d 4w 12m 2y`): how many of the
//! last hours, days, weeks, months and years keep their oldest snapshot.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The largest count one term may ask for: 10,000 periods is more than a
/// decade of days or a century of weeks, and keeps period arithmetic small.
pub const MAX_COUNT: u32 = 10_000;

/// A calendar period of the grid. Weeks start on Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// Every unit, shortest first: the order terms are written in.
    pub const ALL: [Unit; 5] = [Unit::Hour, Unit::Day, Unit::Week, Unit::Month, Unit::Year];

    /// The letter a term ends with (`h`, `d`, `w`, `m`, `y`).
    pub fn letter(self) -> char {
        match self {
            Unit::Hour => 'h',
            Unit::Day => 'd',
            Unit::Week => 'w',
            Unit::Month => 'm',
            Unit::Year => 'y',
        }
    }

    fn from_letter(c: char) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.letter() == c)
    }

    /// The adjective for messages (`hourly`, `daily`, ...).
    pub fn adjective(self) -> &'static str {
        match self {
            Unit::Hour => "hourly",
            Unit::Day => "daily",
            Unit::Week => "weekly",
            Unit::Month => "monthly",
            Unit::Year => "yearly",
        }
    }
}

/// One term: keep the oldest snapshot of each of the last `count` periods of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Term {
    pub count: u32,
    pub unit: Unit,
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}

/// A whole grid: at most one term per unit, shortest unit first. Empty means
/// no grid (only the count rules apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Grid(Vec<Term>);

/// Why a grid's text was refused; each message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GridError {
    #[error("retention grid term `{0}` is not a count and a unit; write terms like `24h 7d 4w 12m 2y` (h hours, d days, w weeks, m months, y years), or `none`")]
    Term(String),
    #[error("retention grid term `{term}`: the count must be between 1 and {MAX_COUNT}")]
    Count { term: String },
    #[error("retention grid `{grid}` gives {unit} periods twice; give each unit once")]
    Twice { grid: String, unit: &'static str },
}

impl Grid {
    /// The grid's terms, shortest unit first.
    pub fn terms(&self) -> &[Term] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most snapshots the grid alone can keep (one per period).
    pub fn max_kept(&self) -> u64 {
        self.0.iter().map(|t| u64::from(t.count)).sum()
    }
}

impl FromStr for Grid {
    type Err = GridError;

    /// Parses `24h 7d 4w 12m 2y` (spaces or commas between terms, any order);
    /// `none` or an empty text is the empty grid.
    fn from_str(text: &str) -> Result<Grid, GridError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none") {
            return Ok(Grid::default());
        }
        let mut terms: Vec<Term> = Vec::new();
        for token in trimmed
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
        {
            let term = parse_term(token)?;
            if terms.iter().any(|t| t.unit == term.unit) {
                return Err(GridError::Twice {
                    grid: trimmed.to_string(),
                    unit: term.unit.adjective(),
                });
            }
            terms.push(term);
        }
        terms.sort_by_key(|t| t.unit);
        Ok(Grid(terms))
    }
}

fn parse_term(token: &str) -> Result<Term, GridError> {
    let bad = || GridError::Term(token.to_string());
    let last = token.chars().last().ok_or_else(bad)?;
    let unit = Unit::from_letter(last.to_ascii_lowercase()).ok_or_else(bad)?;
    let digits = &token[..token.len() - last.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u32>() {
        Ok(count @ 1..=MAX_COUNT) => Ok(Term { count, unit }),
        _ => Err(GridError::Count {
            term: token.to_string(),
        }),
    }
}

impl fmt::Display for Grid {
    /// The canonical text (`24h 7d 4w 12m`), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let terms: Vec<String> = self.0.iter().map(Term::to_string).collect();
        f.write_str(&terms.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_to_their_canonical_text() {
        for (text, canonical) in [
            ("24h 7d 4w 12m 2y", "24h 7d 4w 12m 2y"),
            ("2y,12m  4w 7d 24h", "24h 7d 4w 12m 2y"),
            ("7D", "7d"),
            ("", "none"),
            ("none", "none"),
            (" NONE ", "none"),
        ] {
            let grid: Grid = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(grid.to_string(), canonical, "{text}");
            assert_eq!(grid.to_string().parse::<Grid>(), Ok(grid));
        }
        let grid: Grid = "24h 7d".parse().expect("grid");
        assert_eq!(grid.max_kept(), 31);
    }

    #[test]
    fn bad_grids_are_refused_naming_the_term_and_the_fix() {
        for (text, says) in [
            ("24", "`24` is not a count and a unit"),
            ("h", "`h` is not a count and a unit"),
            ("7x", "`7x`"),
            ("-1d", "`-1d`"),
            ("1.5d", "`1.5d`"),
            ("0h", "between 1 and 10000"),
            ("10001d", "between 1 and 10000"),
            ("99999999999d", "between 1 and 10000"),
            ("7d 3d", "daily periods twice"),
        ] {
            let err = text.parse::<Grid>().expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
