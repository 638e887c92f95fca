//! The deadline policy's settings by name (`btvod experiment --deadline KEY=VALUE`), so an
//! experiment can vary one knob without a rebuild.

use std::time::Duration;

use crate::policy::picker::{AheadOrder, DeadlineConfig, UnmeasuredRate};

/// The settings [`set_deadline`] knows.
pub const SETTINGS: &str = "urgent_window, urgent_min_pieces, safety_margin, urgent_share, \
     crowd_size, at_risk_holders, ahead_order, ahead_horizon, max_requesters, race_alone, \
     duplicate_gain, cancel_late_after, trust_new_peers, opening_blocks, lateness_margin, \
     unmeasured_rate, unmeasured_rtt, make_room_for_urgent";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeadlineSettingError {
    #[error("`{0}`: expected KEY=VALUE")]
    NotKeyValue(String),
    #[error("unknown deadline setting `{0}` ({SETTINGS})")]
    Unknown(String),
    #[error("{key}: `{value}` is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
}

fn bad_value(key: &str, value: &str, expected: &'static str) -> DeadlineSettingError {
    DeadlineSettingError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// Sets one `DeadlineConfig` field from `key=value` (seconds for durations; `none` turns
/// `cancel_late_after`, `ahead_horizon` or `lateness_margin` off; `unmeasured_rate` in bytes
/// per second, or as a share of the playback rate with a trailing `R`, as in `0.125R`), for
/// experiments with the policy's settings.
pub fn set_deadline(
    config: &mut DeadlineConfig,
    setting: &str,
) -> Result<(), DeadlineSettingError> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| DeadlineSettingError::NotKeyValue(setting.to_string()))?;
    let (key, value) = (key.trim(), value.trim());
    let num = || {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad_value(key, value, "a number zero or more"))
    };
    let secs = || num().map(Duration::from_secs_f64);
    let flag = || match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_value(key, value, "true or false")),
    };
    match key {
        "urgent_window" => config.urgent_window = secs()?,
        "urgent_min_pieces" => config.urgent_min_pieces = num()? as u32,
        "safety_margin" => config.safety_margin = secs()?,
        "urgent_share" => config.urgent_share = num()?,
        "crowd_size" => config.crowd_size = num()? as usize,
        "at_risk_holders" => config.at_risk_holders = num()? as u32,
        "ahead_order" if value == "deadline" => config.ahead_order = AheadOrder::Deadline,
        "ahead_order" if value == "rarest" => config.ahead_order = AheadOrder::Rarest,
        "ahead_order" => return Err(bad_value(key, value, "deadline or rarest")),
        "ahead_horizon" if value == "none" => config.ahead_horizon = None,
        "ahead_horizon" => config.ahead_horizon = Some(secs()?),
        "max_requesters" => config.max_requesters = num()? as usize,
        "race_alone" => config.race_alone = flag()?,
        "duplicate_gain" => config.duplicate_gain = secs()?,
        "cancel_late_after" if value == "none" => config.cancel_late_after = None,
        "cancel_late_after" => config.cancel_late_after = Some(secs()?),
        "trust_new_peers" => config.trust_new_peers = flag()?,
        "opening_blocks" => config.opening_blocks = num()? as usize,
        "make_room_for_urgent" => config.make_room_for_urgent = flag()?,
        "lateness_margin" if value == "none" => config.lateness_margin = None,
        "lateness_margin" => config.lateness_margin = Some(num()?),
        "unmeasured_rate" => config.unmeasured_rate = unmeasured_rate(value)?,
        "unmeasured_rtt" => config.unmeasured_rtt = secs()?,
        other => return Err(DeadlineSettingError::Unknown(other.to_string())),
    }
    Ok(())
}

/// `8192` (bytes per second) or `0.125R` (a share of the playback rate).
fn unmeasured_rate(value: &str) -> Result<UnmeasuredRate, DeadlineSettingError> {
    let (number, guess): (_, fn(f64) -> UnmeasuredRate) = match value.strip_suffix('R') {
        Some(share) => (share, UnmeasuredRate::ShareOfPlayback),
        None => (value, UnmeasuredRate::Fixed),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(guess)
        .ok_or_else(|| {
            bad_value(
                "unmeasured_rate",
                value,
                "bytes per second, or a share of the playback rate like 0.125R",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_settings_are_parsed_by_name_and_bad_ones_named() {
        let mut config = DeadlineConfig::default();
        for setting in [
            "crowd_size=3",
            "ahead_horizon=none",
            "trust_new_peers=true",
            "urgent_share = 0.5",
            "unmeasured_rate=0.25R",
        ] {
            set_deadline(&mut config, setting).unwrap();
        }
        assert_eq!(config.crowd_size, 3);
        assert_eq!(config.ahead_horizon, None);
        assert!(config.trust_new_peers);
        assert_eq!(config.urgent_share, 0.5);
        assert_eq!(
            config.unmeasured_rate,
            UnmeasuredRate::ShareOfPlayback(0.25)
        );
        set_deadline(&mut config, "unmeasured_rate=8192").unwrap();
        assert_eq!(config.unmeasured_rate, UnmeasuredRate::Fixed(8192.0));
        for bad in [
            "unmeasured_rate=0R",
            "unmeasured_rate=R",
            "unmeasured_rate=-5",
        ] {
            assert!(set_deadline(&mut config, bad).is_err(), "{bad}");
        }
        let unknown = set_deadline(&mut config, "crowd=3")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("`crowd`") && unknown.contains("crowd_size"),
            "{unknown}"
        );
        let bad = set_deadline(&mut config, "crowd_size=-1")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("crowd_size"), "{bad}");
        assert!(set_deadline(&mut config, "crowd_size").is_err());
    }
}
