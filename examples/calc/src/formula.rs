//! Arithmetic formulas: `+ - * / ^`, parentheses, unary minus and plus, decimals, constants and
//! one-argument functions, e.g. `(2+2)*3` = 12, `sqrt(16)+2^3` = 12, `cos(pi)` = -1.
//!
//! ```text
//! sum     := product (('+' | '-') product)*
//! product := unary (('*' | '/') unary)*
//! unary   := ('-' | '+') unary | power
//! power   := atom ('^' unary)?                  right-associative: 2^3^2 = 512, -2^2 = -4
//! atom    := number | '(' sum ')' | constant | function '(' sum ')'
//! number  := digits ['.' [digits]] | '.' digits
//! ```
//!
//! Constants and functions are those of the original example's calc library (Go's `math` package):
//! [`CONSTANTS`] and [`FUNCTION_NAMES`], matched case-insensitively; trigonometry is in radians.
//! Hostile input is refused, never a crash: a length limit, a nesting limit (parentheses, function calls
//! and unary signs; the parser's recursion is bounded by it), and every intermediate result must be
//! finite, so `1/0`, `10^400`, `sqrt(-1)` and `ln(0)` are errors, not `+Inf` or `NaN`.

use std::fmt;

/// Longest formula accepted, in bytes.
pub const MAX_LENGTH: usize = 256;
/// Deepest nesting of parentheses, function calls and unary signs accepted.
pub const MAX_DEPTH: usize = 32;

/// The named constants, with the values of Go's `math.E`, `math.Pi`, `math.Phi` (the golden ratio),
/// `math.Sqrt2`, `math.SqrtE`, `math.SqrtPi` and `math.SqrtPhi`, each rounded to the nearest `f64`.
pub const CONSTANTS: [(&str, f64); 7] = [
    ("e", std::f64::consts::E),
    ("pi", std::f64::consts::PI),
    ("phi", 1.618_033_988_749_895),
    ("sqrt2", std::f64::consts::SQRT_2),
    ("sqrte", 1.648_721_270_700_128_2),
    ("sqrtpi", 1.772_453_850_905_516),
    ("sqrtphi", 1.272_019_649_514_069),
];

