//! The rate model: what a workload's windows of activity look like (see
//! [`profiles::rates`]), learned from its training windows, and the check that flags a window
//! far outside them.
//!
//! Each window's counts become a point: `ln(1 + count)` per feature, standardised by the
//! training mean and spread (the spread floored at [`MIN_SCALE`], so a feature that never
//! varied is not infinitely strict). K-means (linfa) groups the training points into up to
//! [`MAX_CLUSTERS`] shapes of normal activity (busy, quiet, maintenance); the threshold is the
//! largest training distance to its nearest centre, times [`THRESHOLD_FACTOR`], plus
//! [`THRESHOLD_MARGIN`].
//!
//! A window is anomalous when both hold:
//! 1. it is farther than the threshold from every centre (its shape is unlike any learned
//!    window), and
//! 2. at least one feature is above what learning ever saw, by a factor of
//!    [`EXCESS_FACTOR`] and at least [`EXCESS_MIN`] more (so the alert can say what rose and
//!    by how much, and quieter-than-usual windows never alert).

use linfa::{DatasetBase, traits::Fit};
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use profiles::{
    Event,
    rates::{Counts, FEATURES, Feature, RateSamples, Window, WindowCounter},
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    alert::{Alert, Reason},
    score::NOVELTY,
};

/// The rule name of rate reasons.
pub const RATE: &str = "rate";
/// Training windows needed before the model judges anything.
pub const MIN_WINDOWS: usize = 12;
/// Largest number of clusters.
pub const MAX_CLUSTERS: usize = 4;
/// Smallest spread of a standardised feature, in `ln(1 + count)` units.
pub const MIN_SCALE: f64 = 0.5;
/// The threshold is the largest training distance times this, plus [`THRESHOLD_MARGIN`].
pub const THRESHOLD_FACTOR: f64 = 1.25;
/// See [`THRESHOLD_FACTOR`].
pub const THRESHOLD_MARGIN: f64 = 1.0;
/// A feature counts as risen when above its learned maximum times this ...
pub const EXCESS_FACTOR: f64 = 2.0;
/// ... and by at least this many.
pub const EXCESS_MIN: u32 = 5;
/// Weight of a rate reason whose feature doubled; each further doubling adds
/// [`RATE_WEIGHT_STEP`], up to [`RATE_WEIGHT_MAX`] (medium).
pub const RATE_WEIGHT: f64 = 0.3;
/// See [`RATE_WEIGHT`].
pub const RATE_WEIGHT_STEP: f64 = 0.05;
/// See [`RATE_WEIGHT`].
pub const RATE_WEIGHT_MAX: f64 = 0.65;

/// Why no model could be fitted.
#[derive(Debug, Error, PartialEq)]
pub enum RateError {
    /// Too few training windows.
    #[error("{have} training windows, the rate model needs {need}")]
    TooFewWindows {
        /// Windows available.
        have: usize,
        /// Windows needed ([`MIN_WINDOWS`]).
        need: usize,
    },
    /// K-means failed.
    #[error("k-means: {0}")]
    KMeans(String),
}

/// A learned model of a workload's windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateModel {
    /// Window length, nanoseconds.
    pub window_ns: u64,
    /// Training windows the model was fitted on.
    pub windows: usize,
    /// Windows seen while learning (the training windows are a sample of them).
    pub seen: u64,
    /// Mean of `ln(1 + count)` per feature.
    pub mean: Vec<f64>,
    /// Spread per feature (standard deviation, at least [`MIN_SCALE`]).
    pub scale: Vec<f64>,
    /// Cluster centres, in standardised units.
    pub centroids: Vec<Vec<f64>>,
    /// Distance beyond which a window's shape is unlike the learned ones.
    pub threshold: f64,
    /// Largest count of each feature in training.
    pub max: Counts,
}

