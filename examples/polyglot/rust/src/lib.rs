//! The polyglot workflow's second step, in Rust: it normalises one line of text.

use lumen::Result;

/// normalise returns the words of a line, lower-cased and joined by single spaces. A word is a
/// run of Unicode letters and digits; everything else separates words, so
/// `"Crème brûlée, s'il vous plaît!"` becomes `"crème brûlée s il vous plaît"`.
fn normalise(line: String) -> Result<String> {
    let lower = line.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    Ok(words.join(" "))
}

/// echo returns its input: the no-op task the SDK benchmark calls.
fn echo(b: &[u8]) -> Result<Vec<u8>> {
    Ok(b.to_vec())
}

lumen::export! {
    task "normalise" => normalise,
    bytes_task "echo" => echo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_lowers_and_splits() {
        assert_eq!(normalise("  Crème brûlée, s'il vous plaît -- 2 spoons.".into()).unwrap(), "crème brûlée s il vous plaît 2 spoons");
        assert_eq!(normalise("...".into()).unwrap(), "");
    }
}
