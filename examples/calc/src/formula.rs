//! Arithmetic formulas: `+ - * / ^`, parentheses, unary minus and decimals, e.g. `(2+2)*3` = 12.
//! `^` binds tightest and to the right (`2^3^2` = 512, `-2^2` = -4). Hostile input is refused, never a
//! crash: a length limit, a nesting limit (the parser's recursion is bounded by it), and results that
//! must stay finite.

use std::fmt;

/// Longest formula accepted, in bytes.
pub const MAX_LENGTH: usize = 256;
/// Deepest nesting of parentheses and unary minus accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum FormulaError {
    Empty,
    TooLong { length: usize },
    TooDeep,
    Unexpected { found: String, at: usize, expected: &'static str },
    DivisionByZero,
    NotFinite,
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the formula is empty; expected e.g. (2+2)*3"),
            Self::TooLong { length } => {
                write!(f, "the formula is {length} bytes; at most {MAX_LENGTH} are accepted")
            }
            Self::TooDeep => write!(f, "the formula nests deeper than {MAX_DEPTH} levels"),
            Self::Unexpected { found, at, expected } => {
                write!(f, "unexpected {found} at position {at}; expected {expected}")
            }
            Self::DivisionByZero => write!(f, "division by zero"),
            Self::NotFinite => write!(f, "the result is not a finite real number (too large, or undefined)"),
        }
    }
}

impl std::error::Error for FormulaError {}

/// Evaluates `formula`.
pub fn evaluate(formula: &str) -> Result<f64, FormulaError> {
    if formula.len() > MAX_LENGTH {
        return Err(FormulaError::TooLong { length: formula.len() });
    }
    if formula.trim().is_empty() {
        return Err(FormulaError::Empty);
    }
    let mut parser = Parser { text: formula.as_bytes(), at: 0, depth: 0 };
    let value = parser.sum()?;
    parser.skip_spaces();
    if parser.at < parser.text.len() {
        return Err(parser.unexpected("an operator or the end"));
    }
    finite(value)
}

fn finite(value: f64) -> Result<f64, FormulaError> {
    if value.is_finite() { Ok(if value == 0.0 { 0.0 } else { value }) } else { Err(FormulaError::NotFinite) }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.text.get(self.at).copied()
    }

    fn unexpected(&self, expected: &'static str) -> FormulaError {
        let found = match self.text.get(self.at) {
            Some(byte) if byte.is_ascii_graphic() => format!("'{}'", char::from(*byte)),
            Some(_) => "a character that is not ASCII".to_owned(),
            None => "end of formula".to_owned(),
        };
        FormulaError::Unexpected { found, at: self.at + 1, expected }
    }

    fn enter(&mut self) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(FormulaError::TooDeep) } else { Ok(()) }
    }

    /// sum := product (('+' | '-') product)*
    fn sum(&mut self) -> Result<f64, FormulaError> {
        let mut value = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            let rhs = self.product()?;
            value = finite(if op == b'+' { value + rhs } else { value - rhs })?;
        }
        Ok(value)
    }

    /// product := unary (('*' | '/') unary)*
    fn product(&mut self) -> Result<f64, FormulaError> {
        let mut value = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.at += 1;
            let rhs = self.unary()?;
            value = if op == b'*' {
                finite(value * rhs)?
            } else if rhs == 0.0 {
                return Err(FormulaError::DivisionByZero);
            } else {
                finite(value / rhs)?
            };
        }
        Ok(value)
    }

    /// unary := '-' unary | power
    fn unary(&mut self) -> Result<f64, FormulaError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
            self.enter()?;
            let value = -self.unary()?;
            self.depth -= 1;
            return Ok(value);
        }
        self.power()
    }

    /// power := atom ('^' unary)?   (right-associative; `2^-1` is allowed)
    fn power(&mut self) -> Result<f64, FormulaError> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') {
            self.at += 1;
            self.enter()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            if base == 0.0 && exponent < 0.0 {
                return Err(FormulaError::DivisionByZero);
            }
            return finite(base.powf(exponent));
        }
        Ok(base)
    }

    /// atom := number | '(' sum ')'
    fn atom(&mut self) -> Result<f64, FormulaError> {
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                self.enter()?;
                let value = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err(self.unexpected("')'"));
                }
                self.at += 1;
                self.depth -= 1;
                Ok(value)
            }
            Some(b'0'..=b'9' | b'.') => self.number(),
            _ => Err(self.unexpected("a number or '('")),
        }
    }

    fn number(&mut self) -> Result<f64, FormulaError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.text.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        let mut count = digits(self);
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            count += digits(self);
        }
        if count == 0 {
            self.at = start;
            return Err(self.unexpected("a number"));
        }
        let text =
            std::str::from_utf8(&self.text[start..self.at]).map_err(|_| self.unexpected("a number"))?;
        text.parse().map_err(|_| self.unexpected("a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates() {
        let cases = [
            ("(2+2)*3", 12.0),
            ("2+2*3", 8.0),
            ("1 - 2 - 3", -4.0),
            ("8/2/2", 2.0),
            ("2^3^2", 512.0),
            ("-2^2", -4.0),
            ("(-2)^2", 4.0),
            ("2^-1", 0.5),
            ("--3", 3.0),
            ("-(1+2)*-3", 9.0),
            ("1.5*.5", 0.75),
            ("3.", 3.0),
            (" 42 ", 42.0),
            ("0*-1", 0.0),
            ("10/4", 2.5),
        ];
        for (formula, expected) in cases {
            assert_eq!(evaluate(formula), Ok(expected), "{formula}");
        }
    }

    #[test]
    fn refuses_bad_input_clearly() {
        let cases: [(&str, &str); 13] = [
            ("", "empty"),
            ("   ", "empty"),
            ("1/0", "division by zero"),
            ("1/(2-2)", "division by zero"),
            ("0^-1", "division by zero"),
            ("2+", "unexpected end of formula at position 3; expected a number or '('"),
            ("(1+2", "expected ')'"),
            ("1+2)", "unexpected ')' at position 4"),
            ("2*x", "unexpected 'x' at position 3"),
            ("1..2", "unexpected '.' at position 3"),
            ("10^400", "too large"),
            ("(-8)^0.5", "undefined"),
            ("2 3", "unexpected '3'"),
        ];
        for (formula, message) in cases {
            let error = evaluate(formula).unwrap_err().to_string();
            assert!(error.contains(message), "{formula:?}: {error}");
        }
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(deep.len() <= MAX_LENGTH);
        assert_eq!(evaluate(&deep), Err(FormulaError::TooDeep));
        assert_eq!(evaluate(&"-".repeat(200)), Err(FormulaError::TooDeep));
        assert_eq!(evaluate("2^".repeat(100).trim_end_matches('^')), Err(FormulaError::TooDeep));
        let long = "1+".repeat(200) + "1";
        assert_eq!(evaluate(&long), Err(FormulaError::TooLong { length: 401 }));
        assert!(evaluate("9".repeat(250).as_str()).is_ok(), "a long number is just large");
        assert!(evaluate("é").unwrap_err().to_string().contains("not ASCII"));
        let nested_ok = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(evaluate(&nested_ok), Ok(1.0));
    }
}
