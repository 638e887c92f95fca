//! The `btvod` command line. `anyhow` lives here and nowhere else.

fn main() -> anyhow::Result<()> {
    Ok(())
}
