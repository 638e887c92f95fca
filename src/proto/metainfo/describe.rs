//! The human-readable summary of a torrent printed by `btvod info`.

use std::fmt::Write;

use super::Metainfo;
use crate::units::human_bytes;

pub(super) fn describe(m: &Metainfo) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_description(m, &mut out);
    out
}

fn write_description(m: &Metainfo, out: &mut String) -> std::fmt::Result {
    let g = &m.geometry;
    writeln!(out, "Name:         {}", m.name)?;
    writeln!(out, "Info-hash:    {}", m.info_hash)?;
    writeln!(
        out,
        "Total size:   {} bytes ({})",
        g.total_len(),
        human_bytes(g.total_len())
    )?;
    writeln!(
        out,
        "Pieces:       {} x {} ({}), last piece {}",
        g.piece_count(),
        g.piece_len(),
        human_bytes(u64::from(g.piece_len())),
        human_bytes(u64::from(g.piece_size(g.last_piece())))
    )?;
    writeln!(
        out,
        "Private:      {}",
        if m.private { "yes (no DHT/PEX)" } else { "no" }
    )?;
    if let Some(comment) = &m.comment {
        writeln!(out, "Comment:      {comment}")?;
    }
    if let Some(created_by) = &m.created_by {
        writeln!(out, "Created by:   {created_by}")?;
    }
    if let Some(date) = m.creation_date {
        writeln!(out, "Created on:   {} (Unix time {date})", utc_date(date))?;
    }

    let kind = if m.is_single_file {
        "single file"
    } else {
        "multi-file"
    };
    writeln!(out, "Files ({}, {kind}):", m.files.len())?;
    for (i, file) in m.files.iter().enumerate() {
        writeln!(
            out,
            "  {}  {} bytes ({})",
            m.relative_path(i).display(),
            file.length,
            human_bytes(file.length)
        )?;
    }

    let tiers = m.tracker_tiers();
    if tiers.is_empty() {
        writeln!(out, "Trackers:     none")?;
    } else {
        writeln!(out, "Trackers:")?;
        for (i, tier) in tiers.iter().enumerate() {
            writeln!(out, "  tier {}: {}", i + 1, tier.join(", "))?;
        }
    }
    if !m.url_list.is_empty() {
        writeln!(out, "Web seeds:")?;
        for url in &m.url_list {
            writeln!(out, "  {url}")?;
        }
    }
    for warning in &m.warnings {
        writeln!(out, "Warning:      {warning}")?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (civil-from-days, proleptic Gregorian).
fn utc_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}