/// A feature of a window above what learning saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Excess {
    /// The feature.
    pub feature: Feature,
    /// Its count in the window.
    pub observed: u32,
    /// Its largest count while learning.
    pub learned_max: u32,
}

impl Excess {
    /// How many times the learned maximum (the maximum taken as at least 1).
    pub fn ratio(&self) -> f64 {
        f64::from(self.observed) / f64::from(self.learned_max.max(1))
    }
}

/// An anomalous window, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct RateAnomaly {
    /// Distance of the window from the nearest learned centre.
    pub distance: f64,
    /// The model's threshold.
    pub threshold: f64,
    /// Risen features, largest ratio first.
    pub excess: Vec<Excess>,
}

impl RateModel {
    /// Fits a model to `samples`.
    pub fn fit(samples: &RateSamples) -> Result<RateModel, RateError> {
        let n = samples.samples.len();
        if n < MIN_WINDOWS {
            return Err(RateError::TooFewWindows {
                have: n,
                need: MIN_WINDOWS,
            });
        }
        let logs = Array2::from_shape_fn((n, FEATURES), |(i, j)| {
            f64::from(samples.samples[i][j]).ln_1p()
        });
        let mean = logs.mean_axis(Axis(0)).expect("n > 0");
        let scale = logs.std_axis(Axis(0), 0.0).mapv(|s| s.max(MIN_SCALE));
        let points = (&logs - &mean) / &scale;
        let mut distinct: Vec<&Counts> = samples.samples.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let k = (n / MIN_WINDOWS).clamp(1, MAX_CLUSTERS).min(distinct.len());
        let kmeans = KMeans::params(k)
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&DatasetBase::from(points.clone()))
            .map_err(|e| RateError::KMeans(e.to_string()))?;
        let centroids = kmeans.centroids().clone();
        let farthest = points
            .rows()
            .into_iter()
            .map(|p| nearest(&centroids, p))
            .fold(0.0, f64::max);
        let mut max = [0; FEATURES];
        for counts in &samples.samples {
            for (m, c) in max.iter_mut().zip(counts) {
                *m = (*m).max(*c);
            }
        }
        Ok(RateModel {
            window_ns: samples.window_ns,
            windows: n,
            seen: samples.seen,
            mean: mean.to_vec(),
            scale: scale.to_vec(),
            centroids: centroids.rows().into_iter().map(|r| r.to_vec()).collect(),
            threshold: farthest * THRESHOLD_FACTOR + THRESHOLD_MARGIN,
            max,
        })
    }

    /// Distance of a window's counts from the nearest learned centre.
    pub fn distance(&self, counts: &Counts) -> f64 {
        let point = Array1::from_shape_fn(FEATURES, |j| {
            (f64::from(counts[j]).ln_1p() - self.mean[j]) / self.scale[j]
        });
        let centroids = Array2::from_shape_fn((self.centroids.len(), FEATURES), |(i, j)| {
            self.centroids[i][j]
        });
        nearest(&centroids, point.view())
    }

    /// The window's anomaly, if it is one (see the module docs).
    pub fn check(&self, counts: &Counts) -> Option<RateAnomaly> {
        let mut excess: Vec<Excess> = Feature::ALL
            .iter()
            .map(|&f| Excess {
                feature: f,
                observed: counts[f.index()],
                learned_max: self.max[f.index()],
            })
            .filter(|e| {
                f64::from(e.observed) > f64::from(e.learned_max) * EXCESS_FACTOR
                    && e.observed >= e.learned_max.saturating_add(EXCESS_MIN)
            })
            .collect();
        if excess.is_empty() {
            return None;
        }
        let distance = self.distance(counts);
        if distance <= self.threshold {
            return None;
        }
        excess.sort_by(|a, b| b.ratio().total_cmp(&a.ratio()));
        Some(RateAnomaly {
            distance,
            threshold: self.threshold,
            excess,
        })
    }

    /// The alert for `window` when it is anomalous: one reason per risen feature, about the
    /// window's first event of the most risen feature (or of any feature).
    pub fn alert(&self, workload: &str, window: &Window) -> Option<Alert> {
        let anomaly = self.check(&window.counts)?;
        let event: &Event = anomaly
            .excess
            .iter()
            .find_map(|e| window.examples[e.feature.index()].as_ref())
            .or_else(|| window.examples.iter().flatten().next())?;
        if event.workload.id != workload {
            return None;
        }
        let secs = window.len_ns as f64 / 1e9;
        let reasons: Vec<Reason> = anomaly
            .excess
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut text = format!(
                    "{} {} in {secs:.0} s; at most {} in any of the {} windows learned",
                    e.observed,
                    e.feature.counts_what(),
                    e.learned_max,
                    self.windows
                );
                if i == 0 {
                    text.push_str(&format!(
                        " (the window lies {:.1} from the nearest of {} learned activity shapes, \
                         threshold {:.1})",
                        anomaly.distance,
                        self.centroids.len(),
                        anomaly.threshold
                    ));
                }
                let weight = (RATE_WEIGHT + RATE_WEIGHT_STEP * (e.ratio() / EXCESS_FACTOR).log2())
                    .clamp(RATE_WEIGHT, RATE_WEIGHT_MAX);
                Reason::new(RATE, weight, text, None)
            })
            .collect();
        let names: Vec<&str> = anomaly.excess.iter().map(|e| e.feature.name()).collect();
        Some(Alert::new(
            event,
            &format!("rate:{}", names.join(",")),
            reasons,
        ))
    }
}

