//! Input texts: the shipped default set and the one-text-per-line file format.

use std::path::Path;

use anyhow::{bail, Context};

/// The default inputs, one per line: metabolites with their synonyms (systematic names, trivial
/// names, vitamin names) and ordinary English sentences, so that the diagnostic sees both short
/// chemical terms split into many word pieces and natural-language sentences.
pub const DEFAULT_INPUTS: &str = include_str!("../data/default_inputs.txt");

/// The default inputs as texts.
pub fn default_inputs() -> Vec<String> {
    parse_lines(DEFAULT_INPUTS)
}

/// One text per line; lines that are empty or only whitespace are skipped and the others are kept
/// verbatim except for the trailing `\r` of CRLF files (the tokenizer ignores surrounding
/// whitespace anyway).
pub fn parse_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads an input file in the one-text-per-line format; an unreadable file or one with no
/// non-blank line is an error naming the file.
pub fn read_inputs(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read input file {}", path.display()))?;
    let texts = parse_lines(&text);
    if texts.is_empty() {
        bail!("input file {} has no non-blank line", path.display());
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_has_terms_and_sentences() {
        let texts = default_inputs();
        assert!((10..=16).contains(&texts.len()));
        assert!(texts.iter().any(|t| t == "aspirin"));
        assert!(texts.iter().any(|t| t == "A man is eating food."));
        assert!(texts.iter().all(|t| !t.trim().is_empty()));
    }

    #[test]
    fn blank_lines_and_crlf_are_handled() {
        assert_eq!(parse_lines("a\r\n\r\n  \nb c\n"), vec!["a".to_owned(), "b c".to_owned()]);
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "\n  \n").unwrap();
        let err = read_inputs(&empty).unwrap_err().to_string();
        assert!(err.contains("no non-blank line") && err.contains("empty.txt"), "{err}");
        let err = format!("{:#}", read_inputs(&dir.path().join("absent.txt")).unwrap_err());
        assert!(err.contains("cannot read input file") && err.contains("absent.txt"), "{err}");
    }
}