/// The functions' names, in the order error messages list them.
pub const FUNCTION_NAMES: [&str; 12] =
    ["sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "ln", "abs", "ceil", "floor", "cbrt"];

/// Why a formula is refused; the message says what is wrong and, for syntax, what was expected.
/// Positions count bytes from 1 (`ExtraArgument`'s is the comma's); `Domain` is a function outside its
/// domain, e.g. `sqrt(-1)`.
#[derive(Debug, Clone, PartialEq)]
pub enum FormulaError {
    Empty,
    TooLong { length: usize },
    TooDeep,
    Unexpected { found: String, at: usize, expected: &'static str },
    DivisionByZero,
    NotFinite,
    UnknownName { name: String, at: usize },
    UnknownFunction { name: String, at: usize },
    NotAFunction { name: &'static str, at: usize },
    MissingCall { function: &'static str, at: usize },
    NoArgument { function: &'static str, at: usize },
    ExtraArgument { function: &'static str, at: usize },
    Domain { function: &'static str, argument: f64, needs: &'static str },
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
            Self::UnknownName { name, at } => {
                let constants = CONSTANTS.map(|(name, _)| name).join(", ");
                let functions = FUNCTION_NAMES.join(", ");
                write!(
                    f,
                    "unknown name '{name}' at position {at}; expected a number, a constant ({constants}) \
                     or a function call such as sqrt(2) ({functions})"
                )
            }
            Self::UnknownFunction { name, at } => {
                let functions = FUNCTION_NAMES.join(", ");
                write!(f, "unknown function '{name}' at position {at}; the functions are {functions}")
            }
            Self::NotAFunction { name, at } => write!(
                f,
                "{name} at position {at} is a constant, not a function; expected {name} without parentheses"
            ),
            Self::MissingCall { function, at } => write!(
                f,
                "{function} at position {at} is a function; expected its argument in parentheses, \
                 as in {function}(2)"
            ),
            Self::NoArgument { function, at } => write!(
                f,
                "{function} at position {at} takes exactly one argument, as in {function}(2); found none"
            ),
            Self::ExtraArgument { function, at } => write!(
                f,
                "{function} takes exactly one argument, as in {function}(2); found another after the ',' \
                 at position {at}"
            ),
            Self::Domain { function, argument, needs } => write!(
                f,
                "{function}({}) has no finite real value; {function} needs {needs}",
                show(*argument)
            ),
        }
    }
}

impl std::error::Error for FormulaError {}

/// A number for an error message: plain when short, in scientific notation when huge or tiny.
fn show(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_owned()
    } else if (1e-6..1e16).contains(&magnitude) {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

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

/// Where a function is defined (with a finite real value).
#[derive(Clone, Copy)]
enum Domain {
    All,
    NotNegative,
    Positive,
    MinusOneToOne,
}

impl Domain {
    fn contains(self, x: f64) -> bool {
        match self {
            Self::All => true,
            Self::NotNegative => x >= 0.0,
            Self::Positive => x > 0.0,
            Self::MinusOneToOne => (-1.0..=1.0).contains(&x),
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Self::All => "a number",
            Self::NotNegative => "x >= 0",
            Self::Positive => "x > 0",
            Self::MinusOneToOne => "-1 <= x <= 1",
        }
    }
}

/// A function: its name, what it computes and where that has a finite real value.
type Function = (&'static str, fn(f64) -> f64, Domain);

/// The functions, in [`FUNCTION_NAMES`] order: each takes one argument, in radians for trigonometry.
const FUNCTIONS: [Function; 12] = [
    ("sqrt", f64::sqrt, Domain::NotNegative),
    ("sin", f64::sin, Domain::All),
    ("cos", f64::cos, Domain::All),
    ("tan", f64::tan, Domain::All),
    ("asin", f64::asin, Domain::MinusOneToOne),
    ("acos", f64::acos, Domain::MinusOneToOne),
    ("atan", f64::atan, Domain::All),
    ("ln", f64::ln, Domain::Positive),
    ("abs", f64::abs, Domain::All),
    ("ceil", f64::ceil, Domain::All),
    ("floor", f64::floor, Domain::All),
    ("cbrt", f64::cbrt, Domain::All),
];

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

    /// unary := ('-' | '+') unary | power
    fn unary(&mut self) -> Result<f64, FormulaError> {
        if let Some(sign @ (b'-' | b'+')) = self.peek() {
            self.at += 1;
            self.enter()?;
            let value = self.unary()?;
            self.depth -= 1;
            return Ok(if sign == b'-' { -value } else { value });
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

    /// atom := number | '(' sum ')' | constant | function '(' sum ')'
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
            Some(byte) if byte.is_ascii_alphabetic() => self.name(),
            _ => Err(self.unexpected("a number, a name or '('")),
        }
    }

    /// A constant, or a function applied to its parenthesized argument. Names are letters then letters
    /// or digits, matched case-insensitively.
    fn name(&mut self) -> Result<f64, FormulaError> {
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_alphanumeric) {
            self.at += 1;
        }
        // Only ASCII letters and digits were taken.
        let written = String::from_utf8_lossy(&self.text[start..self.at]);
        let at = start + 1;
        let called = self.peek() == Some(b'(');
        if let Some(&(function, apply, domain)) =
            FUNCTIONS.iter().find(|(name, ..)| name.eq_ignore_ascii_case(&written))
        {
            if !called {
                return Err(FormulaError::MissingCall { function, at });
            }
            let argument = self.argument(function, at)?;
            if !domain.contains(argument) {
                return Err(FormulaError::Domain { function, argument, needs: domain.needs() });
            }
            return finite(apply(argument));
        }
        if let Some(&(name, value)) = CONSTANTS.iter().find(|(name, _)| name.eq_ignore_ascii_case(&written)) {
            return if called { Err(FormulaError::NotAFunction { name, at }) } else { Ok(value) };
        }
        let name = written.into_owned();
        Err(if called {
            FormulaError::UnknownFunction { name, at }
        } else {
            FormulaError::UnknownName { name, at }
        })
    }

    /// '(' sum ')', the one argument of `function` (named at position `at`): a nesting level, like
    /// parentheses.
    fn argument(&mut self, function: &'static str, at: usize) -> Result<f64, FormulaError> {
        self.at += 1;
        self.enter()?;
        if self.peek() == Some(b')') {
            return Err(FormulaError::NoArgument { function, at });
        }
        let value = self.sum()?;
        match self.peek() {
            Some(b')') => {}
            Some(b',') => return Err(FormulaError::ExtraArgument { function, at: self.at + 1 }),
            _ => return Err(self.unexpected("')'")),
        }
        self.at += 1;
        self.depth -= 1;
        Ok(value)
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
    use std::f64::consts::{E, FRAC_PI_2, LN_10, PI, SQRT_2, TAU};

    use super::*;

    const PHI: f64 = 1.618_033_988_749_895;

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
            // Unary plus.
            ("+3", 3.0),
            ("2*+3", 6.0),
            ("+-3", -3.0),
            ("-+3", -3.0),
            ("2^+1", 2.0),
            ("+2^2", 4.0),
        ];
        for (formula, expected) in cases {
            assert_eq!(evaluate(formula), Ok(expected), "{formula}");
        }
    }

    /// Values that are exact in `f64`, compared exactly.
    #[test]
    fn evaluates_constants_and_functions_exactly() {
        let cases = [
            ("sqrt(16)", 4.0),
            ("sqrt(16)+2^3", 12.0),
            ("sqrt(2)", SQRT_2),
            ("sqrt(0)", 0.0),
            (" sqrt ( 16 ) ", 4.0),
            ("sqrt(sqrt(256))", 4.0),
            ("-sqrt(4)", -2.0),
            ("sqrt(4)^3", 8.0),
            ("2^sqrt(4)", 4.0),
            ("sqrt(2^2*3^2)", 6.0),
            ("sin(0)", 0.0),
            ("cos(0)", 1.0),
            ("cos(pi)", -1.0),
            ("tan(0)", 0.0),
            ("asin(1)", FRAC_PI_2),
            ("asin(0)", 0.0),
            ("acos(1)", 0.0),
            ("acos(-1)", PI),
            ("atan(0)", 0.0),
            ("ln(1)", 0.0),
            ("ln(e)", 1.0),
            ("abs(-7)", 7.0),
            ("abs(-2^2)", 4.0),
            ("abs(3.5)", 3.5),
            ("ceil(1.2)", 2.0),
            ("ceil(-0.5)", 0.0),
            ("floor(-1.2)", -2.0),
            ("floor(phi*1000)/1000", 1.618),
            ("cbrt(27)", 3.0),
            ("cbrt(-8)", -2.0),
            ("e", E),
            ("pi", PI),
            ("2*pi", TAU),
            ("phi", PHI),
            ("sqrt2", SQRT_2),
            ("sqrte", 1.648_721_270_700_128_2),
            ("sqrtpi", 1.772_453_850_905_516),
            ("sqrtphi", 1.272_019_649_514_069),
            ("-pi^2", -(PI * PI)),
            // Names are case-insensitive.
            ("PI", PI),
            ("Sqrt(16)", 4.0),
            ("SQRT2", SQRT_2),
            ("FLOOR(E)", 2.0),
        ];
        for (formula, expected) in cases {
            assert_eq!(evaluate(formula), Ok(expected), "{formula}");
        }
    }

    /// Values that are not exact in `f64`, compared within a relative tolerance.
    #[test]
    fn evaluates_functions_within_rounding() {
        let cases = [
            ("sin(pi/6)", 0.5),
            ("sin(-pi/2)", -1.0),
            ("cos(pi/3)", 0.5),
            ("tan(pi/4)", 1.0),
            ("atan(1)*4", PI),
            ("asin(0.5)*6", PI),
            ("acos(0.5)*3", PI),
            ("ln(e^2)", 2.0),
            ("ln(10)", LN_10),
            ("cbrt(2)^3", 2.0),
            ("sqrt(2)^2", 2.0),
            ("sqrte^2", E),
            ("sqrtpi^2", PI),
            ("sqrtphi^2", PHI),
            ("phi^2 - phi", 1.0),
            ("1/phi", PHI - 1.0),
            ("sin(1)^2 + cos(1)^2", 1.0),
        ];
        for (formula, expected) in cases {
            let value = evaluate(formula).unwrap_or_else(|e| panic!("{formula}: {e}"));
            assert!((value - expected).abs() <= 1e-12 * expected.abs().max(1.0), "{formula}: {value}");
        }
    }

    /// The constants are Go's `math` constants (the original calc library's), each rounded to `f64`.
    #[test]
    fn constants_are_gos() {
        let go = [
            ("e", "2.71828182845904523536028747135266249775724709369995957496696763"),
            ("pi", "3.14159265358979323846264338327950288419716939937510582097494459"),
            ("phi", "1.61803398874989484820458683436563811772030917980576286213544862"),
            ("sqrt2", "1.41421356237309504880168872420969807856967187537694807317667974"),
            ("sqrte", "1.64872127070012814684865078831848115184089716324085283946620093"),
            ("sqrtpi", "1.77245385090551602729816748334114518279754945612238712821380779"),
            ("sqrtphi", "1.27201964951406896425242246173749149171560804184009624861664038"),
        ];
        assert_eq!(CONSTANTS.map(|(name, _)| name), go.map(|(name, _)| name));
        for ((name, value), (_, digits)) in CONSTANTS.into_iter().zip(go) {
            assert_eq!(value, digits.parse::<f64>().unwrap(), "{name}");
            assert_eq!(evaluate(name), Ok(value), "{name}");
            assert_eq!(evaluate(&name.to_uppercase()), Ok(value), "{name}");
        }
        assert_eq!(PHI, (1.0 + 5f64.sqrt()) / 2.0);
    }

    #[test]
    fn every_function_is_known_by_its_name_in_any_case() {
        assert_eq!(FUNCTIONS.map(|(name, ..)| name), FUNCTION_NAMES);
        for name in FUNCTION_NAMES {
            let lower = evaluate(&format!("{name}(0.5)")).unwrap();
            assert_eq!(evaluate(&format!("{}(0.5)", name.to_uppercase())), Ok(lower), "{name}");
        }
    }

    #[test]
    fn refuses_bad_input_clearly() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("1/0", "division by zero"),
            ("1/(2-2)", "division by zero"),
            ("0^-1", "division by zero"),
            ("2+", "unexpected end of formula at position 3; expected a number, a name or '('"),
            ("+", "unexpected end of formula at position 2; expected a number, a name or '('"),
            ("(1+2", "expected ')'"),
            ("1+2)", "unexpected ')' at position 4"),
            ("1..2", "unexpected '.' at position 3"),
            ("10^400", "too large"),
            ("(-8)^0.5", "undefined"),
            ("2 3", "unexpected '3'"),
            ("2pi", "unexpected 'p' at position 2; expected an operator or the end"),
            ("1,2", "unexpected ',' at position 2"),
            // Unknown names name themselves and list the known ones.
            (
                "2*x",
                "unknown name 'x' at position 3; expected a number, a constant (e, pi, phi, sqrt2, sqrte, \
                 sqrtpi, sqrtphi) or a function call such as sqrt(2) (sqrt, sin, cos, tan, asin, acos, \
                 atan, ln, abs, ceil, floor, cbrt)",
            ),
            ("Tau", "unknown name 'Tau' at position 1"),
            (
                "log(2)",
                "unknown function 'log' at position 1; the functions are sqrt, sin, cos, tan, asin, acos, \
                 atan, ln, abs, ceil, floor, cbrt",
            ),
            ("1+exp (1)", "unknown function 'exp' at position 3"),
            // Constants are not functions; functions need their parentheses and exactly one argument.
            ("pi(2)", "pi at position 1 is a constant, not a function; expected pi without parentheses"),
            ("2*E (1)", "e at position 3 is a constant, not a function"),
            ("sqrt", "sqrt at position 1 is a function; expected its argument in parentheses, as in sqrt(2)"),
            ("sqrt 16", "sqrt at position 1 is a function"),
            ("2*SIN", "sin at position 3 is a function"),
            ("sqrt()", "sqrt at position 1 takes exactly one argument, as in sqrt(2); found none"),
            ("1 + cos( )", "cos at position 5 takes exactly one argument, as in cos(2); found none"),
            (
                "sqrt(1,2)",
                "sqrt takes exactly one argument, as in sqrt(2); found another after the ',' at position 7",
            ),
            ("abs(1, 2, 3)", "abs takes exactly one argument"),
            ("sqrt(1", "unexpected end of formula at position 7; expected ')'"),
            ("sqrt(1 2)", "unexpected '2' at position 8; expected ')'"),
            // Domain errors: no finite real value, never NaN or infinity.
            ("sqrt(-1)", "sqrt(-1) has no finite real value; sqrt needs x >= 0"),
            ("sqrt(-0.25)", "sqrt(-0.25) has no finite real value"),
            ("sqrt(-10^300)", "sqrt(-1e300) has no finite real value"),
            ("ln(0)", "ln(0) has no finite real value; ln needs x > 0"),
            ("ln(-0)", "ln(0) has no finite real value"),
            ("ln(-1)", "ln(-1) has no finite real value; ln needs x > 0"),
            ("ln(10^-400)", "ln(0) has no finite real value"),
            ("asin(2)", "asin(2) has no finite real value; asin needs -1 <= x <= 1"),
            ("acos(-1.5)", "acos(-1.5) has no finite real value; acos needs -1 <= x <= 1"),
            ("1 + ln(sqrt(-4))", "sqrt(-4) has no finite real value"),
            // Every intermediate result is finite, arguments included.
            ("sqrt(1/0)", "division by zero"),
            ("sqrt(10^400)", "too large"),
            ("atan(10^400)", "too large"),
            ("e^1000", "too large"),
            ("abs(-(10^308)*10)", "too large"),
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
        assert_eq!(evaluate(&"+".repeat(200)), Err(FormulaError::TooDeep));
        assert_eq!(evaluate(&"+-".repeat(100)), Err(FormulaError::TooDeep));
        assert_eq!(evaluate("2^".repeat(100).trim_end_matches('^')), Err(FormulaError::TooDeep));
        let long = "1+".repeat(200) + "1";
        assert_eq!(evaluate(&long), Err(FormulaError::TooLong { length: 401 }));
        assert!(evaluate("9".repeat(250).as_str()).is_ok(), "a long number is just large");
        assert!(evaluate("é").unwrap_err().to_string().contains("not ASCII"));
        assert!(evaluate("sqrt(é)").unwrap_err().to_string().contains("not ASCII"));
        let nested_ok = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(evaluate(&nested_ok), Ok(1.0));

        // Function calls are nesting levels too, alone or mixed with parentheses and signs.
        let calls_ok = format!("{}1{}", "abs(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(calls_ok.len() <= MAX_LENGTH);
        assert_eq!(evaluate(&calls_ok), Ok(1.0));
        let calls = format!("{}1{}", "abs(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(evaluate(&calls), Err(FormulaError::TooDeep));
        assert_eq!(evaluate(&"sqrt(".repeat(50)), Err(FormulaError::TooDeep));
        assert_eq!(evaluate(&"-ln((".repeat(40)), Err(FormulaError::TooDeep));
        let long_name = "x".repeat(MAX_LENGTH);
        let error = evaluate(&long_name).unwrap_err();
        assert_eq!(error, FormulaError::UnknownName { name: long_name, at: 1 });
        assert_eq!(
            evaluate(&"ab".repeat(100)),
            Err(FormulaError::UnknownName { name: "ab".repeat(100), at: 1 })
        );
    }
}
