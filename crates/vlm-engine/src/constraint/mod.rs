//! Structured outputs: a request's output format (a JSON schema, a regular expression, a
//! list of choices, a Lark grammar) compiled with llguidance into a constraint that each of
//! its sequences obeys token by token.

mod compiler;
mod format;
mod grammar;
mod message;

pub use compiler::GrammarCompiler;
pub use format::OutputFormat;
pub(crate) use grammar::Constraint;
pub use grammar::Grammar;
