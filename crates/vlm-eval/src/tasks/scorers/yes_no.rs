//! POPE's answer reading (`pope_process_results`): the whole response, lowered and
//! stripped, must be exactly `yes` or `no`; `Yes.` is neither.

use crate::python::{py_lower, py_strip};

/// The prediction POPE compares with the ground truth: `response.lower().strip()`.
pub fn pope_prediction(response: &str) -> String {
    py_strip(&py_lower(response)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_case_and_surrounding_space_are_forgiven() {
        assert_eq!(pope_prediction(" YES \n"), "yes");
        assert_eq!(pope_prediction("Yes."), "yes.");
        assert_eq!(pope_prediction("No, there is not"), "no, there is not");
    }
}
