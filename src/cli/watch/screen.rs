//! The terminal of `btvod watch`: the alternate screen with the cursor hidden and keys read
//! one at a time (raw input), all restored on drop, even on an error; its size; and drawing a
//! frame with the status line at the bottom.

use std::io::Write;

use tokio::sync::mpsc;

/// The terminal while the movie plays; dropping it gives the terminal back as it was.
pub struct Screen {
    saved: Option<libc::termios>,
}

impl Screen {
    /// Takes over the terminal; keys typed arrive on the returned channel (none when stdin is
    /// not a terminal: then only Ctrl-C stops the movie).
    pub fn open() -> std::io::Result<(Self, mpsc::Receiver<u8>)> {
        let saved = raw_input().ok();
        print!("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
        std::io::stdout().flush()?;
        let (tx, rx) = mpsc::channel(16);
        if saved.is_none() {
            return Ok((Self { saved }, rx));
        }
        std::thread::spawn(move || {
            use std::io::Read;
            let mut byte = [0u8; 1];
            while std::io::stdin().read(&mut byte).is_ok_and(|n| n == 1) {
                if tx.blocking_send(byte[0]).is_err() {
                    break;
                }
            }
        });
        Ok((Self { saved }, rx))
    }

    /// Columns and rows.
    pub fn size() -> (usize, usize) {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize it is given; stdout's descriptor outlives the call.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            (usize::from(ws.ws_col), usize::from(ws.ws_row))
        } else {
            (80, 24)
        }
    }

    /// Draws `picture` (or a message when the terminal is too small for it) and `status` on
    /// the last row.
    pub fn draw(&self, picture: &str, status: &str) {
        let (cols, rows) = Self::size();
        let (width, height) = extent(picture);
        let mut out = String::from("\x1b[H");
        if width > cols || height + 1 > rows {
            out.push_str(&format!(
                "\x1b[2JThe terminal is {cols}x{rows}; this movie needs {width}x{}. Make it \
                 larger (q quits).",
                height + 1
            ));
        } else {
            for line in picture.lines() {
                out.push_str(line);
                out.push_str("\x1b[K\r\n");
            }
            out.push_str("\x1b[J");
        }
        let status: String = status.chars().take(cols.saturating_sub(1)).collect();
        out.push_str(&format!("\x1b[{rows};1H\x1b[7m{status}\x1b[0m\x1b[K"));
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.saved.take() {
            // SAFETY: restores the attributes read from the same descriptor in `raw_input`.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved) };
        }
    }
}

/// Widest line and number of lines.
pub fn extent(picture: &str) -> (usize, usize) {
    let width = picture
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (width, picture.lines().count())
}

/// Keys without Enter and without echo; Ctrl-C still interrupts. Returns what to restore.
fn raw_input() -> std::io::Result<libc::termios> {
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut attrs: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: stdin's descriptor is open for the life of the process; `attrs` is writable.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut attrs) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let saved = attrs;
    attrs.c_lflag &= !(libc::ICANON | libc::ECHO);
    attrs.c_cc[libc::VMIN] = 1;
    attrs.c_cc[libc::VTIME] = 0;
    // SAFETY: as above; `attrs` is a valid termios read from this descriptor.
    if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &attrs) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(saved)
}
