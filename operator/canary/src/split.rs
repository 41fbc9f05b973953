//! How many pods each side runs for a stage's weight. With a route the route carries the exact weight. By replica
//! ratio the pod counts are the weight, so they are chosen to come as close to it as whole pods allow, never leaving
//! fewer pods serving than the primary's full size: the primary gives up pods as the canary grows (as Argo Rollouts
//! does with replica ratios), down to none at 100 %. When an HPA owns the primary's size it keeps every pod (an
//! HPA would scale a shrunk primary straight back), and the canary is capped at the primary's size: at most 50 %.

use serde::Serialize;

/// Pods per side for a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    pub primary: u32,
    pub canary: u32,
    /// Share of traffic the canary gets, in percent.
    pub achieved_weight: u32,
}

/// How the split may move pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An HTTPRoute carries the weight: the primary keeps its pods, the canary gets `ceil(total * w / 100)`.
    Routed,
    /// Replica ratio; the primary may shrink.
    Ratio,
    /// Replica ratio with an HPA owning the primary's size: the primary keeps its pods.
    RatioFixedPrimary,
}

/// The mode for a run: with a route, or by replica ratio with or without an HPA owning the primary's size.
pub fn mode(routed: bool, autoscaled: bool) -> Mode {
    match (routed, autoscaled) {
        (true, _) => Mode::Routed,
        (false, false) => Mode::Ratio,
        (false, true) => Mode::RatioFixedPrimary,
    }
}

/// Pods for `weight`% canary traffic with `total` the primary's full size (set by people or its HPA).
pub fn split(total: u32, weight: u32, mode: Mode) -> Split {
    let total = total.max(1);
    let w = weight.min(100);
    if w == 0 {
        return Split { primary: total, canary: 0, achieved_weight: 0 };
    }
    match mode {
        Mode::Routed => {
            let canary = (u64::from(total) * u64::from(w)).div_ceil(100).max(1) as u32;
            Split { primary: total, canary, achieved_weight: w }
        }
        Mode::Ratio => closest(total, w),
        Mode::RatioFixedPrimary => fixed_primary(total, w),
    }
}

/// The primary keeps `total`; the canary gets `round(total * w / (100 - w))`, within [1, total].
fn fixed_primary(total: u32, w: u32) -> Split {
    let t = u64::from(total);
    let w = u64::from(w);
    let canary = if w >= 100 { t } else { ((t * w * 2 + (100 - w)) / (2 * (100 - w))).clamp(1, t) };
    Split { primary: total, canary: canary as u32, achieved_weight: share(total, canary as u32) }
}

/// The pods `(primary, canary)` whose canary share is closest to `w`, with `1 <= canary <= total`,
/// `primary <= total` and `primary + canary >= total` (capacity never below the full size); ties go to fewer pods.
/// For each canary count the best primary count is next to `canary * (100 - w) / w`: O(total).
fn closest(total: u32, w: u32) -> Split {
    let mut best: Option<(u64, u32, u32)> = None;
    for canary in 1..=total {
        let lowest = total - canary;
        let ideal = u64::from(canary) * u64::from(100 - w) / u64::from(w);
        for primary in [ideal, ideal + 1] {
            let primary = (primary.min(u64::from(total)) as u32).max(lowest);
            // |100 c / (p + c) - w| scaled by (p + c) * w to stay in integers; compared as fractions below.
            let candidate = (error(primary, canary, w), primary, canary);
            if best.is_none_or(|b| better(candidate, b)) {
                best = Some(candidate);
            }
        }
    }
    let (_, primary, canary) = best.unwrap_or((0, total, 1));
    Split { primary, canary, achieved_weight: share(primary, canary) }
}

/// `|100 c - w (p + c)| * SCALE / (p + c)`: the distance from `w` in millionths of a percent.
fn error(primary: u32, canary: u32, w: u32) -> u64 {
    let pods = u64::from(primary) + u64::from(canary);
    (100 * u64::from(canary)).abs_diff(u64::from(w) * pods) * 1_000_000 / pods
}

fn better(a: (u64, u32, u32), b: (u64, u32, u32)) -> bool {
    (a.0, a.1 + a.2, a.2) < (b.0, b.1 + b.2, b.2)
}

/// `round(100 * canary / (primary + canary))`.
pub fn share(primary: u32, canary: u32) -> u32 {
    let (p, c) = (u64::from(primary), u64::from(canary));
    if p + c == 0 { 0 } else { ((c * 200 + (p + c)) / (2 * (p + c))) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ratio_reaches_every_weight_by_shrinking_the_primary() {
        let got: Vec<(u32, u32, u32)> = [10, 25, 50, 100]
            .iter()
            .map(|&w| split(9, w, Mode::Ratio))
            .map(|s| (s.primary, s.canary, s.achieved_weight))
            .collect();
        assert_eq!(got, [(9, 1, 10), (9, 3, 25), (5, 5, 50), (0, 9, 100)]);
        assert_eq!(split(3, 10, Mode::Ratio), Split { primary: 3, canary: 1, achieved_weight: 25 });
        assert_eq!(split(1, 50, Mode::Ratio), Split { primary: 1, canary: 1, achieved_weight: 50 });
        assert_eq!(split(1, 100, Mode::Ratio), Split { primary: 0, canary: 1, achieved_weight: 100 });
        assert_eq!(split(4, 0, Mode::Ratio), Split { primary: 4, canary: 0, achieved_weight: 0 });
    }

    #[test]
    fn with_an_hpa_the_primary_keeps_its_pods_and_the_canary_caps_at_half() {
        let cases = [(10, 1, 10), (25, 3, 25), (50, 9, 50), (100, 9, 50)];
        for (weight, canary, achieved) in cases {
            let expected = Split { primary: 9, canary, achieved_weight: achieved };
            assert_eq!(split(9, weight, Mode::RatioFixedPrimary), expected, "{weight}%");
        }
    }

    #[test]
    fn routed_split_keeps_the_exact_weight() {
        assert_eq!(split(4, 10, Mode::Routed), Split { primary: 4, canary: 1, achieved_weight: 10 });
        assert_eq!(split(4, 100, Mode::Routed), Split { primary: 4, canary: 4, achieved_weight: 100 });
    }

    /// Every size up to 60 pods and every weight: capacity never drops, nothing grows past the full size, the weight
    /// is as close as any allowed pod counts give (checked by brute force), and 100 % is exact.
    #[test]
    fn property_closest_weight_without_losing_capacity() {
        for total in 1..=60u32 {
            for w in 1..=100u32 {
                let s = split(total, w, Mode::Ratio);
                assert!(s.primary + s.canary >= total, "{total} pods {w}%: {s:?} lost capacity");
                assert!(s.primary <= total && (1..=total).contains(&s.canary), "{total} pods {w}%: {s:?}");
                let best = (1..=total)
                    .flat_map(|c| (total - c..=total).map(move |p| error(p, c, w)))
                    .min()
                    .unwrap_or(u64::MAX);
                assert_eq!(error(s.primary, s.canary, w), best, "{total} pods {w}%: {s:?} is not the closest");
                let old = split(total, w, Mode::RatioFixedPrimary);
                assert!(error(s.primary, s.canary, w) <= error(old.primary, old.canary, w), "{total} {w}%");
                if w == 100 {
                    assert_eq!((s.primary, s.canary, s.achieved_weight), (0, total, 100));
                }
            }
        }
    }
}
