//! Text movies, as the course's Nutella exercise plays them: frames of text separated by a
//! delimiter line (`end` by default), or the asciimation format (a count line, how many
//! 1/15 s ticks the frame stays, then a fixed number of picture lines). Frames are read from
//! whatever prefix of the file has arrived: a frame counts once its end is there (its
//! delimiter, its last line, or the end of a complete file), with the byte range it came from,
//! so that a player can say when those bytes are due.

/// How the file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MovieFormat {
    /// Frames end at a line equal to the delimiter; each is shown for 1/fps s.
    Nutella { delimiter: String },
    /// A count line, then `frame_lines` lines of picture.
    Asciimation { frame_lines: usize },
}

/// One frame: its text (lines joined with `\n`), how many time units it stays (1 for
/// Nutella; ticks of 1/15 s for asciimation), and the bytes of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub text: String,
    pub units: u32,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MovieError {
    #[error("line {line}: `{text}` is not a frame count (asciimation)")]
    BadCount { line: usize, text: String },
    #[error("the asciimation frame height must be 1 to 200 lines")]
    BadHeight,
}

/// Longest frame count accepted (1/15 s ticks: over a minute).
const MAX_UNITS: u32 = 1000;

/// The frames whose end lies in `data`, the file's first bytes; `complete` says `data` is the
/// whole file, so that a last frame without its end is shown as it is.
pub fn frames(data: &[u8], format: &MovieFormat, complete: bool) -> Result<Vec<Frame>, MovieError> {
    let lines = lines_of(data, complete);
    match format {
        MovieFormat::Nutella { delimiter } => Ok(nutella(&lines, delimiter, complete)),
        MovieFormat::Asciimation { frame_lines } => asciimation(&lines, *frame_lines, complete),
    }
}

/// A line of the file: its text (no line end) and where it starts and ends, line end included.
struct Line<'a> {
    text: &'a str,
    start: u64,
    end: u64,
}

/// Whole lines only, unless the file is complete (then its last line may lack a line end).
fn lines_of(data: &[u8], complete: bool) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let (end, next) = match data[at..].iter().position(|&b| b == b'\n') {
            Some(i) => (at + i, at + i + 1),
            None if complete => (data.len(), data.len()),
            None => break,
        };
        let raw = &data[at..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        out.push(Line {
            text: std::str::from_utf8(raw).unwrap_or("?"),
            start: at as u64,
            end: next as u64,
        });
        at = next;
    }
    out
}

fn nutella(lines: &[Line<'_>], delimiter: &str, complete: bool) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut first = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.text.trim_end() == delimiter {
            frames.push(frame(
                &lines[first..i],
                1,
                lines[first.min(i)].start,
                line.end,
            ));
            first = i + 1;
        }
    }
    // A truncated last frame, once nothing more can come.
    if complete && first < lines.len() && lines[first..].iter().any(|l| !l.text.trim().is_empty()) {
        let (start, end) = (lines[first].start, lines[lines.len() - 1].end);
        frames.push(frame(&lines[first..], 1, start, end));
    }
    frames
}

fn asciimation(
    lines: &[Line<'_>],
    height: usize,
    complete: bool,
) -> Result<Vec<Frame>, MovieError> {
    if !(1..=200).contains(&height) {
        return Err(MovieError::BadHeight);
    }
    let mut frames = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let count = &lines[i];
        let units = count
            .text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n <= MAX_UNITS)
            .ok_or_else(|| MovieError::BadCount {
                line: i + 1,
                text: count.text.chars().take(40).collect(),
            })?;
        let picture = &lines[(i + 1).min(lines.len())..(i + 1 + height).min(lines.len())];
        if picture.len() < height && !complete {
            break;
        }
        let end = picture.last().map_or(count.end, |l| l.end);
        frames.push(frame(picture, units.max(1), count.start, end));
        i += 1 + height;
    }
    Ok(frames)
}

fn frame(lines: &[Line<'_>], units: u32, start: u64, end: u64) -> Frame {
    let text = lines.iter().map(|l| l.text).collect::<Vec<_>>().join("\n");
    Frame {
        text,
        units,
        start,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nutella_format() -> MovieFormat {
        MovieFormat::Nutella {
            delimiter: "end".into(),
        }
    }

    #[test]
    fn nutella_frames_end_at_the_delimiter_and_a_final_one_is_not_an_empty_frame() {
        let movie = b"o\n/|\\\nend\n o\nend\n";
        let f = frames(movie, &nutella_format(), true).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].text, "o\n/|\\");
        assert_eq!((f[0].start, f[0].end), (0, 10));
        assert_eq!((f[1].text.as_str(), f[1].start, f[1].end), (" o", 10, 17));
    }

    #[test]
    fn a_truncated_last_frame_counts_only_once_the_file_is_complete() {
        let movie = b"a\nend\nb\nc";
        assert_eq!(frames(movie, &nutella_format(), false).unwrap().len(), 1);
        let whole = frames(movie, &nutella_format(), true).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[1].text.as_str(), whole[1].end), ("b\nc", 9));
        // A prefix that stops inside the delimiter line has not ended the frame yet.
        assert!(
            frames(b"a\nen", &nutella_format(), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn asciimation_frames_have_a_count_and_fixed_height() {
        let format = MovieFormat::Asciimation { frame_lines: 2 };
        let movie = b"3\nab\ncd\n1\nef\ngh\n5\nij\n";
        let partial = frames(movie, &format, false).unwrap();
        assert_eq!(partial.len(), 2);
        assert_eq!((partial[0].units, partial[0].text.as_str()), (3, "ab\ncd"));
        assert_eq!((partial[1].start, partial[1].end), (8, 16));
        let whole = frames(movie, &format, true).unwrap();
        assert_eq!((whole.len(), whole[2].text.as_str()), (3, "ij"));
        assert_eq!(
            frames(b"x\nab\n", &format, true),
            Err(MovieError::BadCount {
                line: 1,
                text: "x".into()
            })
        );
    }
}
