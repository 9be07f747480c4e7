//! Metric aggregation as lmms-eval computes it: its registered `mean` (a running Python
//! sum over the items in document order, divided by their count) with `mean_stderr`, and
//! POPE's own aggregations over predictions and ground truths.

use super::spec::Aggregation;
use crate::python::{mean_stderr, py_mean};

/// One sample's part in a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub score: f64,
    /// The yes/no scorer's prediction and ground truth (POPE's aggregations read them).
    pub prediction: String,
    pub ground_truth: String,
}

/// `a / b`, or 0 where `b` is 0 (POPE's guards).
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn precision(items: &[Item]) -> f64 {
    let yes = |s: &str| s == "yes";
    let tp = items
        .iter()
        .filter(|i| yes(&i.ground_truth) && yes(&i.prediction))
        .count();
    let fp = items
        .iter()
        .filter(|i| i.ground_truth == "no" && yes(&i.prediction))
        .count();
    ratio(tp, tp + fp)
}

fn recall(items: &[Item]) -> f64 {
    let tp = items
        .iter()
        .filter(|i| i.ground_truth == "yes" && i.prediction == "yes")
        .count();
    let fneg = items
        .iter()
        .filter(|i| i.ground_truth == "yes" && i.prediction == "no")
        .count();
    ratio(tp, tp + fneg)
}

/// The metric's value and its `_stderr` (`None`: "N/A").
pub fn aggregate(aggregation: Aggregation, items: &[Item]) -> (f64, Option<f64>) {
    let scores: Vec<f64> = items.iter().map(|i| i.score).collect();
    match aggregation {
        Aggregation::Mean => (py_mean(&scores), mean_stderr(&scores)),
        Aggregation::Accuracy => (py_mean(&scores), None),
        Aggregation::Precision => (precision(items), None),
        Aggregation::Recall => (recall(items), None),
        Aggregation::F1 => {
            let (p, r) = (precision(items), recall(items));
            let f1 = if p + r > 0.0 {
                2.0 * (p * r) / (p + r)
            } else {
                0.0
            };
            (f1, None)
        }
        Aggregation::YesRatio => {
            let yes = items.iter().filter(|i| i.ground_truth == "yes").count();
            let no = items.iter().filter(|i| i.ground_truth == "no").count();
            (ratio(yes, yes + no), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(score: f64, prediction: &str, ground_truth: &str) -> Item {
        Item {
            score,
            prediction: prediction.into(),
            ground_truth: ground_truth.into(),
        }
    }

    #[test]
    fn pope_counts_only_clean_yes_and_no() {
        let items = [
            item(1.0, "yes", "yes"),
            item(0.0, "yes", "no"),
            item(0.0, "yes.", "yes"),
            item(0.0, "no", "yes"),
            item(1.0, "no", "no"),
        ];
        assert_eq!(aggregate(Aggregation::Precision, &items), (0.5, None));
        assert_eq!(aggregate(Aggregation::Recall, &items), (0.5, None));
        assert_eq!(aggregate(Aggregation::F1, &items).0, 0.5);
        assert_eq!(aggregate(Aggregation::YesRatio, &items).0, 0.6);
        assert_eq!(aggregate(Aggregation::Accuracy, &items), (0.4, None));
        let (mean, stderr) = aggregate(Aggregation::Mean, &items);
        assert_eq!(mean, 0.4);
        // math.sqrt(sum((x - 0.4) ** 2 for x in s) / 4) / math.sqrt(5) in python3.
        assert_eq!(stderr, Some(0.24494897427831783));
        // A case where `** 2` (glibc pow) and `x * x` differ in the last bit.
        let vqa: Vec<Item> = [0.6, 0.9, 0.9, 0.3]
            .iter()
            .map(|&s| item(s, "", ""))
            .collect();
        assert_eq!(
            aggregate(Aggregation::Mean, &vqa).1,
            Some(0.1436140661634507)
        );
    }
}