/// One workload's windows while it is scored: counts each scored event and checks each
/// window it closes against the model.
#[derive(Debug, Clone)]
pub struct RateWatch {
    counter: WindowCounter,
}

impl RateWatch {
    /// Windows of `window_ns` (the model's).
    pub fn new(window_ns: u64) -> RateWatch {
        RateWatch {
            counter: WindowCounter::new(window_ns, true),
        }
    }

    /// Counts `event`, whose scoring raised `alert` (a novelty counts as a new entity); returns
    /// the rate alert of the window it closed, if that window is anomalous under `model`.
    pub fn observe(
        &mut self,
        model: Option<&RateModel>,
        event: &Event,
        alert: Option<&Alert>,
    ) -> Option<Alert> {
        let novel = alert.is_some_and(|a| a.reasons.iter().any(|r| r.rule == NOVELTY));
        let closed = self.counter.observe(event, novel)?;
        model?.alert(&event.workload.id, &closed)
    }

    /// Closes the open window when `now_ns` is past its end (a workload gone quiet); returns
    /// its rate alert, if anomalous under `model`.
    pub fn tick(&mut self, model: Option<&RateModel>, now_ns: u64) -> Option<Alert> {
        let closed = self.counter.close_due(now_ns)?;
        let workload = closed.examples.iter().flatten().next()?.workload.id.clone();
        model?.alert(&workload, &closed)
    }
}

