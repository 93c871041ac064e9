//! Standard output for the commands that print: a reader that stops early (`| head -1`)
//! closes the pipe, and that ends the output normally instead of panicking as `println!` does.

use std::fmt::Display;
use std::io::{self, Write};

/// Writes `text` and a newline to stdout. A closed pipe is the reader's normal end: it and
/// every later write are ignored. Any other write error is returned.
pub fn line(text: impl Display) -> io::Result<()> {
    write(format_args!("{text}\n"))
}

/// Writes `text` as it is (no newline added); a closed pipe is ignored as in [`line`].
pub fn text(text: impl Display) -> io::Result<()> {
    write(format_args!("{text}"))
}

fn write(args: std::fmt::Arguments) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
