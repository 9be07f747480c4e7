//! Python and numpy, emulated where lmms-eval's scores depend on their exact behaviour:
//! `random`'s Mersenne Twister stream, `str` whitespace and case rules, `statistics.mean`, `ast.literal_eval` of string
//! lists, `float` parsing, `round` and `str`, and numpy's pairwise float sums. This is the
//! part a reader must trust bit for bit: every function here reproduces its Python
//! counterpart exactly (tests pin values printed by python3), and nothing here knows about
//! tasks, datasets or models.

mod float;
mod literal;
mod numpy;
mod random;
mod statistics;
mod str;

pub use self::float::{py_decimal_value, py_float, py_float_repr, py_round};
pub use self::literal::parse_string_list;
pub use self::numpy::stderr_clt;
pub use self::random::PythonRandom;
pub use self::statistics::{mean_stderr, py_mean, py_statistics_mean};
pub use self::str::{
    py_capitalize, py_isspace, py_isupper, py_lower, py_split_whitespace, py_strip, py_upper,
};