/// Euclidean distance from `point` to the nearest row of `centroids`.
fn nearest(centroids: &Array2<f64>, point: ArrayView1<f64>) -> f64 {
    centroids
        .rows()
        .into_iter()
        .map(|c| (&c - &point).mapv(|d| d * d).sum().sqrt())
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use profiles::rates::DEFAULT_WINDOW_NS;

    use super::*;
    use crate::{alert::Severity, test_support as ts};

    const NGINX: &str = "/system.slice/nginx.service";

    /// Samples of a steady service: 20..40 opens, 2..5 connects to 1..2 destinations, now
    /// and then an exec, and some quiet windows.
    fn steady(windows: u32) -> RateSamples {
        let mut s = RateSamples::new(DEFAULT_WINDOW_NS);
        for i in 0..windows {
            let busy = i % 7 != 0;
            let counts = if busy {
                [
                    i % 3 / 2,
                    20 + i % 21,
                    2 + i % 4,
                    0,
                    0,
                    i % 5 / 4,
                    1 + i % 2,
                ]
            } else {
                [0, 1 + i % 3, 0, 0, 0, 0, 0]
            };
            s.add(counts);
        }
        s
    }

    #[test]
    fn too_few_windows_give_no_model() {
        assert_eq!(
            RateModel::fit(&steady(5)),
            Err(RateError::TooFewWindows { have: 5, need: 12 })
        );
    }

    #[test]
    fn learned_windows_and_their_like_are_normal() {
        let samples = steady(300);
        let model = RateModel::fit(&samples).unwrap();
        assert!(model.centroids.len() > 1, "a busy and a quiet shape");
        for counts in &samples.samples {
            assert_eq!(model.check(counts), None, "{counts:?}");
        }
        // Busier than ever, but not twice the maximum: still normal.
        assert_eq!(model.check(&[1, 70, 8, 0, 0, 1, 3]), None);
        // Quieter than ever is never an anomaly.
        assert_eq!(model.check(&[0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn a_connect_fan_out_is_flagged_and_explained() {
        let model = RateModel::fit(&steady(300)).unwrap();
        let anomaly = model
            .check(&[0, 25, 250, 0, 0, 0, 240])
            .expect("a port scan");
        assert_eq!(anomaly.excess[0].feature, Feature::FanOut);
        assert_eq!(anomaly.excess[0].learned_max, 2);
        assert_eq!(anomaly.excess[1].feature, Feature::Connects);
        assert!(anomaly.distance > anomaly.threshold);

        // The alert, from live windows.
        let mut counter = WindowCounter::new(DEFAULT_WINDOW_NS, true);
        let base = ts::connect("127.0.0.1", 1).ts_ns;
        for port in 1..=200u16 {
            let mut e = ts::connect("127.0.0.1", port);
            e.ts_ns = base + u64::from(port) * 1_000_000;
            assert!(counter.observe(&e, true).is_none());
        }
        let window = counter
            .close_due(base + 1_000_000 + DEFAULT_WINDOW_NS)
            .unwrap();
        let alert = model.alert(NGINX, &window).expect("alert");
        assert_eq!(alert.reasons[0].rule, RATE);
        let texts: Vec<&str> = alert.reasons.iter().map(|r| r.text.as_str()).collect();
        assert!(
            texts[0].starts_with("200 events with entries new to the profile in 10 s; at most 1"),
            "{texts:?}"
        );
        assert!(
            texts[0].contains("from the nearest of"),
            "the strongest reason places the window: {texts:?}"
        );
        assert!(
            texts.contains(
                &"200 distinct connection destinations in 10 s; at most 2 in any of the 300 windows learned"
            ),
            "{texts:?}"
        );
        assert!(alert.severity >= Severity::Medium, "{:?}", alert.severity);
        assert_eq!(alert.event.ts_ns, base + 1_000_000, "the first connect");
        assert!(alert.key.len() > 8);
        // The same anomaly in a later window has the same key: repeats aggregate.
        let mut counter2 = WindowCounter::new(DEFAULT_WINDOW_NS, true);
        for port in 1..=150u16 {
            let mut e = ts::connect("127.0.0.1", port);
            e.ts_ns = base + 60_000_000_000 + u64::from(port);
            counter2.observe(&e, true);
        }
        let w2 = counter2.close_due(u64::MAX).unwrap();
        assert_eq!(model.alert(NGINX, &w2).unwrap().key, alert.key);
    }

    #[test]
    fn a_burst_of_execs_is_flagged() {
        let model = RateModel::fit(&steady(300)).unwrap();
        let anomaly = model.check(&[40, 60, 3, 0, 0, 40, 1]).expect("exec burst");
        let names: Vec<Feature> = anomaly.excess.iter().map(|e| e.feature).collect();
        assert_eq!(names, vec![Feature::Execs, Feature::NewEntities]);
    }
}
